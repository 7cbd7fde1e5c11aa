"""What every drill takes and hands back: options in, figures and a verdict out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trio_books.es.connection import ConnectionConfig

MIB = 1024 * 1024


@dataclass(frozen=True)
class DrillOptions:
    """How to run a drill.

    Args:
        quick: the short version CI runs; the full one is for the closing note.
        es: how the drill and its server reach Elasticsearch (the drill fills an
            index of its own there).
        duration: seconds, for drills that run for a chosen time (the soak).
        build: which build the drill's server runs (``serve --build``).
    """

    es: ConnectionConfig
    quick: bool = False
    duration: float | None = None
    build: str = "trio"

    @property
    def es_url(self) -> str:
        """The first node's URL, for display (never credentials)."""
        return self.es.urls[0]

    @property
    def es_port(self) -> int:
        """The first node's port: the drill counts its server's connections to it."""
        return self.es.nodes[0].port


@dataclass
class Report:
    """A drill's figures (printed as it goes, kept here for tests) and what went wrong."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def say(self, text: str) -> None:
        """Narrate: what the drill is doing or saw."""
        print(f"[{self.name}] {text}", flush=True)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)
            self.say(f"FAIL: {problem}")

    def close(self) -> None:
        verdict = "passed" if self.passed else f"FAILED ({len(self.problems)} problems)"
        self.say(f"{verdict}; figures: {self.figures}")
