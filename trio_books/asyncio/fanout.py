"""A search's branches, run together in one ``asyncio.TaskGroup`` under one deadline.

The mirror of ``trio_books/trio/fanout.py``. The task group is the owner: the
request handler waits in ``async with`` until every branch is done, so no
Elasticsearch call outlives the request. The deadline is an absolute loop
time shared by all branches; each branch's own ``asyncio.timeout_at`` tells
"my time ran out" apart from "a sibling failed and I was cancelled".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from trio_books.api.branches import Branch, Concurrency, FanOutResult
from trio_books.asyncio.admission import AsyncioGate
from trio_books.asyncio.hedging import hedged
from trio_books.core.timeline import Timeline
from trio_books.errors import (
    DeadlineExceeded,
    TrioBooksError,
    missed_deadline,
    most_severe,
    timed_out_after,
)

Runner = Callable[[Branch, asyncio.TaskGroup, Any], Coroutine[Any, Any, None]]


async def fan_out(
    branches: Sequence[Branch], *, deadline: float, timeline: Timeline
) -> FanOutResult:
    """Run *branches* concurrently within *deadline* seconds (see :mod:`trio_books.api.branches`)."""
    loop = asyncio.get_running_loop()
    deadline_at = loop.time() + deadline
    result = FanOutResult()

    # ``run`` gets itself as *again* rather than naming itself: a closure that
    # refers to itself is a reference cycle, which would hold every answer of
    # the request until the cyclic GC came.
    async def run(branch: Branch, group: asyncio.TaskGroup, again: Runner) -> None:
        with timeline.span(branch.name) as span:
            try:
                async with asyncio.timeout_at(deadline_at):
                    try:
                        answer = await branch.call(deadline_at - loop.time())
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
            except TimeoutError:
                span.outcome = "timed out"
                if branch.required:
                    raise DeadlineExceeded(missed_deadline(deadline)) from None
                result.failures[branch.name] = timed_out_after(deadline)
                return
            result.answers[branch.name] = answer
            for follower in branch.then(answer) if branch.then else ():
                # Same task group: the follower runs beside the branches still in flight.
                group.create_task(again(follower, group, again), name=f"es-{follower.name}")

    try:
        async with asyncio.TaskGroup() as group:
            for branch in branches:
                group.create_task(run(branch, group, run), name=f"es-{branch.name}")
    except BaseExceptionGroup as group_error:
        error = most_severe(group_error)
        if error is None:
            raise
        raise error from None
    return result


CONCURRENCY = Concurrency(
    fan_out=fan_out,
    cancelled=asyncio.CancelledError,
    lock=asyncio.Lock,
    gate=AsyncioGate,
    hedge=hedged,
)
