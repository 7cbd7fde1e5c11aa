"""A search's branches, run together in one Trio nursery under one deadline.

The nursery is the owner: the request handler waits in ``async with`` until
every branch is done, so no Elasticsearch call outlives the request (a client
that disconnects cancels the handler, and with it every branch). The deadline
is an absolute time shared by all branches; each branch's own cancel scope
tells "my time ran out" apart from "a sibling failed and I was cancelled".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from trio_books.api.branches import Branch, Concurrency, FanOutResult
from trio_books.core.timeline import Timeline
from trio_books.errors import (
    DeadlineExceeded,
    TrioBooksError,
    missed_deadline,
    most_severe,
    timed_out_after,
)
from trio_books.trio.admission import TrioGate
from trio_books.trio.hedging import hedged

Runner = Callable[[Branch, trio.Nursery, Any], Awaitable[None]]


async def fan_out(
    branches: Sequence[Branch], *, deadline: float, timeline: Timeline
) -> FanOutResult:
    """Run *branches* concurrently within *deadline* seconds (see :mod:`trio_books.api.branches`)."""
    deadline_at = trio.current_time() + deadline
    result = FanOutResult()

    # ``run`` gets itself as *again* rather than naming itself: a closure that
    # refers to itself is a reference cycle, which held every Elasticsearch
    # answer of the request until the cyclic GC came (a third of the service's
    # time at 64 clients); without it, reference counting frees them at once.
    async def run(branch: Branch, nursery: trio.Nursery, again: Runner) -> None:
        with timeline.span(branch.name) as span:
            with trio.move_on_at(deadline_at) as own_deadline:
                try:
                    answer = await branch.call(deadline_at - trio.current_time())
                except TrioBooksError as error:
                    timed_out = isinstance(error, DeadlineExceeded)
                    span.outcome = "timed out" if timed_out else "error"
                    span.detail = error.message
                    span.code = error.code
                    if branch.required and timed_out:
                        raise DeadlineExceeded(missed_deadline(deadline)) from error
                    if branch.required:
                        raise
                    result.fail(branch.name, error)
                    return
            if own_deadline.cancelled_caught:
                span.outcome = "timed out"
                if branch.required:
                    raise DeadlineExceeded(missed_deadline(deadline))
                result.failures[branch.name] = timed_out_after(deadline)
                return
            result.answers[branch.name] = answer
            for follower in branch.then(answer) if branch.then else ():
                # Same nursery: the follower runs beside the branches still in flight.
                nursery.start_soon(again, follower, nursery, again, name=f"es-{follower.name}")

    try:
        async with trio.open_nursery() as nursery:
            for branch in branches:
                nursery.start_soon(run, branch, nursery, run, name=f"es-{branch.name}")
    except BaseExceptionGroup as group:
        error = most_severe(group)
        if error is None:
            raise
        raise error from None
    return result


CONCURRENCY = Concurrency(
    fan_out=fan_out, cancelled=trio.Cancelled, lock=trio.Lock, gate=TrioGate, hedge=hedged
)
