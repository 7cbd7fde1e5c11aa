"""Admission control: a bounded number of requests at work, a small bounded wait, then 503.

Past capacity a queue only adds latency: every request waits longer, clients
time out and retry, and memory grows with the queue. So a gate admits at most
``max_in_flight`` requests at once, lets at most ``max_queued`` more wait up to
``queue_wait`` seconds for a slot, and answers the rest at once with
:class:`~trio_books.errors.Overloaded` (503 with ``Retry-After``).

Waiting needs the event loop, so each build brings its own gate
(:class:`trio_books.trio.admission.TrioGate`,
:class:`trio_books.asyncio.admission.AsyncioGate`). :class:`CountingGate` is
loop-neutral: it never waits, shedding as soon as every slot is taken; it is
what a :class:`~trio_books.api.branches.Concurrency` that names no gate gets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from trio_books.errors import Overloaded


@dataclass(frozen=True)
class GateLimits:
    """How much work a gate lets in; from the settings of the same names."""

    max_in_flight: int
    max_queued: int
    queue_wait: float
    retry_after: int


@dataclass
class GateCounters:
    """What a gate has done, for tests, drills and logs."""

    admitted: int = 0
    shed: int = 0
    peak_in_flight: int = 0


class Gate(Protocol):
    """Admits a request's work or raises :class:`~trio_books.errors.Overloaded`."""

    limits: GateLimits
    counters: GateCounters

    @property
    def in_flight(self) -> int: ...

    @property
    def queued(self) -> int:
        """Requests waiting for a slot now."""
        ...

    def admit(self) -> AbstractAsyncContextManager[None]:
        """Hold a slot for the body of the ``async with``; raises ``Overloaded`` when full."""
        ...


GateFactory = Callable[[GateLimits], Gate]


def overloaded(limits: GateLimits) -> Overloaded:
    return Overloaded(
        f"the service is at capacity ({limits.max_in_flight} requests in progress); retry shortly",
        retry_after=limits.retry_after,
    )


class CountingGate:
    """A gate without waiting: a plain counter, the same on every event loop."""

    def __init__(self, limits: GateLimits) -> None:
        self.limits = limits
        self.counters = GateCounters()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return 0  # it never queues

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self._in_flight >= self.limits.max_in_flight:
            self.counters.shed += 1
            raise overloaded(self.limits)
        self._in_flight += 1
        self.counters.admitted += 1
        self.counters.peak_in_flight = max(self.counters.peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            self._in_flight -= 1
