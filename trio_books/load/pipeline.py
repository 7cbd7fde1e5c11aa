"""The bulk loader: a bounded producer/consumer pipeline in one Trio nursery.

::

    reader task ──batches──▶ [bounded channel] ──▶ sender 1 ─┐
    (parses in a worker                         ──▶ sender 2 ─┼─▶ POST /<version>-write/_bulk
     thread, batch by batch)                    ──▶ sender N ─┘     ?require_alias=true
          │                                              │
          └──────────── rejects ──▶ [bounded channel] ◀──┘──▶ rejects task (file + console)

The channel is bounded, so when Elasticsearch slows down the senders stop
taking batches, the channel fills, and the reader waits: memory stays flat
whatever the catalogue size. The load writes a new version of the alias; only
when every task has finished and the version holds exactly the books accepted
does the alias move. On any failure or cancellation (Ctrl-C) the new version
is deleted and the alias is left where it was.

The senders write through the version's write alias, never its name: a
request still queued in Elasticsearch when a cancelled load deletes the
version (and the alias with it) is refused, item by item, instead of creating
the index again. A load that meets such refusals stops with one error, since
its version is gone: they are not rejects.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

import trio

from trio_books.core.backoff import Backoff
from trio_books.core.bulk import (
    BULK_FILTER_PATH,
    TOO_LARGE_REASON,
    BulkItem,
    BulkOutcome,
    Chunk,
    ChunkBuilder,
    ItemFailure,
    read_bulk_answer,
)
from trio_books.core.mapping import replicas_for
from trio_books.core.progress import LoadStats
from trio_books.errors import (
    ElasticsearchError,
    ElasticsearchTimeout,
    ElasticsearchUnavailable,
    TrioBooksError,
)
from trio_books.es import aliases
from trio_books.es.client import Elasticsearch
from trio_books.load.sources import Batch, Reject
from trio_books.settings import Settings

# Seconds allowed for deleting an abandoned version while the load is being cancelled.
CLEANUP_TIMEOUT = 15.0


class Reader(Protocol):
    """Blocking source of batches; runs in a worker thread."""

    def next_batch(self, size: int) -> Batch | None: ...


class RejectSink(Protocol):
    async def write(self, rejects: list[Reject]) -> None: ...


@dataclass(frozen=True)
class LoadOptions:
    """How a load runs.

    Args:
        alias: the live alias the load replaces.
        senders: concurrent ``_bulk`` requests.
        chunk_docs: documents per request at most.
        chunk_bytes: bytes per request, about.
        backoff: retry policy for pushed-back or failed requests.
        batch_size: records parsed per worker-thread call.
        queue_batches: batches the channel holds; the memory bound.
    """

    alias: str
    senders: int = 4
    chunk_docs: int = 1000
    chunk_bytes: int = 5 * 1024 * 1024
    backoff: Backoff = field(default_factory=Backoff)
    batch_size: int = 500
    queue_batches: int = 8
    # The loaded version's replicas; None: as the cluster's data nodes call for.
    replicas: int | None = None
    # May an index that has the alias's name be deleted when the load goes live?
    replace_index: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, alias: str | None = None) -> LoadOptions:
        return cls(
            alias=alias or settings.index,
            senders=settings.load_senders,
            chunk_docs=settings.load_chunk_docs,
            chunk_bytes=settings.load_chunk_bytes,
            backoff=Backoff(
                settings.load_backoff_first, settings.load_backoff_cap, settings.load_max_retries
            ),
            queue_batches=2 * settings.load_senders,
            replicas=settings.load_replicas,
        )


@dataclass
class LoadReport:
    """How a load ended. ``published`` is True only when the alias moved."""

    stats: LoadStats
    alias: str
    index: str
    published: bool = False
    count: int | None = None
    swap: aliases.Swap | None = None
    deleted: list[str] = field(default_factory=list)
    problem: str | None = None


async def load_catalogue(
    es: Elasticsearch,
    reader: Reader,
    options: LoadOptions,
    rejects: RejectSink,
    stats: LoadStats | None = None,
) -> LoadReport:
    """Load everything *reader* yields into a new version of ``options.alias``, then make it live.

    Args:
        es: calls go through its client (one per load).
        reader: the catalogue; its blocking work runs in a worker thread.
        options: concurrency, chunk sizes, retries.
        rejects: told about every record not indexed, as it happens.
        stats: counters to update (pass one to watch progress from another task).

    Raises:
        IndexInTheWay: an index has the alias's name and ``options.replace_index``
            is False; nothing was loaded, or the version was discarded.
        ElasticsearchUnavailable: Elasticsearch stopped answering for longer than
            the retries allow; the alias is untouched.
        ElasticsearchError: Elasticsearch refused a request as a whole, or the
            new version was deleted during the load.
    """
    stats = stats if stats is not None else LoadStats()
    # Before anything is read: a load that could not go live would be wasted.
    await aliases.check_replaceable(es, options.alias, replace_index=options.replace_index)
    index = await aliases.create_version(es, options.alias)
    report = LoadReport(stats, options.alias, index)
    started = trio.current_time()
    try:
        target = aliases.write_alias(index)
        await _run_pipeline(es, reader, options, rejects, stats, target, started)
        stats.seconds = trio.current_time() - started
        replicas = options.replicas
        if replicas is None:
            health = await es.cluster_health()
            replicas = replicas_for(health.get("number_of_data_nodes", 1))
        report.count = await aliases.count_version(es, index, replicas=replicas)
        expected = stats.accepted
        if stats.failed or report.count != expected:
            report.problem = (
                f"{report.count:,} documents in {index}, {expected:,} books accepted"
                + (f" ({stats.failed:,} refused by Elasticsearch)" if stats.failed else "")
                + f": the alias {options.alias} was not moved"
            )
            return report
        # Shielded: once the swap is sent, only its answer says whether the alias
        # moved, and a cancelled load must not delete a version that went live.
        with trio.CancelScope(shield=True):
            report.swap = await aliases.swap_alias(
                es, options.alias, index, replace_index=options.replace_index
            )
        report.published = True
        report.deleted = await aliases.prune_versions(es, options.alias, index)
        return report
    finally:
        if not report.published:
            with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
                await aliases.discard_version(es, index)


async def _run_pipeline(
    es: Elasticsearch,
    reader: Reader,
    options: LoadOptions,
    rejects: RejectSink,
    stats: LoadStats,
    target: str,
    started: float,
) -> None:
    try:
        async with trio.open_nursery() as nursery:
            # The reader owns the sending ends; each sender owns a clone of the
            # receiving end, so the channel closes when the reader is done and
            # the senders drain it and return.
            batches_in, batches_out = trio.open_memory_channel[list[BulkItem]](
                options.queue_batches
            )
            rejects_in, rejects_out = trio.open_memory_channel[list[Reject]](options.queue_batches)
            nursery.start_soon(_write_rejects, rejects_out, rejects)
            async with batches_out, rejects_in:
                nursery.start_soon(
                    _read, reader, options.batch_size, batches_in, rejects_in.clone(), stats
                )
                for _ in range(options.senders):
                    nursery.start_soon(
                        _send,
                        es,
                        target,
                        options,
                        batches_out.clone(),
                        rejects_in.clone(),
                        stats,
                        started,
                    )
    except BaseExceptionGroup as group:
        # The one place exception groups are split: callers get Ctrl-C, or the
        # error that stopped the load, as themselves.
        for wanted in (KeyboardInterrupt, TrioBooksError):
            matched, _rest = group.split(wanted)
            if matched is not None:
                raise _first_leaf(matched) from None
        raise


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def _read(
    reader: Reader,
    batch_size: int,
    batches: trio.MemorySendChannel[list[BulkItem]],
    rejects: trio.MemorySendChannel[list[Reject]],
    stats: LoadStats,
) -> None:
    async with batches, rejects:
        while True:
            # Parsing is file I/O plus CPU work: a worker thread does one batch at a
            # time so the event loop keeps every sender's connection moving meanwhile.
            batch = await trio.to_thread.run_sync(reader.next_batch, batch_size)
            if batch is None:
                return
            stats.read += batch.read
            stats.duplicates += batch.duplicates
            stats.rejected += len(batch.rejects) - batch.duplicates
            stats.accepted += len(batch.items)
            stats.fraction_read = batch.fraction_read
            stats.not_utf8 += batch.not_utf8
            stats.not_utf8_at += batch.not_utf8_at
            stats.count_field_changes(batch.field_changes)
            if batch.rejects:
                await rejects.send(batch.rejects)
            if batch.items:
                # Blocks while the channel is full: this is the backpressure.
                await batches.send(batch.items)


async def _send(
    es: Elasticsearch,
    target: str,
    options: LoadOptions,
    batches: trio.MemoryReceiveChannel[list[BulkItem]],
    rejects: trio.MemorySendChannel[list[Reject]],
    stats: LoadStats,
    started: float,
) -> None:
    builder = ChunkBuilder(options.chunk_docs, options.chunk_bytes)
    rng = random.Random()
    async with batches, rejects:
        async for batch in batches:
            for item in batch:
                for chunk in builder.add(item):
                    await _send_chunk(es, target, chunk, options.backoff, rng, rejects, stats)
                    stats.seconds = trio.current_time() - started
        if (last := builder.flush()) is not None:
            await _send_chunk(es, target, last, options.backoff, rng, rejects, stats)


async def _send_chunk(
    es: Elasticsearch,
    target: str,
    chunk: Chunk,
    backoff: Backoff,
    rng: random.Random,
    rejects: trio.MemorySendChannel[list[Reject]],
    stats: LoadStats,
) -> None:
    """Send *chunk* to the write alias *target* until every item is indexed or has failed for good.

    Raises:
        ElasticsearchError: *target* is gone (the version was deleted).
    """
    pending, attempt = chunk, 0
    while True:
        unavailable: ElasticsearchUnavailable | ElasticsearchTimeout | None = None
        try:
            status, content = await es.post_bulk(
                target, pending.body(), filter_path=BULK_FILTER_PATH, require_alias=True
            )
        except (ElasticsearchUnavailable, ElasticsearchTimeout) as error:
            # No answer at all: the whole chunk goes again, after a pause.
            unavailable = error
            outcome = BulkOutcome(0, [], pending, error.message)
        else:
            outcome = read_bulk_answer(pending, status, content)
        if outcome.halves is not None:
            # Too large as one request: each half goes on its own, split again as
            # needed, so only a document too large by itself is left out.
            for half in outcome.halves:
                await _send_chunk(es, target, half, backoff, rng, rejects, stats)
            return
        if outcome.too_large is not None:
            await _too_large(outcome.too_large, rejects, stats)
            return
        stats.indexed += outcome.indexed
        if _target_gone(outcome.failed):
            # Every book still to send would fail the same way: one error, not a
            # reject per book, and no counting of a version that no longer exists.
            raise ElasticsearchError(
                f"{target} is gone: the version being loaded was deleted during the load"
            )
        if outcome.failed:
            await _fail(outcome.failed, rejects, stats)
        if outcome.retry is None:
            return
        attempt += 1
        if attempt > backoff.max_retries:
            if unavailable is not None:
                raise unavailable
            reason = f"gave up after {backoff.max_retries} retries: {outcome.retry_reason}"
            failures = [ItemFailure(item, 429, reason) for item in outcome.retry.items]
            await _fail(failures, rejects, stats)
            return
        stats.retried += len(outcome.retry.items)
        await trio.sleep(backoff.delay(attempt, rng.random()))
        pending = outcome.retry


def _target_gone(failures: list[ItemFailure]) -> bool:
    # With require_alias, a missing write alias is the one reason for a 404.
    return any(
        failure.status == 404 and failure.reason.startswith("index_not_found_exception")
        for failure in failures
    )


async def _fail(
    failures: list[ItemFailure], rejects: trio.MemorySendChannel[list[Reject]], stats: LoadStats
) -> None:
    stats.failed += len(failures)
    await rejects.send(
        [
            Reject("elasticsearch", f.item.source, f.item.line, f"{f.status} {f.reason}")
            for f in failures
        ]
    )


async def _too_large(
    item: BulkItem, rejects: trio.MemorySendChannel[list[Reject]], stats: LoadStats
) -> None:
    # The record's own fault, like invalid input: reported, and the load goes on.
    stats.accepted -= 1
    stats.rejected += 1
    await rejects.send([Reject("too_large", item.source, item.line, TOO_LARGE_REASON)])


async def _write_rejects(
    rejects: trio.MemoryReceiveChannel[list[Reject]], sink: RejectSink
) -> None:
    # One task owns the rejects file: the reader and all senders hand it rejects
    # through the channel, so writes never interleave.
    async with rejects:
        async for batch in rejects:
            await sink.write(batch)
