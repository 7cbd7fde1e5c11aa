"""Errors: one branch fails while its siblings are still talking to Elasticsearch.

Three children: two heavy aggregations and one search that Elasticsearch
refuses (it sorts on a text field). Run three ways:

- **Trio nursery**: the failure cancels the siblings at once; the nursery waits
  until they have stopped, then raises an ``ExceptionGroup`` holding the error.
  When the caller sees the error, no child is left running.
- **asyncio.gather**: raises the first error to the caller straight away, and
  leaves the siblings running. They finish their Elasticsearch work later, for
  nobody: orphans. The demo finds them in ``asyncio.all_tasks()`` and watches
  them finish after their caller has returned.
- **asyncio.TaskGroup** (Python 3.11): behaves like the nursery, and fixes it.

Run it: ``python -m trio_books demo errors``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field

import trio

from trio_books.demos import standalone
from trio_books.demos.elastic import demo_config, demo_index, open_demo_es, tags_by_year_body
from trio_books.demos.narration import Narration
from trio_books.errors import ElasticsearchError
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import ConnectionConfig

BOOKS = 5_000
SLOW = ("es-facet-tags", "es-facet-years")
FAILING = "es-hits"
# Sorting needs doc values, which a text field has not: Elasticsearch answers 400.
REFUSED_BODY = {"size": 10, "sort": ["title"]}


@dataclass(frozen=True)
class ErrorFacts:
    """For each way of running the children: what the caller got, and which children outlived it."""

    trio_raised: str
    trio_cancelled: tuple[str, ...]
    trio_orphans: tuple[str, ...]
    gather_raised: str
    gather_orphans: tuple[str, ...]
    gather_orphans_answered_after_ms: float
    taskgroup_raised: str
    taskgroup_cancelled: tuple[str, ...]
    taskgroup_orphans: tuple[str, ...]


@dataclass
class Children:
    """Which children run, how each ended, and when the caller got the error."""

    variant: str
    running: set[str] = field(default_factory=set)
    outcomes: dict[str, str] = field(default_factory=dict)
    answered_at: dict[str, float] = field(default_factory=dict)
    caller_got_error: float | None = None
    orphans: tuple[str, ...] = ()
    raised: str = "nothing"

    def got_error(self, error: BaseException, narration: Narration) -> None:
        """The caller has the error: note the time, and which children are still running."""
        self.caller_got_error = time.perf_counter()
        self.orphans = tuple(sorted(self.running))
        self.raised = describe(error)
        narration.mark("parent", "caller got the error", self.caller_got_error)

    def cancelled(self) -> tuple[str, ...]:
        return tuple(lane for lane in SLOW if self.outcomes.get(lane) == "cancelled")

    def answered_late_ms(self) -> float:
        """How long after the caller got the error the last orphan got its answer."""
        seen = self.caller_got_error or 0.0
        return max((at - seen for at in self.answered_at.values() if at > seen), default=0.0) * 1000


def describe(group: BaseException) -> str:
    if isinstance(group, BaseExceptionGroup):
        return f"{type(group).__name__}[{', '.join(type(e).__name__ for e in group.exceptions)}]"
    return type(group).__name__


async def slow_child(
    es: Elasticsearch, index: str, lane: str, children: Children, narration: Narration
) -> None:
    """A heavy aggregation that notes how it ended, and whether its caller had already gone."""
    children.running.add(lane)
    narration.say(lane, "sending a heavy aggregation…")
    outcome = "failed"
    try:
        with narration.track(f"{children.variant} {lane}"):
            await es.search(index, tags_by_year_body())
        outcome = "answered"
        children.answered_at[lane] = time.perf_counter()
    except (trio.Cancelled, asyncio.CancelledError):
        outcome = "cancelled"
        raise
    finally:
        children.running.discard(lane)
        children.outcomes[lane] = outcome
        late = children.caller_got_error is not None
        narration.say(
            lane,
            f"{outcome}"
            + (" — after its caller had already got the error; nobody listens" if late else ""),
        )


async def failing_child(
    es: Elasticsearch, index: str, children: Children, narration: Narration
) -> None:
    narration.say(FAILING, "sending a search Elasticsearch will refuse…")
    with narration.track(f"{children.variant} {FAILING}"):
        try:
            await es.search(index, REFUSED_BODY)
        except ElasticsearchError as error:
            narration.say(FAILING, f"failed: {error.message[:90]}…")
            raise


# ---------------------------------------------------------------- Trio


async def trio_part(config: ConnectionConfig, index: str, narration: Narration) -> Children:
    children = Children("nursery")
    async with open_demo_es(config) as es:
        # Warm-up with connections for every child, opened side by side (two per
        # child, room for a transport that spreads calls over pools in turn). The
        # demo is about cancelling requests in flight; a child still connecting
        # when the cancel comes could stop inside a connect's own nursery and end
        # with an exception group rather than a plain Cancelled.
        async with trio.open_nursery() as warm_up:
            for _ in range(2 * (len(SLOW) + 1)):
                warm_up.start_soon(es.search, index, tags_by_year_body())
        narration.section("Trio: three children in a nursery")
        try:
            async with trio.open_nursery() as nursery:
                for lane in SLOW:
                    nursery.start_soon(slow_child, es, index, lane, children, narration, name=lane)
                nursery.start_soon(failing_child, es, index, children, narration, name=FAILING)
                narration.say("parent", "waiting at the end of `async with` for 3 children")
        except* ElasticsearchError as group:
            children.got_error(group, narration)
            narration.say("parent", f"the nursery raised {children.raised}")
        narration.say(
            "parent",
            f"children still running now: {sorted(children.running) or 'none'}; "
            f"cancelled by the nursery: {list(children.cancelled()) or 'none'}",
        )
    return children


# ---------------------------------------------------------------- asyncio


def other_tasks() -> list[asyncio.Task[object]]:
    """Every unfinished asyncio task but this one: the runtime's own view of who still runs."""
    return [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task() and not task.done()
    ]


def look_around(children: Children, narration: Narration) -> list[asyncio.Task[object]]:
    """Ask asyncio itself which tasks are still alive, right after the caller got the error."""
    alive = other_tasks()
    narration.say(
        "parent",
        f"got {children.raised}; asyncio.all_tasks() still lists: "
        f"{sorted(task.get_name() for task in alive) or 'nothing'}",
    )
    return alive


async def call_with_gather(
    es: Elasticsearch, index: str, children: Children, narration: Narration
) -> list[asyncio.Task[object]]:
    try:
        await asyncio.gather(
            *(
                asyncio.create_task(slow_child(es, index, lane, children, narration), name=lane)
                for lane in SLOW
            ),
            asyncio.create_task(failing_child(es, index, children, narration), name=FAILING),
        )
    except ElasticsearchError as error:
        # gather hands over the first error as it is, at once: the other
        # children are not cancelled and nobody waits for them.
        children.got_error(error, narration)
        return look_around(children, narration)
    return []


async def call_with_task_group(
    es: Elasticsearch, index: str, children: Children, narration: Narration
) -> list[asyncio.Task[object]]:
    alive: list[asyncio.Task[object]] = []
    try:
        async with asyncio.TaskGroup() as group:
            for lane in SLOW:
                group.create_task(slow_child(es, index, lane, children, narration), name=lane)
            group.create_task(failing_child(es, index, children, narration), name=FAILING)
    except* ElasticsearchError as errors:
        children.got_error(errors, narration)
        alive = look_around(children, narration)
    return alive


async def asyncio_part(
    config: ConnectionConfig, index: str, narration: Narration
) -> tuple[Children, Children]:
    gathered, grouped = Children("gather"), Children("TaskGroup")
    async with open_demo_es(config, "asyncio") as es:
        narration.section("asyncio.gather: the same three children")
        alive = await call_with_gather(es, index, gathered, narration)
        if alive:
            narration.say("parent", "the caller has returned; watching its orphans finish anyway…")
            await asyncio.wait(alive, timeout=30)
        narration.timeline("asyncio.gather: the caller got the error while two children ran on")

        narration.section("asyncio.TaskGroup: the same three children")
        alive = await call_with_task_group(es, index, grouped, narration)
        if alive:
            await asyncio.wait(alive, timeout=30)
        narration.timeline("asyncio.TaskGroup: like the nursery")
    return gathered, grouped


def run(config: ConnectionConfig | None = None) -> ErrorFacts:
    """Run the demo over *config* (default: the settings' first node); return its facts."""
    config = config or demo_config()
    narration = Narration()
    print(__doc__)
    with demo_index("errors", books=BOOKS, config=config) as index:
        nursery = trio.run(trio_part, config, index, narration)
        narration.timeline("Trio nursery: both siblings cancelled before the caller saw the error")
        gathered, grouped = asyncio.run(asyncio_part(config, index, narration))
    facts = ErrorFacts(
        trio_raised=nursery.raised,
        trio_cancelled=nursery.cancelled(),
        trio_orphans=nursery.orphans,
        gather_raised=gathered.raised,
        gather_orphans=gathered.orphans,
        gather_orphans_answered_after_ms=gathered.answered_late_ms(),
        taskgroup_raised=grouped.raised,
        taskgroup_cancelled=grouped.cancelled(),
        taskgroup_orphans=grouped.orphans,
    )
    for name, raised, orphans, cancelled in (
        ("nursery", facts.trio_raised, facts.trio_orphans, facts.trio_cancelled),
        ("gather", facts.gather_raised, facts.gather_orphans, ()),
        ("TaskGroup", facts.taskgroup_raised, facts.taskgroup_orphans, facts.taskgroup_cancelled),
    ):
        print(
            f"{name:>9}: the caller got {raised}; still running at that moment: "
            f"{list(orphans) or 'none'}; cancelled: {list(cancelled) or 'none'}"
        )
    print(
        f"Under gather the last orphan got its answer {facts.gather_orphans_answered_after_ms:.0f} ms "
        "after its caller had moved on."
    )
    return facts


if __name__ == "__main__":
    sys.exit(standalone("errors"))
