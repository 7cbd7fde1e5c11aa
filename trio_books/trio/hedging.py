"""Hedged calls on Trio: a second try on another node when the first is slow; first answer wins.

The pattern of Trio's own happy-eyeballs connect: both attempts run in one
nursery owned by the branch that asked, so neither can outlive it; the first
to answer cancels the nursery, which cancels the other (its connection is
closed, its pool slot released: see :mod:`trio_books.trio.transport`).
"""

from __future__ import annotations

import trio

from trio_books.api.branches import Answer, Call
from trio_books.core.timeline import Span, Timeline, current_span
from trio_books.errors import TrioBooksError
from trio_books.es.client import avoid_nodes


async def hedged(
    call: Call, seconds_left: float, *, delay: float, timeline: Timeline, name: str
) -> Answer:
    """Run *call*, and again on another node if it has not answered after *delay* seconds.

    Raises:
        TrioBooksError: the first attempt's error, when no attempt answered.
    """
    deadline = trio.current_time() + seconds_left
    parent = current_span.get()
    if parent is not None:
        # Its calls are the attempts' sub-spans: the metrics count those, not it.
        parent.hedged = True
    answers: list[Answer] = []
    errors: list[TrioBooksError] = []
    spans: dict[str, Span] = {}
    first_ended = trio.Event()

    async def attempt(label: str, avoid: frozenset[str], nursery: trio.Nursery) -> None:
        # A task's context is its own copy: the avoided nodes apply to this attempt only.
        avoid_nodes.set(avoid)
        with timeline.span(f"{name}#{label}") as span:
            spans[label] = span
            try:
                answer = await call(deadline - trio.current_time())
            except TrioBooksError as error:
                errors.append(error)
                span.outcome, span.detail, span.code = "error", error.message, error.code
                return
            finally:
                if label == "first":
                    first_ended.set()
            answers.append(answer)
            if parent is not None:
                parent.node = span.node
            for other in spans.values():
                if other is not span and other.outcome == "running":
                    other.outcome = "lost a hedge"
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(attempt, "first", frozenset(), nursery, name=f"es-{name}-first")
        with trio.move_on_after(delay):
            await first_ended.wait()
        # Reached only if no answer came yet (an answer cancels this body). The hedge
        # goes only against a first attempt still running, not after its error.
        if not first_ended.is_set():
            first = spans.get("first")  # None if the first has not even started yet
            rival = first.node if first is not None else None
            avoid = frozenset({rival}) if rival else frozenset()
            nursery.start_soon(attempt, "hedge", avoid, nursery, name=f"es-{name}-hedge")
    if answers:
        return answers[0]
    raise errors[0]
