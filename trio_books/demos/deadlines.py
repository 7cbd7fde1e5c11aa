"""Deadlines: ``move_on_after`` against ``fail_after``, and cancellation reaching into httpx.

A deadline in Trio is a cancel scope around the call. When it expires, Trio
cancels whatever the task is waiting on, here an httpx call whose request has
gone to Elasticsearch and whose answer has not come back: the connection is
closed, and Elasticsearch, seeing it close, cancels its own search task.

- ``move_on_after`` swallows the cancellation: the code after the block runs,
  and ``scope.cancelled_caught`` says whether the deadline fired.
- ``fail_after`` raises ``TooSlowError``: the caller must deal with it.

Trio's cancellation is *level-triggered*: inside a cancelled scope every
``await`` is cancelled, cleanup in ``finally`` included, until you shield it.
asyncio's is *edge-triggered*: ``asyncio.timeout`` cancels the task once, so a
cleanup ``await`` in ``finally`` runs. The demo frees a scroll context on the
way out to show both.

Run it: ``python -m trio_books demo deadlines``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

import trio

from trio_books.demos import standalone
from trio_books.demos.elastic import (
    WatchingTransport,
    demo_config,
    demo_index,
    open_demo_es,
    tags_by_year_body,
)
from trio_books.demos.narration import Narration
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import ConnectionConfig

BOOKS = 5_000
DEADLINE = 0.015  # seconds; the heavy search takes several times longer, even on a quiet machine
GONE_WITHIN = 10.0  # seconds the observer waits for Elasticsearch to drop the cancelled search


@dataclass(frozen=True)
class DeadlineFacts:
    """What the demo saw; times in milliseconds."""

    deadline_ms: float
    uncancelled_ms: float
    move_on_ms: float
    move_on_cancelled_caught: bool
    fail_after_ms: float
    fail_after_raised: bool
    cancelled_inside_httpx: int
    es_search_listed_at_deadline: bool
    es_search_gone_ms: float | None
    es_task_marked_cancelled: bool
    unshielded_cleanup_ran: bool
    shielded_cleanup_ran: bool
    asyncio_timeout_raised: bool
    asyncio_cancelled_inside_httpx: int
    asyncio_unshielded_cleanup_ran: bool


async def es_search_tasks(es: Elasticsearch, index: str) -> list[dict[str, Any]]:
    """Elasticsearch's own list of the search tasks running on *index*."""
    found = await es.request(
        "GET", "/_tasks", params={"actions": "indices:data/read/search", "detailed": "true"}
    )
    return [
        task
        for node in found["nodes"].values()
        for task in node["tasks"].values()
        if index in task.get("description", "")
    ]


async def open_scroll(es: Elasticsearch, index: str) -> str:
    """Open a scroll context on *index*, as a paged export would; return its id."""
    first = await es.request(
        "POST", f"/{index}/_search", params={"scroll": "1m"}, body={"size": 10}
    )
    scroll_id: str = first["_scroll_id"]
    return scroll_id


async def free_scroll(es: Elasticsearch, scroll_id: str) -> bool:
    """Free a scroll context; whether it was still open (Elasticsearch counts what it freed)."""
    answer = await es.request(
        "DELETE", "/_search/scroll", body={"scroll_id": scroll_id}, allow_404=True
    )
    return bool(answer and answer.get("num_freed"))


async def slow_search_then_free(
    es: Elasticsearch, index: str, scroll_id: str, narration: Narration, *, shield_cleanup: bool
) -> None:
    """Run the slow search, then free the scroll context in ``finally``."""
    try:
        narration.say("export", "scroll context open; now the slow search…")
        await es.search(index, tags_by_year_body())
    finally:
        narration.say("export", "finally: freeing the scroll context")
        # A shield lets this await run inside the cancelled scope; its own
        # deadline keeps it from hanging the task if Elasticsearch does not answer.
        with trio.CancelScope(shield=shield_cleanup), trio.move_on_after(2):
            await free_scroll(es, scroll_id)


async def trio_part(config: ConnectionConfig, index: str, narration: Narration) -> dict[str, Any]:
    transport = WatchingTransport(config, "trio")
    facts: dict[str, Any] = {"deadline_ms": DEADLINE * 1000}
    # The observer has a client of its own, so that its calls never show among the watched.
    async with open_demo_es(config, "trio", transport) as es, open_demo_es(config) as observer:
        heavy = tags_by_year_body()
        await es.search(index, heavy)  # warm-up: load what the aggregation needs

        narration.section("The heavy search with no deadline")
        narration.say("parent", "sending the tags × years aggregation…")
        with narration.track("no deadline"):
            await es.search(index, heavy)
        facts["uncancelled_ms"] = narration.bars[-1].ms
        narration.say("parent", f"answered after {facts['uncancelled_ms']:.0f} ms")

        narration.section(f"move_on_after({DEADLINE}): give up quietly")
        started = time.perf_counter()
        with trio.move_on_after(DEADLINE) as scope:
            narration.say("parent", "sending the same search inside the scope…")
            with narration.track("move_on_after"):
                await es.search(index, heavy)
            narration.say("parent", "answered in time (this line runs only then)")
        facts["move_on_ms"] = (time.perf_counter() - started) * 1000
        facts["move_on_cancelled_caught"] = scope.cancelled_caught
        narration.say(
            "parent",
            f"after the block, {facts['move_on_ms']:.0f} ms in: cancelled_caught="
            f"{scope.cancelled_caught}; no exception, carry on with a fallback",
        )
        # Ask Elasticsearch at once whether the search was still running when the
        # client gave up, then poll until it has stopped: well before the search
        # would have answered on its own if Elasticsearch cancelled it.
        gave_up = time.perf_counter()
        tasks = await es_search_tasks(observer, index)
        facts["es_search_listed_at_deadline"] = bool(tasks)
        marked = any(task.get("cancelled") for task in tasks)
        gone_ms = None
        with trio.move_on_after(GONE_WITHIN):
            while tasks:
                await trio.sleep(0.002)
                tasks = await es_search_tasks(observer, index)
                marked = marked or any(task.get("cancelled") for task in tasks)
            gone_ms = (time.perf_counter() - gave_up) * 1000
        facts["es_task_marked_cancelled"] = marked
        facts["es_search_gone_ms"] = gone_ms
        narration.say(
            "observer",
            "Elasticsearch's task list showed the search still running when the client gave up"
            if facts["es_search_listed_at_deadline"]
            else "Elasticsearch's task list no longer showed the search when the client gave up",
        )
        narration.say(
            "observer",
            f"and no longer lists it {gone_ms:.0f} ms later"
            + (", after marking it cancelled: it saw the connection close" if marked else "")
            if gone_ms is not None
            else f"and still lists it {GONE_WITHIN} s later",
        )

        narration.section(f"fail_after({DEADLINE}): give up loudly")
        started = time.perf_counter()
        try:
            with trio.fail_after(DEADLINE):
                narration.say("parent", "sending the same search inside the scope…")
                with narration.track("fail_after"):
                    await es.search(index, heavy)
            facts["fail_after_raised"] = False
        except trio.TooSlowError:
            facts["fail_after_raised"] = True
            narration.say(
                "parent", "caught TooSlowError: the caller decides what a late answer means"
            )
        facts["fail_after_ms"] = (time.perf_counter() - started) * 1000

        for shield in (False, True):
            label = "shielded" if shield else "unshielded"
            narration.section(f"Cleanup in finally, {label}, under move_on_after({DEADLINE})")
            scroll_id = await open_scroll(es, index)
            with trio.move_on_after(DEADLINE), narration.track(f"cleanup {label}"):
                await slow_search_then_free(es, index, scroll_id, narration, shield_cleanup=shield)
            # Ask Elasticsearch: if the scroll is still open, the cleanup never ran.
            leaked = await free_scroll(es, scroll_id)
            facts[f"{label}_cleanup_ran"] = not leaked
            narration.say(
                "parent",
                "Elasticsearch had freed the scroll context: the cleanup ran"
                if not leaked
                else "the scroll context was still open: the cleanup's own await had been "
                "cancelled too (we freed it now)",
            )
        facts["cancelled_inside_httpx"] = len(transport.cancelled())
        narration.say(
            "transport",
            f"{len(transport.cancelled())} calls were cancelled inside httpx while waiting "
            "for Elasticsearch's answer",
        )
    return facts


async def asyncio_part(
    config: ConnectionConfig, index: str, narration: Narration
) -> dict[str, Any]:
    transport = WatchingTransport(config, "asyncio")
    facts: dict[str, Any] = {}
    async with open_demo_es(config, "asyncio", transport) as es:
        narration.section(f"asyncio.timeout({DEADLINE}): like fail_after, raises TimeoutError")
        try:
            async with asyncio.timeout(DEADLINE):
                with narration.track("asyncio.timeout"):
                    await es.search(index, tags_by_year_body())
            facts["asyncio_timeout_raised"] = False
        except TimeoutError:
            facts["asyncio_timeout_raised"] = True
            narration.say("parent", "caught TimeoutError (asyncio has no move_on_after)")

        narration.section(f"Cleanup in finally, unshielded, under asyncio.timeout({DEADLINE})")
        scroll_id = await open_scroll(es, index)
        try:
            async with asyncio.timeout(DEADLINE):
                try:
                    with narration.track("asyncio cleanup"):
                        await es.search(index, tags_by_year_body())
                finally:
                    narration.say("export", "finally: freeing the scroll context, unshielded")
                    await free_scroll(es, scroll_id)
        except TimeoutError:
            pass
        leaked = await free_scroll(es, scroll_id)
        facts["asyncio_unshielded_cleanup_ran"] = not leaked
        narration.say(
            "parent",
            "Elasticsearch had freed the scroll context: asyncio cancelled the task once, "
            "so the await in finally ran"
            if not leaked
            else "the scroll context was still open",
        )
        facts["asyncio_cancelled_inside_httpx"] = len(transport.cancelled())
    return facts


def run(config: ConnectionConfig | None = None) -> DeadlineFacts:
    """Run the demo over *config* (default: the settings' first node); return its facts."""
    config = config or demo_config()
    narration = Narration()
    print(__doc__)
    with demo_index("deadlines", books=BOOKS, config=config) as index:
        found = trio.run(trio_part, config, index, narration)
        narration.timeline(
            f"Trio, each search under a {DEADLINE * 1000:.0f} ms deadline but the first"
        )
        found |= asyncio.run(asyncio_part(config, index, narration))
        narration.timeline("asyncio")
    facts = DeadlineFacts(**found)
    print(
        f"deadline {facts.deadline_ms:.0f} ms; the search alone takes {facts.uncancelled_ms:.0f} ms; "
        f"move_on_after returned after {facts.move_on_ms:.0f} ms, fail_after raised after "
        f"{facts.fail_after_ms:.0f} ms."
    )
    if facts.es_search_gone_ms is not None:
        print(
            f"Elasticsearch dropped the abandoned search {facts.es_search_gone_ms:.0f} ms after "
            f"the client gave up, {facts.move_on_ms + facts.es_search_gone_ms:.0f} ms into a "
            f"search that takes {facts.uncancelled_ms:.0f} ms."
        )
    return facts


if __name__ == "__main__":
    sys.exit(standalone("deadlines"))
