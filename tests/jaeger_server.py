"""A real Jaeger receiving the service's traces over OTLP/HTTP, for ``tests/test_jaeger.py``.

``jaeger = await nursery.start(serve_jaeger, binary, tmp_path)`` runs the Jaeger
binary that ``nox -s jaeger`` builds (``tests/jaeger/go.mod``) with in-memory
storage, its OTLP/HTTP receiver and query API on free loopback ports and nothing
else listening, until the nursery is cancelled. :meth:`JaegerInfo.trace` asks the
query API for one trace, as Jaeger's UI does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio
from processes import free_port, run_program

STARTUP_LIMIT = 60.0
# Jaeger batches what it receives before storing it: a short wait keeps the test short.
BATCH_TIMEOUT = "100ms"


@dataclass(frozen=True)
class JaegerInfo:
    # Where the service sends its spans (OTEL_EXPORTER_OTLP_ENDPOINT).
    otlp_url: str
    # Jaeger's query API (and UI).
    query_url: str

    async def trace(self, trace_id: str, spans: int, *, limit: float = 30) -> dict[str, Any]:
        """The trace *trace_id* as Jaeger's query API gives it, once it holds *spans* spans.

        Raises:
            TimeoutError: fewer had arrived after *limit* seconds.
        """
        async with httpx.AsyncClient(base_url=self.query_url, timeout=10) as http:
            with trio.fail_after(limit):
                while True:
                    answer = await http.get(f"/api/traces/{trace_id}")
                    if answer.status_code == 200:
                        (found,) = answer.json()["data"]
                        if len(found["spans"]) >= spans:
                            return dict(found)
                    await trio.sleep(0.1)


def jaeger_config(otlp_port: int, query_port: int, query_grpc_port: int) -> str:
    """An all-in-one configuration: OTLP/HTTP in, memory storage, the query API; all on loopback."""
    return f"""\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 10000
  jaeger_query:
    # Its own traces would go to OTLP's default port, and its stop wait 10 s for them.
    enable_tracing: false
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_port}
processors:
  batch:
    timeout: {BATCH_TIMEOUT}
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
"""


async def serve_jaeger(
    binary: str,
    workdir: Path,
    *,
    task_status: trio.TaskStatus[JaegerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run Jaeger until cancelled; its log goes to ``workdir/jaeger.log``.

    Raises:
        RuntimeError: Jaeger exited (the message ends with its log).
        TimeoutError: it was not ready within ``STARTUP_LIMIT`` seconds.
    """
    await trio.Path(workdir).mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(3)]
    config = workdir / "jaeger.yaml"
    await trio.Path(config).write_text(jaeger_config(*ports))
    info = JaegerInfo(f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
    await run_program(
        [binary, f"--config={config}"],
        workdir / "jaeger.log",
        lambda: _ready(info),
        lambda: task_status.started(info),
        startup_limit=STARTUP_LIMIT,
    )


async def _ready(info: JaegerInfo) -> bool:
    """Both ends answer: the query API, and the receiver (an empty export is a valid one)."""
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            query = await http.get(f"{info.query_url}/api/services")
            receiver = await http.post(
                f"{info.otlp_url}/v1/traces",
                content=b"",
                headers={"content-type": "application/x-protobuf"},
            )
    except httpx.HTTPError:
        return False
    return query.status_code == 200 and receiver.status_code == 200
