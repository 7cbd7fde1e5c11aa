"""Backpressure: a fast producer, a slow Elasticsearch consumer, and the queue between them.

The producer makes books much faster than the consumer can index them into
Elasticsearch, one request per book. Between them:

- **Trio**: a memory channel with room for a few books. When it is full,
  ``send`` waits: the producer is held back to the consumer's pace, the queue
  never holds more than its bound, and memory stays flat.
- **asyncio**: an ``asyncio.Queue()`` without a ``maxsize``. ``put`` never
  waits, so the producer runs ahead and every book it makes sits in the queue,
  in memory, until the consumer gets to it. (``asyncio.Queue(maxsize=N)`` would
  push back too; unbounded is the default, and Trio has no unbounded channel
  unless you ask for ``math.inf``.)

Every tenth of a second a monitor prints the queue's length and the memory
traced by ``tracemalloc`` since the run began.

Run it: ``python -m trio_books demo backpressure``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from trio_books.core.books import Book, book_to_document
from trio_books.demos import standalone
from trio_books.demos.elastic import demo_config, demo_index, generated_books, open_demo_es
from trio_books.demos.narration import Narration
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import ConnectionConfig

BOUND = 8
ITEMS = 200
EVERY = 0.1  # seconds between the monitor's reports
REPORT_EVERY_ITEMS = 50


@dataclass(frozen=True)
class BackpressureFacts:
    """The largest queue each side saw, and the memory each traced at its peak (KiB)."""

    bound: int
    items: int
    trio_max_queued: int
    trio_indexed_when_produced: int
    trio_peak_kib: float
    trio_seconds: float
    asyncio_max_queued: int
    asyncio_indexed_when_produced: int
    asyncio_peak_kib: float
    asyncio_seconds: float


@dataclass
class Gauge:
    """The queue length seen after every put and by the monitor; and how many were indexed."""

    max_queued: int = 0
    indexed: int = 0
    indexed_when_produced: int = 0
    samples: list[int] = field(default_factory=list)

    def saw(self, queued: int) -> None:
        self.max_queued = max(self.max_queued, queued)


def traced_kib() -> float:
    return tracemalloc.get_traced_memory()[0] / 1024


async def index_one(es: Elasticsearch, index: str, book: Book) -> None:
    """The slow consumer's work: one Elasticsearch index request per book."""
    await es.request("PUT", f"/{index}/_doc/{book.book_id}", body=book_to_document(book))


async def monitor(
    who: str,
    queued: Callable[[], int],
    gauge: Gauge,
    narration: Narration,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Report the queue and memory until cancelled (by the owner, when the work is done)."""
    while True:
        gauge.saw(queued())
        narration.say(
            who,
            f"queue {queued():>3} (bound {BOUND if who.startswith('trio') else 'none'}), "
            f"indexed {gauge.indexed:>3}, traced memory {traced_kib():7.1f} KiB",
        )
        await sleep(EVERY)


# ---------------------------------------------------------------- Trio


async def trio_part(
    config: ConnectionConfig, index: str, narration: Narration
) -> tuple[Gauge, float, float]:
    gauge = Gauge()
    send, receive = trio.open_memory_channel[Book](BOUND)

    async def producer() -> None:
        with narration.track("trio producer"):
            async with send:
                for made, book in enumerate(generated_books(ITEMS, seed=3), 1):
                    # Waits here whenever the channel already holds BOUND books.
                    await send.send(book)
                    gauge.saw(send.statistics().current_buffer_used)
                    if made % REPORT_EVERY_ITEMS == 0:
                        narration.say("trio producer", f"made {made} books")
                gauge.indexed_when_produced = gauge.indexed

    async def consumer(es: Elasticsearch) -> None:
        with narration.track("trio consumer"):
            async with receive:
                async for book in receive:
                    await index_one(es, index, book)
                    gauge.indexed += 1

    narration.section(f"Trio: open_memory_channel({BOUND})")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        async with open_demo_es(config) as es, trio.open_nursery() as nursery:
            # The monitor runs beside the work and is cancelled when it ends.
            nursery.start_soon(
                monitor,
                "trio monitor",
                lambda: send.statistics().current_buffer_used,
                gauge,
                narration,
                trio.sleep,
                name="monitor",
            )
            async with trio.open_nursery() as work:
                work.start_soon(producer, name="producer")
                work.start_soon(consumer, es, name="consumer")
            nursery.cancel_scope.cancel()
        peak = tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()
    return gauge, peak, time.perf_counter() - started


# ---------------------------------------------------------------- asyncio


async def asyncio_part(
    config: ConnectionConfig, index: str, narration: Narration
) -> tuple[Gauge, float, float]:
    gauge = Gauge()
    queue: asyncio.Queue[Book | None] = asyncio.Queue()  # no maxsize: unbounded

    async def producer() -> None:
        with narration.track("asyncio producer"):
            await produce()
        gauge.indexed_when_produced = gauge.indexed
        await queue.put(None)

    async def produce() -> None:
        for made, book in enumerate(generated_books(ITEMS, seed=3), 1):
            # Never waits: an unbounded queue is never full.
            await queue.put(book)
            gauge.saw(queue.qsize())
            if made % REPORT_EVERY_ITEMS == 0:
                narration.say("asyncio producer", f"made {made} books")

    async def consumer(es: Elasticsearch) -> None:
        with narration.track("asyncio consumer"):
            while (book := await queue.get()) is not None:
                await index_one(es, index, book)
                gauge.indexed += 1

    narration.section("asyncio: asyncio.Queue() with no maxsize")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        async with open_demo_es(config, "asyncio") as es:
            watcher = asyncio.create_task(
                monitor("asyncio monitor", queue.qsize, gauge, narration, asyncio.sleep)
            )
            try:
                async with asyncio.TaskGroup() as work:
                    work.create_task(producer())
                    work.create_task(consumer(es))
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        peak = tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()
    return gauge, peak, time.perf_counter() - started


def run(config: ConnectionConfig | None = None) -> BackpressureFacts:
    """Run the demo over *config* (default: the settings' first node); return its facts."""
    config = config or demo_config()
    narration = Narration()
    print(__doc__)
    with demo_index("backpressure", books=0, config=config) as index:
        bounded, trio_peak, trio_seconds = trio.run(trio_part, config, index, narration)
        unbounded, asyncio_peak, asyncio_seconds = asyncio.run(
            asyncio_part(config, index, narration)
        )
    narration.timeline("the unbounded producer is done at once; the bounded one keeps pace")
    facts = BackpressureFacts(
        bound=BOUND,
        items=ITEMS,
        trio_max_queued=bounded.max_queued,
        trio_indexed_when_produced=bounded.indexed_when_produced,
        trio_peak_kib=trio_peak,
        trio_seconds=trio_seconds,
        asyncio_max_queued=unbounded.max_queued,
        asyncio_indexed_when_produced=unbounded.indexed_when_produced,
        asyncio_peak_kib=asyncio_peak,
        asyncio_seconds=asyncio_seconds,
    )
    print(f"\n{'':>22}{'Trio channel':>14}{'asyncio.Queue':>15}")
    print(f"{'largest queue':>22}{facts.trio_max_queued:>14}{facts.asyncio_max_queued:>15}")
    print(
        f"{'peak traced memory':>22}{facts.trio_peak_kib:>10.0f} KiB{facts.asyncio_peak_kib:>11.0f} KiB"
    )
    print(
        f"{'indexed when made all':>22}{facts.trio_indexed_when_produced:>14}"
        f"{facts.asyncio_indexed_when_produced:>15}"
    )
    print(f"{'time to index all':>22}{facts.trio_seconds:>12.1f} s{facts.asyncio_seconds:>13.1f} s")
    narration.explain(
        f"Both took about as long: the consumer sets the pace either way. But the bounded "
        f"channel never held more than {BOUND} books, while the unbounded queue held all "
        f"{facts.asyncio_max_queued} at once; with a million books, or a consumer that stalls, "
        "that difference is the process's memory."
    )
    return facts


if __name__ == "__main__":
    sys.exit(standalone("backpressure"))
