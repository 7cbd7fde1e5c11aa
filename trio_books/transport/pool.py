"""One node's connection pool, as bookkeeping only (the shells do the I/O).

Connections are kept on a stack: the most recently used one is reused first,
so a burst's connections stay warm and the rarely used ones age out at the
bottom, where :meth:`Pool.take_idle` drops them. Taking and giving back are
O(1) whatever the pool's size: nothing ever scans the pool (the cost that
makes httpcore's pool slow down as concurrency rises).

Slots are counted here and enforced by the shell's own primitive (a
``trio.CapacityLimiter``, an ``asyncio.Semaphore``): the pool says whether a
new request may join the wait queue, the primitive makes it wait.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

C = TypeVar("C")

KEEPALIVE_EXPIRY = 30.0
"""Seconds an idle connection is kept; well under Elasticsearch's own idle close."""


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of one pool's counters."""

    capacity: int
    in_use: int
    waiting: int
    idle: int
    opened: int
    reused: int
    discarded: int
    shed: int
    stale_retries: int
    drained: int


class Pool(Generic[C]):
    """The connections of one node and the requests using or awaiting them.

    Args:
        capacity: requests that may hold a connection at once.
        max_waiting: requests that may wait for a slot; one more is shed.
        keepalive_expiry: seconds an idle connection stays reusable.
    """

    def __init__(
        self, capacity: int, max_waiting: int, keepalive_expiry: float = KEEPALIVE_EXPIRY
    ) -> None:
        if capacity < 1 or max_waiting < 0:
            raise ValueError("a pool needs capacity ≥ 1 and max_waiting ≥ 0")
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.keepalive_expiry = keepalive_expiry
        # (connection, the time it went idle); the right end is the top of the stack.
        self._idle: deque[tuple[C, float]] = deque()
        self.in_use = 0
        self.waiting = 0
        self.opened = 0
        self.reused = 0
        self.discarded = 0
        self.shed = 0
        self.stale_retries = 0
        # Connections a drain is reading the rest of a cut answer on; and how many
        # drains ended with the connection back in the pool.
        self.draining = 0
        self.drained = 0

    # ------------------------------------------------------------ slots

    def admit(self) -> bool:
        """May one more request enter? False means: shed it now rather than queue it."""
        if self.in_use < self.capacity or self.waiting < self.max_waiting:
            return True
        self.shed += 1
        return False

    def start_waiting(self) -> None:
        self.waiting += 1

    def stop_waiting(self) -> None:
        self.waiting -= 1

    def acquired(self) -> None:
        """A request now holds a slot."""
        self.in_use += 1

    def released(self) -> None:
        """A request gave its slot back, however it ended."""
        self.in_use -= 1

    # ------------------------------------------------------------ connections

    def take_idle(self, now: float) -> tuple[C | None, list[C]]:
        """The most recently used idle connection, and the expired ones for the caller to close."""
        expired: list[C] = []
        cutoff = now - self.keepalive_expiry
        # The oldest sit at the left: drop them from there.
        while self._idle and self._idle[0][1] < cutoff:
            expired.append(self._idle.popleft()[0])
        self.discarded += len(expired)
        if not self._idle:
            return None, expired
        self.reused += 1
        return self._idle.pop()[0], expired

    def opened_one(self) -> None:
        self.opened += 1

    def give_back(self, connection: C, now: float) -> None:
        """Keep *connection* for reuse (call only for one whose exchange ended cleanly)."""
        self._idle.append((connection, now))

    def discard(self) -> None:
        """A taken connection will not come back (closed, broken or half-read)."""
        self.discarded += 1

    def drain(self) -> list[C]:
        """Every idle connection, for the caller to close; the pool keeps none."""
        idle = [connection for connection, _ in self._idle]
        self._idle.clear()
        return idle

    def stats(self) -> PoolStats:
        return PoolStats(
            capacity=self.capacity,
            in_use=self.in_use,
            waiting=self.waiting,
            idle=len(self._idle),
            opened=self.opened,
            reused=self.reused,
            discarded=self.discarded,
            shed=self.shed,
            stale_retries=self.stale_retries,
            drained=self.drained,
        )
