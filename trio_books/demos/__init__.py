"""Narrated demos of structured concurrency, run against the real Elasticsearch.

Each demo teaches one idea, narrates what every task is doing as it happens,
and ends with a text timeline. Run one with ``python -m trio_books demo NAME``
or ``python -m trio_books.demos.NAME``; each module's ``run()`` also returns
the facts it teaches, which the test suite checks.

The demos create their own small index in the Elasticsearch that
``TRIO_BOOKS_ES_URLS`` names (first URL) and delete it when they end.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from trio_books.errors import TrioBooksError, UsageError

DEMOS: dict[str, str] = {
    "fanout": "the four queries of a search one after another, then together in a nursery",
    "deadlines": "move_on_after vs fail_after, and cancellation reaching into an httpx call",
    "errors": "one branch fails: the nursery cancels the others; asyncio.gather leaves an orphan",
    "hedging": "the same search raced to two nodes: the first answer wins, the loser is cancelled",
    "backpressure": "a bounded memory channel against an unbounded asyncio.Queue",
    "task-tree": "the live tree of nurseries and tasks while a search is in flight",
}


def module_name(demo: str) -> str:
    """The module of *demo*, e.g. ``trio_books.demos.task_tree`` for ``task-tree``."""
    return f"{__name__}.{demo.replace('-', '_')}"


def run_demo(demo: str) -> object:
    """Run one demo by name, narrating to stdout; return its facts.

    Raises:
        UsageError: no such demo, or Elasticsearch could not be used.
    """
    if demo not in DEMOS:
        raise UsageError(f"unknown demo {demo!r}; choose one of: {', '.join(DEMOS)}")
    run: Callable[[], object] = importlib.import_module(module_name(demo)).run
    try:
        return run()
    except UsageError:
        raise
    except TrioBooksError as error:
        raise UsageError(
            f"the {demo} demo needs a working Elasticsearch: {error.message}"
        ) from None


def standalone(demo: str) -> int:
    """``python -m trio_books.demos.NAME``: run *demo*; bad use is one line and exit code 2."""
    try:
        run_demo(demo)
    except UsageError as error:
        print(f"{demo}: error: {error.message}", file=sys.stderr)
        return 2
    return 0
