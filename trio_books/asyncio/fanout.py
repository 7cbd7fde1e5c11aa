"""A search's branches, run together in one ``asyncio.TaskGroup``.

The task group is the owner: the request handler waits in ``async with`` until
every branch is done, so no Elasticsearch call outlives the request. If one
branch raises, the group cancels its siblings at once and raises an exception
group, which is turned into one HTTP error here, in one place.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from trio_books.api.service import Answer, Branch, Durations
from trio_books.errors import most_severe


async def fan_out(branches: Mapping[str, Branch]) -> tuple[dict[str, Answer], Durations]:
    """Run every branch concurrently; return answers and durations (seconds) by name."""
    answers: dict[str, Answer] = {}
    durations: Durations = {}

    async def run(name: str, branch: Branch) -> None:
        started = time.perf_counter()
        answers[name] = await branch()
        durations[name] = time.perf_counter() - started

    try:
        async with asyncio.TaskGroup() as group:
            for name, branch in branches.items():
                group.create_task(run(name, branch), name=f"es-{name}")
    except BaseExceptionGroup as group_error:
        error = most_severe(group_error)
        if error is None:
            raise
        raise error from None
    # In the order the branches were given, not the order they finished.
    return answers, {name: durations[name] for name in branches}
