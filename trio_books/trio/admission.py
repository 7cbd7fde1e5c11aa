"""The Trio build's admission gate: a ``CapacityLimiter`` and a short, bounded wait for it.

See :mod:`trio_books.api.admission` for the policy. The asyncio build mirrors
this file with an ``asyncio.Semaphore`` and ``asyncio.timeout``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from trio_books.api.admission import GateCounters, GateLimits, overloaded


class TrioGate:
    """At most ``max_in_flight`` holders; at most ``max_queued`` waiters, each for ``queue_wait`` s."""

    def __init__(self, limits: GateLimits) -> None:
        self.limits = limits
        self.counters = GateCounters()
        self._limiter = trio.CapacityLimiter(limits.max_in_flight)
        self._waiting = 0

    @property
    def in_flight(self) -> int:
        return self._limiter.borrowed_tokens

    @property
    def queued(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        # Each request is its own borrower: Trio's default (the current task)
        # would refuse a second request served by the same task.
        borrower = object()
        try:
            self._limiter.acquire_on_behalf_of_nowait(borrower)
        except trio.WouldBlock:
            await self._wait_for_slot(borrower)
        self.counters.admitted += 1
        self.counters.peak_in_flight = max(self.counters.peak_in_flight, self.in_flight)
        try:
            yield
        finally:
            self._limiter.release_on_behalf_of(borrower)

    async def _wait_for_slot(self, borrower: object) -> None:
        if self._waiting >= self.limits.max_queued or self.limits.queue_wait <= 0:
            self.counters.shed += 1
            raise overloaded(self.limits)
        self._waiting += 1
        try:
            with trio.move_on_after(self.limits.queue_wait):
                await self._limiter.acquire_on_behalf_of(borrower)
                return
        finally:
            self._waiting -= 1
        self.counters.shed += 1
        raise overloaded(self.limits)
