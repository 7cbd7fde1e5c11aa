"""W3C trace context: the ``traceparent`` a request brings, and the ones its Elasticsearch calls send.

A request joins the trace its caller started (``traceparent: 00-<trace id>-<parent
span id>-<flags>``) or, without a valid header, starts a new one. Its own span and
each task's span on the timeline get a span id of their own; each Elasticsearch call
sends ``traceparent`` naming its task's span as the parent, so Elasticsearch's own
traces (8.x and later) hang under the service's. ``tracestate`` is passed on as it came.

Pure: parsing and formatting only; ids come from :func:`new_span_id` and
:func:`new_trace_id` (random, as OpenTelemetry's own id generator makes them).
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar
from dataclasses import dataclass

# version-traceid-parentid-flags; a later version may append fields after a dash.
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?"
)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = 0x01
# tracestate: at most 32 list members, and what a proxy must pass on is bounded too;
# printable ASCII only (it is sent on to Elasticsearch as it came).
MAX_TRACESTATE = 512
_TRACESTATE = re.compile(rf"[\x20-\x7e]{{1,{MAX_TRACESTATE}}}")


def new_trace_id() -> str:
    """32 lowercase hex digits, never all zero."""
    while (value := random.getrandbits(128)) == 0:
        pass
    return f"{value:032x}"


def new_span_id() -> str:
    """16 lowercase hex digits, never all zero."""
    while (value := random.getrandbits(64)) == 0:
        pass
    return f"{value:016x}"


@dataclass(frozen=True)
class TraceContext:
    """The trace a request belongs to, and its own span in it.

    Attributes:
        trace_id: the trace, the caller's or a new one.
        span_id: this request's span.
        parent_id: the caller's span, when the request came with a ``traceparent``.
        flags: the trace flags, passed on (``01``: the caller samples it).
        state: the caller's ``tracestate``, passed on unread.
    """

    trace_id: str
    span_id: str
    parent_id: str | None = None
    flags: int = SAMPLED
    state: str | None = None

    def traceparent(self, span_id: str | None = None) -> str:
        """The header naming *span_id* (by default the request's own span) as the parent."""
        return f"00-{self.trace_id}-{span_id or self.span_id}-{self.flags:02x}"


def parse_traceparent(value: str) -> tuple[str, str, int] | None:
    """(trace id, parent span id, flags) of a valid header, else ``None`` (start a new trace)."""
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return None
    version = found["version"]
    if version == "ff" or (version == "00" and found["rest"] is not None):
        return None  # ff is forbidden; version 00 has exactly four fields
    trace, parent = found["trace"], found["parent"]
    if trace == _ZERO_TRACE or parent == _ZERO_SPAN:
        return None
    return trace, parent, int(found["flags"], 16)


def incoming_context(traceparent: str | None, tracestate: str | None) -> TraceContext:
    """The request's context: under the caller's trace when its header is valid, else a new trace."""
    parsed = parse_traceparent(traceparent) if traceparent else None
    if parsed is None:
        # A tracestate without a valid traceparent is dropped, as the recommendation says.
        return TraceContext(trace_id=new_trace_id(), span_id=new_span_id())
    trace_id, parent_id, flags = parsed
    state = tracestate.strip() if tracestate else None
    if state is not None and not _TRACESTATE.fullmatch(state):
        state = None
    return TraceContext(
        trace_id=trace_id, span_id=new_span_id(), parent_id=parent_id, flags=flags, state=state
    )


current_trace: ContextVar[TraceContext | None] = ContextVar("trio_books_trace", default=None)
"""The running request's trace context (set where the request enters the service)."""
