"""A request's timeline: one span per task, recorded in one place.

The fan-out wraps every branch it runs in :meth:`Timeline.span`; nothing else
keeps timers. A span knows its task's name, the Elasticsearch node it used
(set by the client through :data:`current_span`), its start and end offsets
from the request's start, and its outcome. ``Server-Timing`` and the
``?trace=1`` body are both drawn from it.

Loop-neutral: each build says which exception type means "cancelled" for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trio_books.core.trace_context import TraceContext, new_span_id

Outcome = Literal["ok", "error", "cancelled", "timed out", "lost a hedge", "running"]


@dataclass
class Span:
    """One task of a request; offsets are seconds from the request's start."""

    name: str
    start: float
    end: float | None = None
    node: str | None = None
    outcome: Outcome = "running"
    detail: str | None = None
    # The error's stable name (``TrioBooksError.code``) when it ended in one.
    code: str | None = None
    # Its calls ran as sub-spans (``<name>#first``, ``<name>#hedge``): a hedged call.
    hedged: bool = False
    # Its W3C span id, and its parent's (the request's own span, or the task it ran in).
    span_id: str = field(default_factory=new_span_id)
    parent_id: str | None = None

    @property
    def duration(self) -> float:
        return 0.0 if self.end is None else self.end - self.start


current_span: ContextVar[Span | None] = ContextVar("trio_books_current_span", default=None)
"""The span of the task running now, so the client can note which node it used."""

current_timeline: ContextVar[Timeline | None] = ContextVar(
    "trio_books_current_timeline", default=None
)
"""The timeline of the request running now, so the client can add a retried attempt to it."""


def attempt_started() -> float | None:
    """Now, on the running request's timeline (``None`` outside a request's span)."""
    timeline = current_timeline.get()
    return None if timeline is None else timeline.now()


def record_attempt(
    suffix: str,
    started: float | None,
    *,
    node: str | None,
    outcome: Outcome,
    detail: str,
    code: str | None = None,
) -> None:
    """Add a finished sub-span ``<task>#<suffix>`` (a failed attempt, retried) to the running task's timeline."""
    timeline, span = current_timeline.get(), current_span.get()
    if timeline is None or span is None or started is None:
        return
    attempt = Span(
        f"{span.name}#{suffix}",
        start=started,
        end=timeline.now(),
        node=node,
        outcome=outcome,
        detail=detail[:200],
        code=code,
        parent_id=span.span_id,
    )
    timeline.spans.append(attempt)
    if timeline.on_end is not None:
        timeline.on_end(attempt)


@dataclass
class Timeline:
    """The spans of one request.

    Args:
        cancelled: the exception type that means "this task was cancelled"
            (``trio.Cancelled`` or ``asyncio.CancelledError``).
        clock: seconds, monotonic.
        origin: the request's start on *clock*; now if not given.
        on_end: called with each span as it ends (the metrics count Elasticsearch
            calls from here: one bookkeeping, not two).
        trace: the request's W3C trace context; its spans are the request span's children.
    """

    cancelled: type[BaseException]
    clock: Callable[[], float] = time.perf_counter
    origin: float | None = None
    spans: list[Span] = field(default_factory=list)
    on_end: Callable[[Span], None] | None = None
    trace: TraceContext | None = None

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = self.clock()
        # The request's start on the wall clock, for exporters that need one (OTLP).
        self.wall_origin_ns = time.time_ns() - int((self.clock() - self.origin) * 1e9)

    def now(self) -> float:
        """Seconds since the request started."""
        assert self.origin is not None
        return self.clock() - self.origin

    @contextmanager
    def span(self, name: str) -> Iterator[Span]:
        """Record the enclosed work as the span *name*; the outcome follows from how it ends.

        The caller may set ``outcome`` itself (to "timed out", "lost a hedge"…)
        before the block ends; an exception only fills an outcome not yet set.
        """
        # The task this one runs in, when it is this request's (a hedge's attempts
        # under their branch); else the request itself.
        enclosing = current_span.get()
        if enclosing is not None and current_timeline.get() is self:
            parent_id: str | None = enclosing.span_id
        else:
            parent_id = self.trace.span_id if self.trace is not None else None
        span = Span(name=name, start=self.now(), parent_id=parent_id)
        self.spans.append(span)
        token = current_span.set(span)
        timeline_token = current_timeline.set(self)
        try:
            yield span
        except self.cancelled:
            if span.outcome == "running":
                span.outcome = "cancelled"
            raise
        except BaseException as error:
            if span.outcome == "running":
                span.outcome = "error"
                span.detail = str(error)[:200]
                span.code = getattr(error, "code", None)
            raise
        else:
            if span.outcome == "running":
                span.outcome = "ok"
        finally:
            span.end = self.now()
            current_span.reset(token)
            current_timeline.reset(timeline_token)
            if self.on_end is not None:
                self.on_end(span)


class TraceTask(BaseModel):
    """One task in a ``?trace=1`` answer."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(examples=["es-hits"])
    node: str | None = Field(default=None, description="The Elasticsearch node it called.")
    start_ms: float = Field(ge=0, description="Offset from the request's start.")
    end_ms: float = Field(ge=0)
    outcome: Outcome
    detail: str | None = None


class Trace(BaseModel):
    """The request's timeline: its own span and each task's."""

    start_ms: float = 0.0
    end_ms: float = Field(ge=0)
    tasks: list[TraceTask]


def trace_of(timeline: Timeline, *, prefix: str = "es-") -> Trace:
    """The trace to return, with the request spanning from 0 to now."""
    end = timeline.now()
    return Trace(
        end_ms=round(end * 1000, 3),
        tasks=[
            TraceTask(
                name=prefix + span.name,
                node=span.node,
                start_ms=round(span.start * 1000, 3),
                end_ms=round((end if span.end is None else span.end) * 1000, 3),
                outcome=span.outcome,
                detail=span.detail,
            )
            for span in timeline.spans
        ],
    )
