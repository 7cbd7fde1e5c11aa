"""Hedged calls on asyncio: a second try on another node when the first is slow; first answer wins.

Mirrors :mod:`trio_books.trio.hedging`: both attempts run in one ``TaskGroup``
owned by the branch that asked; the first to answer cancels the other task.
"""

from __future__ import annotations

import asyncio

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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds_left
    parent = current_span.get()
    if parent is not None:
        # Its calls are the attempts' sub-spans: the metrics count those, not it.
        parent.hedged = True
    answers: list[Answer] = []
    errors: list[TrioBooksError] = []
    spans: dict[str, Span] = {}
    tasks: dict[str, asyncio.Task[None]] = {}
    first_ended = asyncio.Event()

    async def attempt(label: str, avoid: frozenset[str]) -> None:
        # A task runs in a copy of the context: the avoided nodes apply to this attempt only.
        avoid_nodes.set(avoid)
        with timeline.span(f"{name}#{label}") as span:
            spans[label] = span
            try:
                answer = await call(deadline - loop.time())
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
            for other_label, task in tasks.items():
                if other_label != label and not task.done():
                    spans[other_label].outcome = "lost a hedge"
                    task.cancel()

    async with asyncio.TaskGroup() as group:
        tasks["first"] = group.create_task(attempt("first", frozenset()))
        try:
            async with asyncio.timeout(delay):
                await first_ended.wait()
        except TimeoutError:
            first = spans.get("first")
            rival = first.node if first is not None else None
            avoid = frozenset({rival}) if rival else frozenset()
            tasks["hedge"] = group.create_task(attempt("hedge", avoid))
    if answers:
        return answers[0]
    raise errors[0]
