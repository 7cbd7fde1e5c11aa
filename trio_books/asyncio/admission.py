"""The asyncio build's admission gate: an ``asyncio.Semaphore`` and a short, bounded wait for it.

See :mod:`trio_books.api.admission` for the policy; this file mirrors
:mod:`trio_books.trio.admission` line for line, with ``asyncio.timeout`` where
the Trio build has ``move_on_after``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from trio_books.api.admission import GateCounters, GateLimits, overloaded


class AsyncioGate:
    """At most ``max_in_flight`` holders; at most ``max_queued`` waiters, each for ``queue_wait`` s."""

    def __init__(self, limits: GateLimits) -> None:
        self.limits = limits
        self.counters = GateCounters()
        self._slots = asyncio.Semaphore(limits.max_in_flight)
        self._in_flight = 0
        self._waiting = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        # locked() is also true while others wait: a newcomer never jumps the queue.
        if self._slots.locked():
            await self._wait_for_slot()
        else:
            await self._slots.acquire()  # a slot is free: returns without suspending
        self._in_flight += 1
        self.counters.admitted += 1
        self.counters.peak_in_flight = max(self.counters.peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            self._in_flight -= 1
            self._slots.release()

    async def _wait_for_slot(self) -> None:
        if self._waiting >= self.limits.max_queued or self.limits.queue_wait <= 0:
            self.counters.shed += 1
            raise overloaded(self.limits)
        self._waiting += 1
        try:
            async with asyncio.timeout(self.limits.queue_wait):
                await self._slots.acquire()
                return
        except TimeoutError:
            pass
        finally:
            self._waiting -= 1
        self.counters.shed += 1
        raise overloaded(self.limits)
