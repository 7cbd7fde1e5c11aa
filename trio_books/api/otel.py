"""Each request's timeline as OpenTelemetry spans, sent over OTLP/HTTP when the environment asks.

Set ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and,
with the ``otel`` extra installed, every API request that ran Elasticsearch calls is
exported when it is answered: its server span (under the caller's ``traceparent``,
:mod:`trio_books.core.trace_context`) and a client span per task of its timeline,
with the ids the timeline already gave them. It is the same record ``Server-Timing``,
``?trace=1`` and the metrics read: nothing is timed twice. The other standard
variables apply as OpenTelemetry defines them (``OTEL_SERVICE_NAME``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_MAX_QUEUE_SIZE``, ``OTEL_SDK_DISABLED``…).

Unset, nothing is imported and nothing is done. Set, the SDK's batch processor holds
the spans in a bounded queue and a thread of its own sends them: the export's
blocking HTTP never runs on the event loop, and when the backend falls behind the
queue drops spans rather than making requests wait. The processor belongs to the
app: it is flushed and stopped when serving ends (``after_serving``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trio_books import __version__
from trio_books.core.timeline import Span, Timeline
from trio_books.core.trace_context import SAMPLED
from trio_books.es.connection import redact_url

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger("trio_books.otel")
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# A span's outcome on the timeline → whether OpenTelemetry calls it an error.
FAILED = frozenset({"error", "timed out"})
# How long the last spans may take to leave when serving ends.
FLUSH_MILLIS = 5000


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for export (an endpoint set, the SDK not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


class TimelineExporter:
    """Turns answered requests' timelines into spans for one batch processor."""

    def __init__(self, processor: BatchSpanProcessor) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.processor = processor
        # Named by OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES, else by its own name.
        named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        self.resource = Resource.create({} if named else {"service.name": "trio_books"})
        self.scope = InstrumentationScope("trio_books", __version__)

    def export(
        self, timeline: Timeline, *, name: str, attributes: Mapping[str, Any], status: int
    ) -> None:
        """Queue *timeline*'s request span (*name*, answered with *status*) and its tasks' spans."""
        trace = timeline.trace
        if trace is None or not trace.flags & SAMPLED:
            return  # the caller chose not to record this trace
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
        from opentelemetry.trace.span import TraceState

        trace_id = int(trace.trace_id, 16)
        flags = TraceFlags(trace.flags)
        state = TraceState.from_header([trace.state]) if trace.state else None

        def context(span_id: str, *, remote: bool = False) -> SpanContext:
            return SpanContext(
                trace_id, int(span_id, 16), is_remote=remote, trace_flags=flags, trace_state=state
            )

        def at(offset: float) -> int:
            return timeline.wall_origin_ns + int(offset * 1e9)

        end = timeline.now()
        request = ReadableSpan(
            name=name,
            context=context(trace.span_id),
            parent=context(trace.parent_id, remote=True) if trace.parent_id else None,
            resource=self.resource,
            attributes={**attributes, "http.response.status_code": status},
            kind=SpanKind.SERVER,
            status=Status(StatusCode.ERROR) if status >= 500 else Status(StatusCode.UNSET),
            start_time=at(0.0),
            end_time=at(end),
            instrumentation_scope=self.scope,
        )
        self.processor.on_end(request)
        for span in timeline.spans:
            self.processor.on_end(
                ReadableSpan(
                    name=f"es-{span.name}",
                    context=context(span.span_id),
                    parent=context(span.parent_id or trace.span_id),
                    resource=self.resource,
                    attributes=task_attributes(span),
                    kind=SpanKind.CLIENT,
                    status=(
                        Status(StatusCode.ERROR, span.detail)
                        if span.outcome in FAILED
                        else Status(StatusCode.UNSET)
                    ),
                    start_time=at(span.start),
                    end_time=at(end if span.end is None else span.end),
                    instrumentation_scope=self.scope,
                )
            )

    def close(self) -> None:
        """Send what is queued (for a few seconds at most), then stop the processor's thread."""
        self.processor.force_flush(FLUSH_MILLIS)
        self.processor.shutdown()  # type: ignore[no-untyped-call]


def task_attributes(span: Span) -> dict[str, Any]:
    """What a task's span says: the system, the node (no credentials), how it ended."""
    attributes: dict[str, Any] = {
        "db.system.name": "elasticsearch",
        "trio_books.outcome": span.outcome,
    }
    if span.node is not None:
        attributes["server.address"] = redact_url(span.node)
    if span.code is not None:
        attributes["error.type"] = span.code
    return attributes


def exporter_from_environment() -> TimelineExporter | None:
    """The exporter the OTEL_* variables ask for; ``None`` when they ask for none.

    Without the ``otel`` extra, a warning says how to install it and nothing is exported.
    """
    if not wanted():
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'trio_books[otel]'; no trace is exported"
        )
        return None
    # Endpoint, headers, timeout, certificates and queue sizes: from the OTEL_* variables.
    return TimelineExporter(BatchSpanProcessor(OTLPSpanExporter()))
