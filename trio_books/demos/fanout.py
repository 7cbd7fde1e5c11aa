"""Fan-out: the four queries of one search asked one after another, then together in a nursery.

A search asks Elasticsearch four independent questions: a page of hits and the
counts of three facets. Asked one after another, a search costs the sum of the
four. Asked together, from the nursery of the service's own
:func:`trio_books.trio.fanout.fan_out`, it costs about as much as the slowest.
The nursery is also the owner: the parent waits at the end of ``async with``
until every child is done, so no query outlives the search.

asyncio overlaps these calls just as well (``asyncio.gather`` or a
``TaskGroup``), so this demo runs only Trio; the two part ways when something
goes wrong, which the ``errors`` demo shows.

Run it: ``python -m trio_books demo fanout``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio

from trio_books.api.branches import Answer, Branch
from trio_books.core.query import SearchQuery, search_requests
from trio_books.core.results import parse_search
from trio_books.core.timeline import Timeline
from trio_books.demos import standalone
from trio_books.demos.elastic import DEMO_TEXT, demo_config, demo_index, open_demo_es
from trio_books.demos.narration import Narration
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import ConnectionConfig
from trio_books.trio.fanout import fan_out

BOOKS = 12_000
# Enough rounds that the median ratio holds still on two busy cores: its
# spread shrinks with the square root of the rounds, and nine once gave 0.94
# where the typical round gives 0.65.
ROUNDS = 25
WARM_UP_ROUNDS = 2
FACET_SIZE = 100
QUERY = SearchQuery(q=DEMO_TEXT)


@dataclass(frozen=True)
class FanoutFacts:
    """Wall-clock milliseconds of each timed round, both ways, and whether branches overlapped."""

    sequential_ms: tuple[float, ...]
    nursery_ms: tuple[float, ...]
    overlapped: bool

    @property
    def median_sequential_ms(self) -> float:
        return statistics.median(self.sequential_ms)

    @property
    def median_nursery_ms(self) -> float:
        return statistics.median(self.nursery_ms)

    @property
    def ratio(self) -> float:
        """The median, over rounds, of nursery time as a fraction of sequential time.

        Each round times both ways back to back, so a slow spell of the
        machine weighs on both sides of a ratio alike; the order alternates
        between rounds, so neither way always runs second.
        """
        return statistics.median(
            joint / alone for alone, joint in zip(self.sequential_ms, self.nursery_ms, strict=True)
        )


Requests = Mapping[str, dict[str, Any]]


async def one_after_another(
    es: Elasticsearch, index: str, requests: Requests, narration: Narration | None
) -> float:
    """Ask each query and wait for its answer before asking the next; seconds taken."""
    started = time.perf_counter()
    for name, body in requests.items():
        lane = f"es-{name}"
        if narration is None:
            await es.search(index, body)
            continue
        narration.say("parent", f"asking {lane}, and waiting for its answer before the next")
        with narration.track(f"sequential {lane}"):
            await es.search(index, body)
        narration.say("parent", f"{lane} answered")
    return time.perf_counter() - started


async def together(
    es: Elasticsearch, index: str, requests: Requests, narration: Narration | None
) -> tuple[float, dict[str, tuple[float, float]]]:
    """Ask all queries at once through the service's ``fan_out``.

    Returns the seconds taken and each branch's (start, end), as ``time.perf_counter`` readings.
    """

    def branch(name: str, body: dict[str, Any]) -> Branch:
        async def ask(seconds_left: float) -> Answer:
            if narration is not None:
                narration.say(f"es-{name}", "sending…")
            answer = await es.search(index, body)
            if narration is not None:
                narration.say(f"es-{name}", "answered; this child is done")
            return answer

        return Branch(name, ask, required=name == "hits")

    if narration is not None:
        narration.say(
            "parent",
            f"calling fan_out: its nursery starts {len(requests)} children, "
            "then waits at the end of `async with` for all of them",
        )
    timeline = Timeline(cancelled=trio.Cancelled)
    result = await fan_out(
        [branch(name, body) for name, body in requests.items()], deadline=30, timeline=timeline
    )
    elapsed = timeline.now()
    answers = result.answers
    origin = timeline.origin or 0.0  # a time.perf_counter reading
    spans = {
        span.name: (origin + span.start, origin + span.start + span.duration)
        for span in timeline.spans
    }
    if narration is not None:
        found = parse_search(answers)
        narration.say(
            "parent",
            f"the nursery closed: every child is done ({found.count:,} matches, "
            f"{len(found.facets.tags)} tags, {len(found.facets.years)} years, "
            f"{len(found.facets.languages)} languages)",
        )
    return elapsed, spans


async def main(config: ConnectionConfig, index: str, narration: Narration) -> FanoutFacts:
    requests = search_requests(QUERY, FACET_SIZE)
    async with open_demo_es(config) as es:
        narration.say(
            "parent",
            f"{WARM_UP_ROUNDS} silent warm-up rounds, so Elasticsearch has loaded what it needs",
        )
        for _ in range(WARM_UP_ROUNDS):
            await one_after_another(es, index, requests, None)
            await together(es, index, requests, None)

        narration.section("Round 1, narrated: one after another")
        sequential = [await one_after_another(es, index, requests, narration)]
        narration.section("Round 1, narrated: together in a nursery")
        elapsed, spans = await together(es, index, requests, narration)
        nursery = [elapsed]
        for name, (start, end) in spans.items():
            narration.bar(f"nursery es-{name}", start, end, "ok")
        overlapped = max(start for start, _ in spans.values()) < min(
            end for _, end in spans.values()
        )

        narration.section(f"Rounds 2 to {ROUNDS}, quietly")
        for number in range(2, ROUNDS + 1):
            if number % 2:
                sequential.append(await one_after_another(es, index, requests, None))
                nursery.append((await together(es, index, requests, None))[0])
            else:
                nursery.append((await together(es, index, requests, None))[0])
                sequential.append(await one_after_another(es, index, requests, None))
    return FanoutFacts(
        tuple(seconds * 1000 for seconds in sequential),
        tuple(seconds * 1000 for seconds in nursery),
        overlapped,
    )


def report(facts: FanoutFacts, narration: Narration) -> None:
    narration.timeline("round 1, the same four queries both ways (shared axis)")
    print(f"{'round':>7}  {'one after another':>18}  {'nursery':>9}  {'ratio':>5}")
    for number, (alone, joint) in enumerate(
        zip(facts.sequential_ms, facts.nursery_ms, strict=True), 1
    ):
        print(f"{number:>7}  {alone:15.1f} ms  {joint:6.1f} ms  {joint / alone:5.2f}")
    print(
        f"{'median':>7}  {facts.median_sequential_ms:15.1f} ms  "
        f"{facts.median_nursery_ms:6.1f} ms  {facts.ratio:5.2f}"
    )
    print(
        f"\nRound by round, the nursery took {facts.ratio:.2f} × the sequential time (median): "
        "a search costs about its slowest branch, not the sum of all four. Single rounds "
        "stray on a busy machine; the median of many holds still."
    )
    narration.explain(
        f"Why not a quarter? The four queries are CPU work inside Elasticsearch, and this "
        f"machine has {os.cpu_count()} cores to share between them; the tags facet is also "
        "the heaviest branch, and a fan-out can never be faster than its slowest branch."
    )


def run(config: ConnectionConfig | None = None) -> FanoutFacts:
    """Run the demo over *config* (default: the settings' first node); return its facts."""
    config = config or demo_config()
    narration = Narration()
    print(__doc__)
    with demo_index("fanout", books=BOOKS, config=config) as index:
        facts = trio.run(main, config, index, narration)
    report(facts, narration)
    return facts


if __name__ == "__main__":
    sys.exit(standalone("fanout"))
