"""What a fan-out runs: named branches, each required or optional, under one deadline.

The builds differ only in how they run branches together (a Trio nursery, an
asyncio ``TaskGroup``); both follow the contract of :class:`FanOut`:

- every branch starts at once and gets the seconds left before the deadline;
- a branch's ``then`` may add branches once it has answered (suggestions after
  a thin hits answer), which run beside those still in flight;
- an optional branch that fails or runs out of time is recorded in
  ``failures`` and the rest go on;
- a required branch that fails cancels every other branch at once and its
  error is raised (``DeadlineExceeded`` when the deadline passed first);
- every branch is recorded as a span of the request's timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from trio_books.api.admission import CountingGate, GateFactory
from trio_books.core.timeline import Timeline
from trio_books.errors import TrioBooksError

log = logging.getLogger("trio_books.api")

Answer = dict[str, Any]
Call = Callable[[float], Awaitable[Answer]]
"""An Elasticsearch call, given the seconds it may take."""


@dataclass(frozen=True)
class Branch:
    name: str
    call: Call
    required: bool = False
    then: Callable[[Answer], Sequence[Branch]] | None = None


@dataclass
class FanOutResult:
    answers: dict[str, Answer] = field(default_factory=dict)
    # Why each optional branch is missing, as the client is told (``errors[].reason``).
    failures: dict[str, str] = field(default_factory=dict)

    def fail(self, branch: str, error: TrioBooksError) -> None:
        """Record an optional branch's failure: the public reason here, the whole story in the log."""
        self.failures[branch] = error.public_message
        log.warning("branch %s failed: %s", branch, error.log_message)


class FanOut(Protocol):
    def __call__(
        self, branches: Sequence[Branch], *, deadline: float, timeline: Timeline
    ) -> Awaitable[FanOutResult]: ...


class Hedge(Protocol):
    """Run *call*; if it has not answered after *delay* seconds, run it once more on another
    node; the first answer wins and the other is cancelled. Each attempt is a span
    ``<name>#first`` / ``<name>#hedge`` of *timeline*; the loser's outcome is "lost a hedge"."""

    def __call__(
        self, call: Call, seconds_left: float, *, delay: float, timeline: Timeline, name: str
    ) -> Awaitable[Answer]: ...


@dataclass(frozen=True)
class Concurrency:
    """A build's concurrency shell: how it fans out, how it races a hedge, what "cancelled" is,
    how it admits work."""

    fan_out: FanOut
    cancelled: type[BaseException]
    # A new lock of the build's own (trio.Lock, asyncio.Lock).
    lock: Callable[[], AbstractAsyncContextManager[Any]]
    # A loop-neutral default that sheds without waiting; builds pass their own.
    gate: GateFactory = CountingGate
    hedge: Hedge | None = None
