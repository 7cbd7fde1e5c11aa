"""``/readyz``'s verdict: asked of Elasticsearch at most once a second, by one caller at a time.

Readiness is polled by every load balancer and orchestrator in front of the
service, and anyone who reaches the port can poll it too. Each verdict costs a
cluster health call and an index check, so it is kept for ``READY_CACHE``
seconds, and while one caller asks, the others wait on the same lock and then
find the fresh verdict (the lock is the build's own: ``Concurrency.lock``).

Ready means searches can succeed: the cluster answers green or yellow *and* the
searched index (or alias) exists. A service that is draining after a stop
signal is not ready, at once and without asking anyone.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from trio_books.errors import ShuttingDown, TrioBooksError

READY_CACHE = 1.0


class Readiness:
    """The last verdict and when it was reached; ``draining`` once the server stops taking work."""

    def __init__(
        self,
        lock: AbstractAsyncContextManager[Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        cache: float = READY_CACHE,
    ) -> None:
        self._lock = lock
        self._clock = clock
        self._cache = cache
        self._verdict: str | TrioBooksError | None = None
        self._reached = 0.0
        self.draining = False
        self.asked = 0  # verdicts asked of Elasticsearch, for tests and metrics

    async def verdict(self, ask: Callable[[], Awaitable[str]]) -> str:
        """The cluster's status if ready; raises the reason otherwise."""
        if self.draining:
            raise ShuttingDown("the service is shutting down")
        async with self._lock:
            if self._verdict is None or self._clock() - self._reached >= self._cache:
                self.asked += 1
                try:
                    self._verdict = await ask()
                except TrioBooksError as error:
                    self._verdict = error
                self._reached = self._clock()
            verdict = self._verdict
        if isinstance(verdict, TrioBooksError):
            # Raised afresh each time: its traceback would otherwise grow with every poll.
            raise verdict.with_traceback(None)
        return verdict
