"""Which node to call next, and how long a failed node sits out.

Round-robin over the nodes that are alive; a node that fails is dead for
``min(2 ** (failures - 1), 30)`` seconds (1, 2, 4, 8, 16, 30, 30 …, the
schedule of Elastic's own Python transport), then tried again: one success
brings it fully back, one more failure doubles its time out. When every node
is dead, the one that comes back soonest is tried anyway: a request is never
refused only because of our own bookkeeping.

Pure: times come in as arguments (any monotonic clock).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

MAX_BACKOFF = 30.0


def dead_backoff(failures: int) -> float:
    """Seconds a node that failed *failures* times in a row sits out."""
    if failures < 1:
        return 0.0
    return min(2.0 ** (failures - 1), MAX_BACKOFF)


@dataclass
class NodeHealth:
    """One node's record: consecutive failures, and until when it is dead."""

    url: str
    failures: int = 0
    dead_until: float = 0.0

    def alive(self, now: float) -> bool:
        return self.dead_until <= now


class NodeSet:
    """The cluster's nodes, chosen round-robin among the living.

    Args:
        urls: node base URLs, e.g. ``http://127.0.0.1:9200``.
    """

    def __init__(self, urls: Sequence[str]) -> None:
        if not urls:
            raise ValueError("at least one node is needed")
        self.nodes = [NodeHealth(url) for url in urls]
        self._by_url = {node.url: node for node in self.nodes}
        self._next = 0

    def pick(self, now: float, exclude: Collection[str] = ()) -> str | None:
        """The next node to call, passing over dead ones and *exclude*; ``None`` if all are excluded."""
        count = len(self.nodes)
        start = self._next
        for step in range(count):
            node = self.nodes[(start + step) % count]
            if node.url not in exclude and node.alive(now):
                self._next = (start + step + 1) % count
                return node.url
        # Every candidate is dead: try the one whose time out ends first.
        candidates = [node for node in self.nodes if node.url not in exclude]
        if not candidates:
            return None
        return min(candidates, key=lambda node: node.dead_until).url

    def mark_dead(self, url: str, now: float) -> float:
        """Record a failure of *url*; returns the seconds it now sits out."""
        node = self._by_url[url]
        node.failures += 1
        backoff = dead_backoff(node.failures)
        node.dead_until = now + backoff
        return backoff

    def mark_alive(self, url: str) -> None:
        """Record a success of *url*: it is fully back."""
        node = self._by_url[url]
        if node.failures:
            node.failures = 0
            node.dead_until = 0.0

    def dead(self, now: float) -> list[str]:
        return [node.url for node in self.nodes if not node.alive(now)]
