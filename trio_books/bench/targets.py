"""The targets: what each one runs, and which HTTP client carries its Elasticsearch calls."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One thing to measure.

    Attributes:
        name: as given to ``--targets``.
        server: the HTTP server and framework that answer the benchmark's requests.
        es_client: the HTTP client that carries its calls to Elasticsearch.
        module_args: ``python -m`` arguments that serve it (``None``: no server of ours).
        env: settings that make this target what it is, on top of the run's own.
        secure: served from the secured node (``--secure-es``): https with its CA
            file, as the reader user; else from the run's Elasticsearch.
        workloads: the only workloads it takes part in (``None``: all of them).
        one_process: serves with one process whatever ``--workers`` says.
        traced: exports every request's spans over OTLP/HTTP (``OTEL_EXPORTER_OTLP_ENDPOINT``)
            to the benchmark's sink stand-in (:mod:`.otlp_sink`).
    """

    name: str
    server: str
    es_client: str
    module_args: tuple[str, ...] | None
    env: tuple[tuple[str, str], ...] = ()
    secure: bool = False
    workloads: tuple[str, ...] | None = None
    one_process: bool = False
    traced: bool = False

    def takes(self, workload: str) -> bool:
        """Whether this target takes part in *workload*."""
        return self.workloads is None or workload in self.workloads

    def command(self, port: int, workers: int) -> list[str]:
        """The command line that serves this target on 127.0.0.1:*port*."""
        if self.module_args is None:
            raise ValueError(f"{self.name} has no server of its own")
        return [
            sys.executable,
            "-m",
            *self.module_args,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(1 if self.one_process else workers),
        ]


# The reference sample the FastAPI peer follows has searches, not completion.
PEER_WORKLOADS = ("search", "facets", "mixed", "ping")

TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            "trio",
            "Quart-Trio on Hypercorn's protocol in trio_books' lean Trio shell",
            "httpx (one shared AsyncClient) over trio_books' Trio transport (h11), fan-out in a Trio nursery",
            ("trio_books", "serve", "--build", "trio"),
        ),
        Target(
            "trio-hypercorn",
            "Quart-Trio on Hypercorn's own trio worker and shell (SERVER_SHELL=hypercorn)",
            "httpx (one shared AsyncClient) over trio_books' Trio transport (h11), fan-out in a Trio nursery",
            ("trio_books", "serve", "--build", "trio"),
            env=(("TRIO_BOOKS_SERVER_SHELL", "hypercorn"),),
        ),
        Target(
            "trio-otel",
            "Quart-Trio in the lean Trio shell (the Trio build), every request's spans "
            "exported over OTLP/HTTP (the otel extra) to a sink stand-in",
            "httpx (one shared AsyncClient) over trio_books' Trio transport (h11), fan-out in a Trio nursery",
            ("trio_books", "serve", "--build", "trio"),
            traced=True,
        ),
        Target(
            "trio-stock",
            "Quart-Trio in the lean Trio shell (the Trio build)",
            "httpx (one shared AsyncClient) over httpx's stock transport, one httpcore pool "
            "as httpx ships it, fan-out in a Trio nursery",
            ("trio_books", "serve", "--build", "trio"),
            env=(("TRIO_BOOKS_ES_TRANSPORT", "stock"),),
        ),
        Target(
            "trio-sharded",
            "Quart-Trio in the lean Trio shell (the Trio build)",
            "httpx (one shared AsyncClient) over several httpcore pools used in turn "
            "(the mitigation before trio_books' transport), fan-out in a Trio nursery",
            ("trio_books", "serve", "--build", "trio"),
            env=(("TRIO_BOOKS_ES_TRANSPORT", "sharded"),),
        ),
        Target(
            "asyncio",
            "Quart on Hypercorn's asyncio worker",
            "httpx (one shared AsyncClient) over trio_books' asyncio transport (h11), fan-out in an asyncio.TaskGroup",
            ("trio_books", "serve", "--build", "asyncio"),
        ),
        Target(
            "asyncio-uvloop",
            "Quart on Hypercorn's uvloop worker",
            "httpx (one shared AsyncClient) over trio_books' asyncio transport (h11), fan-out in an asyncio.TaskGroup",
            ("trio_books", "serve", "--build", "asyncio", "--loop", "uvloop"),
        ),
        Target(
            "fastapi",
            "FastAPI on Uvicorn (uvloop, httptools)",
            "elasticsearch-py 8 AsyncElasticsearch (aiohttp), asyncio.gather",
            ("trio_books.bench.peer_fastapi",),
            workloads=PEER_WORKLOADS,
        ),
        Target(
            "trio-tls",
            "Quart-Trio in the lean Trio shell (the Trio build)",
            "httpx (one shared AsyncClient) over trio_books' Trio transport (h11 over TLS, "
            "basic auth), fan-out in a Trio nursery",
            ("trio_books", "serve", "--build", "trio"),
            secure=True,
        ),
        Target(
            "fastapi-tls",
            "FastAPI on Uvicorn (uvloop, httptools)",
            "elasticsearch-py 8 AsyncElasticsearch (aiohttp, TLS, basic auth), asyncio.gather",
            ("trio_books.bench.peer_fastapi",),
            workloads=PEER_WORKLOADS,
            secure=True,
        ),
        Target(
            "h11-trio",
            "the physical reference: a minimal h11-on-Trio server (no ASGI, no framework), "
            "ping only, one process",
            "none",
            ("trio_books.bench.h11_reference",),
            workloads=("ping",),
            one_process=True,
        ),
        Target(
            "es-direct",
            "Elasticsearch itself (the ceiling)",
            "none: wrk sends the service's Elasticsearch requests, pipelined on one connection",
            None,
        ),
    )
}
