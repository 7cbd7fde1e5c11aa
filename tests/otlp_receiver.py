"""A stand-in OTLP/HTTP trace receiver, in the test's own Trio loop, that decodes what arrives.

``receiver = await nursery.start(serve_otlp)`` listens on a free loopback port and keeps
every span posted to ``/v1/traces``, decoded from protobuf by OpenTelemetry's own
message classes (``opentelemetry-proto``): what a real collector or Jaeger would
receive. It stands in for a trace backend in ``nox -s tests``; ``nox -s jaeger`` runs
the real Jaeger.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]


@dataclass
class Receiver:
    url: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return found


async def serve_otlp(*, task_status: trio.TaskStatus[Receiver] = trio.TASK_STATUS_IGNORED) -> None:
    """Receive OTLP/HTTP traces on 127.0.0.1 until cancelled."""
    receiver = Receiver()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, answer = 404, b""
        if scope["method"] == "POST" and scope["path"] == "/v1/traces":
            headers = dict(scope["headers"])
            if headers.get(b"content-encoding") == b"gzip":
                body = gzip.decompress(body)
            receiver.spans.extend(decode(body))
            status, answer = 200, ExportTraceServiceResponse().SerializeToString()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/x-protobuf")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        receiver.url = binds[0]
        task_status.started(receiver)
