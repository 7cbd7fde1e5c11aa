"""What every demo needs from Elasticsearch: its connection configuration, a demo index of
generated books, heavy queries that are real work, and an httpx transport that watches each call.

Each demo creates its own index (``demo-<name>-<random>``), fills it with
generated books through the project's own mapping and ``_bulk`` body, and
deletes it at the end, so demos run on a fresh machine and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from trio_books.core.books import Author, Book, Tag
from trio_books.core.bulk import bulk_body
from trio_books.core.mapping import index_body
from trio_books.errors import UsageError
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import ConnectionConfig, connection_config
from trio_books.es.opening import Build, es_transport, open_elasticsearch
from trio_books.settings import invalid_settings, load_settings

# A free-text query that matches almost every generated title and author, so
# every branch of a search scores many documents: real work for Elasticsearch.
DEMO_TEXT = (
    "war peace night river stone king queen shadow garden winter summer sea fire glass "
    "Chen Baker Ada Leo Mira"
)

_WORDS = [
    "war",
    "peace",
    "night",
    "river",
    "stone",
    "king",
    "queen",
    "shadow",
    "garden",
    "winter",
    "summer",
    "sea",
    "fire",
    "glass",
    "city",
    "house",
    "letter",
    "journey",
    "silence",
    "memory",
    "light",
    "dark",
    "road",
    "empire",
    "heart",
]
_FIRST = [
    "Ada",
    "Ben",
    "Clara",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kira",
    "Leo",
    "Mira",
    "Nils",
    "Omar",
    "Petra",
]
_LAST = [
    "Abbott",
    "Baker",
    "Chen",
    "Duarte",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lopez",
]
_LANGUAGES = ["eng", "fre", "ger", "spa", "ita", "por", "rus", "jpn", "ara", "pol"]
_TAGS = [f"theme-{number:03d}" for number in range(300)]
_BULK_CHUNK = 5000
# Connections of a demo's client, and seconds per call.
_CONNECTIONS = 16
_CALL_SECONDS = 30.0


def demo_config(*, all_nodes: bool = False) -> ConnectionConfig:
    """The connection configuration of the ``TRIO_BOOKS_ES_*`` settings, as the service's.

    Args:
        all_nodes: keep every node; by default only the first, so that every
            call of a demo goes to one node.

    Raises:
        UsageError: the settings are invalid.
    """
    try:
        config = connection_config(load_settings())
    except ValueError as error:
        raise invalid_settings(error) from None
    return config if all_nodes else first_node(config)


def first_node(config: ConnectionConfig) -> ConnectionConfig:
    """*config* with its first node only."""
    return config.replace(nodes=config.nodes[:1])


def _demo_sized(config: ConnectionConfig) -> ConnectionConfig:
    return config.replace(
        pool_size=_CONNECTIONS, max_connections=_CONNECTIONS, timeout=_CALL_SECONDS
    )


def generated_books(count: int, *, seed: int = 8) -> Iterator[Book]:
    """*count* made-up books, the same ones for the same *seed*."""
    rng = random.Random(seed)
    for number in range(1, count + 1):
        yield Book(
            book_id=number,
            title=" ".join(rng.choice(_WORDS) for _ in range(16)).title(),
            original_title=" ".join(rng.choice(_WORDS) for _ in range(16)).title(),
            authors=[
                Author(name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}")
                for _ in range(rng.randint(1, 3))
            ],
            tags=[
                Tag(title=slug.title(), slug=slug) for slug in rng.sample(_TAGS, rng.randint(3, 8))
            ],
            original_publication_year=rng.randint(1800, 2024),
            language_code=rng.choice(_LANGUAGES),
            average_rating=round(rng.uniform(2.5, 5.0), 2),
            ratings_count=rng.randint(0, 1_000_000),
        )


def tags_by_year_body() -> dict[str, Any]:
    """A genuinely heavy search: for each of 300 tags, how its books spread over the years.

    Hundreds of milliseconds of aggregation work on a few thousand books.
    """
    return {
        "size": 0,
        "aggs": {
            "tags": {
                "nested": {"path": "tags"},
                "aggs": {
                    "slugs": {
                        "terms": {"field": "tags.slug", "size": 500},
                        "aggs": {
                            "books": {
                                "reverse_nested": {},
                                "aggs": {
                                    "years": {
                                        "terms": {"field": "original_publication_year", "size": 300}
                                    }
                                },
                            }
                        },
                    }
                },
            }
        },
    }


@asynccontextmanager
async def open_demo_es(
    config: ConnectionConfig,
    build: Build = "trio",
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Elasticsearch]:
    """A demo's client of *config* on *build*'s event loop, over *transport* if given."""
    async with open_elasticsearch(_demo_sized(config), build, transport=transport) as es:
        yield es


async def _fill(config: ConnectionConfig, index: str, books: int, replicas: int) -> None:
    async with open_demo_es(config) as es:
        body = index_body(replicas=replicas)
        # Repeated identical searches would otherwise come from the shard
        # request cache in a millisecond, hiding the work the demos time.
        body["settings"]["index.requests.cache.enable"] = False
        # No periodic refresh while loading: the books land in one segment at
        # the final refresh, so no background merge competes for the CPU with
        # the searches the demos time.
        body["settings"]["index.refresh_interval"] = "-1"
        # Throwaway data: no fsync after every write, so a busy disk does not
        # set the pace of the demos that write.
        body["settings"]["index.translog.durability"] = "async"
        await es.create_index(index, body)
        everything = list(generated_books(books))
        for first in range(0, len(everything), _BULK_CHUNK):
            result = await es.bulk(bulk_body(index, everything[first : first + _BULK_CHUNK]))
            if result.get("errors"):
                raise UsageError(f"indexing the demo books into {index} failed")
        await es.refresh(index)
        if replicas:
            await es.request(
                "GET",
                f"/_cluster/health/{index}",
                params={"wait_for_status": "green", "timeout": "20s"},
            )


async def _drop(config: ConnectionConfig, index: str) -> None:
    async with open_demo_es(config) as es:
        await es.delete_index(index)


@contextmanager
def demo_index(
    purpose: str, *, books: int, config: ConnectionConfig, replicas: int = 0
) -> Iterator[str]:
    """A fresh index of *books* generated books for one demo, deleted on the way out.

    A synchronous context manager on purpose: a demo's Trio part and its asyncio
    part each run in their own event loop, inside it.
    """
    index = f"demo-{purpose}-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    trio.run(_fill, config, index, books, replicas)
    what = f"indexed {books:,} generated books into" if books else "created the empty index"
    print(
        f"[setup] {what} {index} at {config.urls[0]} in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    try:
        yield index
    finally:
        trio.run(_drop, config, index)
        print(f"[cleanup] deleted the index {index}", flush=True)


# ---------------------------------------------------------------- watching the calls


def current_task_name() -> str:
    """The running task's name, on Trio or on asyncio."""
    try:
        return trio.lowlevel.current_task().name
    except RuntimeError:
        task = asyncio.current_task()
        return task.get_name() if task else "?"


@dataclass
class Call:
    """One HTTP call as the transport saw it; ``outcome`` is ``None`` while in flight."""

    task: str
    path: str
    sent: float
    ended: float | None = None
    outcome: str | None = None  # "answered", "cancelled" or "failed"


class WatchingTransport(httpx.AsyncBaseTransport):
    """The transport *config* asks for, noting for each call which task made it and how it ended.

    A call cancelled here was cancelled *inside* httpx, while waiting for
    Elasticsearch: the request had gone out and no answer had come back.

    Args:
        config: the demo's connection configuration (TLS and pool from it).
        build: whose event loop runs the calls.
        on_change: called with the number of calls in flight whenever it changes.
    """

    def __init__(
        self,
        config: ConnectionConfig,
        build: Build = "trio",
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.inner = es_transport(_demo_sized(config), build)
        self.calls: list[Call] = []
        self.on_change = on_change

    @property
    def in_flight(self) -> int:
        return sum(1 for call in self.calls if call.outcome is None)

    def _update(self, call: Call, outcome: str | None) -> None:
        if outcome is not None:
            call.ended, call.outcome = time.perf_counter(), outcome
        if self.on_change is not None:
            self.on_change(self.in_flight)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = Call(current_task_name(), request.url.path, time.perf_counter())
        self.calls.append(call)
        self._update(call, None)
        try:
            response = await self.inner.handle_async_request(request)
        except (trio.Cancelled, asyncio.CancelledError):
            self._update(call, "cancelled")
            raise
        except Exception:
            self._update(call, "failed")
            raise
        self._update(call, "answered")
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def cancelled(self) -> list[Call]:
        return [call for call in self.calls if call.outcome == "cancelled"]
