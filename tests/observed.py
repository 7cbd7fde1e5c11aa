"""The production transport, observed and perturbed on its own fast path.

The app reaches Elasticsearch through the project's transport, calling its
``exchange()`` below httpx's objects. A test that wraps an httpx transport
instead would run on httpx's pool and objects and miss that path. These
subclasses keep it: each ``exchange()`` is the real one, noted in a log, with
hooks before and after it where a test slows or holds a call.

They run in the serving build's loop (Trio, or asyncio in its own thread), so
the log reads the process-wide ``perf_counter`` rather than either loop's clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import trio

from trio_books.asyncio.transport import AsyncioTransport
from trio_books.es.connection import connection_config
from trio_books.es.opening import Build, own_transport
from trio_books.settings import Settings
from trio_books.transport.adapter import Origin, Timeouts
from trio_books.transport.connection_pool import Transport
from trio_books.transport.http11 import Answer
from trio_books.trio.transport import TrioTransport


@dataclass
class Exchange:
    """One call as the transport saw it: what was asked, when, and how it ended."""

    path: str
    body: dict[str, Any]
    started: float
    ended: float | None = None
    status: int | None = None
    # "answered", "cancelled" (the caller gave up) or "failed"; None while in flight.
    outcome: str | None = None


def _body(raw: bytes) -> dict[str, Any]:
    try:
        found = json.loads(raw) if raw else {}
    except ValueError:  # an NDJSON bulk body, not one document
        return {}
    return found if isinstance(found, dict) else {}


@dataclass
class Observed:
    """What a test sees of the transport, and the extra latency it adds to each call."""

    exchanges: list[Exchange] = field(default_factory=list)
    delay: float = 0.0
    # Calls that came through httpx's objects rather than production's fast path.
    through_httpx: int = 0

    def searches(self) -> list[Exchange]:
        return [call for call in self.exchanges if call.path.endswith("/_search")]

    def searches_in_flight(self) -> int:
        return sum(1 for call in self.searches() if call.outcome is None)


class Observing(Transport):
    """``exchange()`` as in production, logged, with hooks a test may override."""

    observed: Observed

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError  # the build's own sleep, below

    async def before(self, call: Exchange) -> None:
        if self.observed.delay:
            await self.sleep(self.observed.delay)

    async def after(self, call: Exchange) -> None:
        return None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.observed.through_httpx += 1
        return await super().handle_async_request(request)

    async def exchange(
        self,
        origin: Origin,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: Timeouts,
        *,
        idempotent: bool,
    ) -> Answer:
        call = Exchange(target.decode().split("?")[0], _body(body), time.perf_counter())
        self.observed.exchanges.append(call)
        try:
            await self.before(call)
            answer = await super().exchange(
                origin, method, target, headers, body, timeouts, idempotent=idempotent
            )
        except (trio.Cancelled, asyncio.CancelledError):
            call.ended, call.outcome = time.perf_counter(), "cancelled"
            raise
        except BaseException:
            call.ended, call.outcome = time.perf_counter(), "failed"
            raise
        call.ended, call.status, call.outcome = time.perf_counter(), answer.status, "answered"
        await self.after(call)
        return answer


class ObservedTrio(Observing, TrioTransport):
    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


class ObservedAsyncio(Observing, AsyncioTransport):
    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


KINDS: dict[str, type[Observing]] = {"trio": ObservedTrio, "asyncio": ObservedAsyncio}


def observed_transport(
    settings: Settings, build: str, observed: Observed, kind: type[Observing] | None = None
) -> Observing:
    """The transport *settings* give *build* ("trio" or "asyncio"), as production builds it, observed."""
    chosen = cast(Build, build)
    transport = own_transport(connection_config(settings), chosen, kind=kind or KINDS[build])
    assert isinstance(transport, Observing)
    transport.observed = observed
    return transport
