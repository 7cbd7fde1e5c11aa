"""A search's branches, run together in one Trio nursery.

The nursery is the owner: the request handler waits in ``async with`` until
every branch is done, so no Elasticsearch call outlives the request. If one
branch raises, Trio cancels its siblings at once and the nursery raises an
exception group, which is turned into one HTTP error here, in one place.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import trio

from trio_books.api.service import Answer, Branch, Spans
from trio_books.core.timing import Span
from trio_books.errors import most_severe


async def fan_out(branches: Mapping[str, Branch]) -> tuple[dict[str, Answer], Spans]:
    """Run every branch concurrently; return answers and when each ran, by name."""
    answers: dict[str, Answer] = {}
    spans: Spans = {}

    async def run(name: str, branch: Branch) -> None:
        started = time.perf_counter()
        answers[name] = await branch()
        spans[name] = Span(started, time.perf_counter() - started)

    try:
        async with trio.open_nursery() as nursery:
            for name, branch in branches.items():
                nursery.start_soon(run, name, branch, name=f"es-{name}")
    except BaseExceptionGroup as group:
        error = most_severe(group)
        if error is None:
            raise
        raise error from None
    # In the order the branches were given, not the order they finished.
    return answers, {name: spans[name] for name in branches}
