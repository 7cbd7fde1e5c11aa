"""Task tree: the live tree of nurseries and tasks while a search is in flight.

In Trio every task lives in a nursery, and every nursery belongs to a task, so
the running program is a tree you can walk from
``trio.lowlevel.current_root_task()``. This demo runs one search through the
service's own :class:`~trio_books.api.service.SearchService`, and at the moment
its four Elasticsearch calls are all in flight, a watcher walks the tree and
prints it, with the line of our code each task is waiting at.

asyncio (3.11) keeps no such tree: ``asyncio.all_tasks()`` is a flat set, with
no record of who started whom. (Python 3.14 adds call-graph introspection.)

Run it: ``python -m trio_books demo task-tree``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trio

import trio_books
from trio_books.api.service import SearchService
from trio_books.core.query import SearchQuery, search_requests
from trio_books.demos import standalone
from trio_books.demos.elastic import (
    DEMO_TEXT,
    WatchingTransport,
    demo_config,
    demo_index,
    open_demo_es,
)
from trio_books.demos.narration import Narration
from trio_books.es.connection import ConnectionConfig
from trio_books.settings import Settings
from trio_books.trio.fanout import CONCURRENCY

BOOKS = 5_000
BRANCHES = 4
PACKAGE = Path(trio_books.__file__).parent


@dataclass(frozen=True)
class TaskTreeFacts:
    """The printed tree, who owns the fan-out's nursery, and what ran in it."""

    tree: tuple[str, ...]
    fan_out_owner: str
    fan_out_children: tuple[str, ...]
    in_flight_when_printed: int
    asyncio_tasks_seen: tuple[str, ...]


NOTES = {
    "<init>": "Trio's root task",
    "<TrioToken.run_sync_soon task>": "one of Trio's own system tasks",
}


def where(task: trio.lowlevel.Task) -> str:
    """The innermost line of trio_books code *task* waits at, preferring code outside the demos."""
    ours, demos = "", ""
    for frame, line in task.iter_await_frames():
        path = Path(frame.f_code.co_filename)
        if not path.is_relative_to(PACKAGE):
            continue
        found = f"{path.relative_to(PACKAGE.parent)}:{line} in {frame.f_code.co_name}"
        if path.is_relative_to(PACKAGE / "demos"):
            demos = found
        else:
            ours = found
    return ours or demos or NOTES.get(task.name, "")


def walk(task: trio.lowlevel.Task, prefix: str = "", last: bool = True) -> Iterator[str]:
    """Lines drawing *task*, its nurseries and their tasks, depth first."""
    here = where(task)
    yield f"{prefix}{'└── ' if last else '├── '}task {task.name}" + (f"   ⟶ {here}" if here else "")
    inner = prefix + ("    " if last else "│   ")
    for n, nursery in enumerate(task.child_nurseries):
        nursery_last = n == len(task.child_nurseries) - 1
        yield f"{inner}{'└── ' if nursery_last else '├── '}nursery"
        deeper = inner + ("    " if nursery_last else "│   ")
        children = sorted(nursery.child_tasks, key=lambda child: child.name)
        for c, child in enumerate(children):
            yield from walk(child, deeper, c == len(children) - 1)


def fan_out_nursery(root: trio.lowlevel.Task) -> tuple[str, tuple[str, ...]]:
    """The task that owns the nursery whose children are named ``es-*``, and those children."""
    pending = [root]
    while pending:
        task = pending.pop()
        for nursery in task.child_nurseries:
            names = tuple(sorted(child.name for child in nursery.child_tasks))
            if names and all(name.startswith("es-") for name in names):
                return task.name, names
            pending.extend(nursery.child_tasks)
    return "", ()


@dataclass
class Snapshot:
    tree: tuple[str, ...] = ()
    fan_out_owner: str = ""
    fan_out_children: tuple[str, ...] = ()
    in_flight: int = 0


async def trio_part(config: ConnectionConfig, index: str, narration: Narration) -> Snapshot:
    all_in_flight = trio.Event()
    watching = False

    snapshot = Snapshot()

    def calls_changed(in_flight: int) -> None:
        if watching and in_flight >= BRANCHES and not all_in_flight.is_set():
            # Walk here, in the task whose call made four, without awaiting: the
            # tree is exactly as it is at that moment. A watcher woken by an event
            # would walk it a scheduler step later, when a fast branch may be done.
            root = trio.lowlevel.current_root_task()
            assert root is not None  # always, inside trio.run
            snapshot.tree = tuple(walk(root))
            snapshot.in_flight = in_flight
            snapshot.fan_out_owner, snapshot.fan_out_children = fan_out_nursery(root)
            all_in_flight.set()

    transport = WatchingTransport(config, "trio", on_change=calls_changed)
    settings = Settings(index=index, facet_size=100)
    async with open_demo_es(config, "trio", transport) as es:
        service = SearchService(es, settings, CONCURRENCY)
        await service.search(
            SearchQuery(q=DEMO_TEXT), service.new_timeline()
        )  # warm-up, before we watch
        watching = True

        async def search() -> None:
            narration.say("search", "calling SearchService.search: fan_out opens a nursery…")
            with narration.track("search"):
                response = await service.search(SearchQuery(q=DEMO_TEXT), service.new_timeline())
            narration.say("search", f"done: {response.count:,} matches")

        async def watcher() -> None:
            await all_in_flight.wait()
            narration.mark("watcher", "tree printed")
            narration.say(
                "watcher", f"{snapshot.in_flight} Elasticsearch calls in flight; the tree:"
            )
            print("\n".join(snapshot.tree), flush=True)

        narration.section("Trio: one search, and a watcher that prints the tree mid-flight")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(search, name="search")
            nursery.start_soon(watcher, name="watcher")
    for call in transport.calls[-BRANCHES:]:
        narration.bar(call.task, call.sent, call.ended or call.sent, "ok")
    return snapshot


async def asyncio_part(
    config: ConnectionConfig, index: str, narration: Narration
) -> tuple[str, ...]:
    """The same four calls from an asyncio TaskGroup, and all that asyncio can tell of them."""
    narration.section("asyncio: the same four calls in a TaskGroup; what does asyncio know?")
    seen: tuple[str, ...] = ()
    async with open_demo_es(config, "asyncio") as es:
        requests = search_requests(SearchQuery(q=DEMO_TEXT), 100)
        async with asyncio.TaskGroup() as group:
            for name, body in requests.items():
                group.create_task(es.search(index, body), name=f"es-{name}")
            await asyncio.sleep(0)  # let them start
            seen = tuple(sorted(task.get_name() for task in asyncio.all_tasks()))
            narration.say("main", f"asyncio.all_tasks() = {{{', '.join(seen)}}}")
            narration.explain(
                "A flat set: nothing says that the four es-* tasks belong to the main task "
                "or to this TaskGroup."
            )
    return seen


def run(config: ConnectionConfig | None = None) -> TaskTreeFacts:
    """Run the demo over *config* (default: the settings' first node); return its facts."""
    config = config or demo_config()
    narration = Narration()
    print(__doc__)
    with demo_index("task-tree", books=BOOKS, config=config) as index:
        snapshot = trio.run(trio_part, config, index, narration)
        narration.timeline("the four calls of the search, and the moment the tree was printed")
        seen = asyncio.run(asyncio_part(config, index, narration))
    return TaskTreeFacts(
        tree=snapshot.tree,
        fan_out_owner=snapshot.fan_out_owner,
        fan_out_children=snapshot.fan_out_children,
        in_flight_when_printed=snapshot.in_flight,
        asyncio_tasks_seen=seen,
    )


if __name__ == "__main__":
    sys.exit(standalone("task-tree"))
