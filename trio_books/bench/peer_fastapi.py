"""The peer a user would pick instead: FastAPI on Uvicorn with the official async Elasticsearch client.

It exists only to be measured against (``bench --targets fastapi``). It serves
the same ``GET /api/v1/search/`` contract (the same query model, request bodies
and response model, taken from the pure core) written the way the FastAPI
sample does it: ``AsyncElasticsearch`` (elasticsearch-py 8, over aiohttp) and
the four requests gathered with ``asyncio.gather``. Uvicorn picks uvloop and
httptools when they are installed, as they are with the ``bench`` extra.

It runs against Elasticsearch only: the official client refuses a server that
does not name itself Elasticsearch (OpenSearch has a client of its own), so the
benchmark measures it on the Elasticsearch node alone.

Run: ``python -m trio_books.bench.peer_fastapi --port 5160 [--workers N]``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from fastapi import FastAPI, HTTPException, Query, Request

from trio_books.api.schemas import Ping
from trio_books.core.query import SearchQuery, search_requests
from trio_books.core.results import SearchResponse, parse_search
from trio_books.es.connection import ConnectionConfig, connection_config
from trio_books.settings import Settings, load_settings

FACTORY = "trio_books.bench.peer_fastapi:create_app"


def official_client_options(config: ConnectionConfig) -> dict[str, Any]:
    """*config*'s TLS options and credentials, in the official client's names."""
    tls = config.tls
    options: dict[str, Any] = {"verify_certs": tls.verify_certs}
    for name, value in (
        ("ca_certs", tls.ca_certs),
        ("ssl_assert_fingerprint", tls.assert_fingerprint),
        ("client_cert", tls.client_cert),
        ("client_key", tls.client_key),
    ):
        if value is not None:
            options[name] = value
    if config.http_compress:
        options["http_compress"] = True
    credentials = config.credentials
    if credentials is not None:
        if credentials.kind == "api_key":
            options["api_key"] = credentials.token()
        elif credentials.kind == "bearer":
            options["bearer_auth"] = credentials.token()
        else:
            options["basic_auth"] = credentials.basic_pair()
    return options


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app; settings come from the same ``TRIO_BOOKS_*`` environment."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client per serving lifetime, as the trio_books builds do, over the
        # same connection configuration: nodes, TLS and credentials.
        config = connection_config(settings)
        es = AsyncElasticsearch(
            config.urls,
            request_timeout=config.timeout,
            connections_per_node=config.max_connections,
            **official_client_options(config),
        )
        app.state.es = es
        try:
            yield
        finally:
            await es.close()

    app = FastAPI(title="trio_books FastAPI peer", lifespan=lifespan)

    @app.get("/", response_model=Ping)
    async def ping() -> Ping:
        # The reference sample's ping route, so the ``ping`` workload measures the peer too.
        return Ping(message="Ping")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(f"{settings.api_prefix}/search/", response_model=SearchResponse)
    async def search(request: Request, query: Annotated[SearchQuery, Query()]) -> SearchResponse:
        es: AsyncElasticsearch = request.app.state.es
        bodies = search_requests(query, settings.facet_size)
        try:
            answers = await asyncio.gather(
                *(es.search(index=settings.index, body=body) for body in bodies.values())
            )
        except ApiError as error:
            raise HTTPException(502, f"Elasticsearch answered {error.meta.status}") from error
        except TransportError as error:
            raise HTTPException(503, "Elasticsearch is unreachable") from error
        by_name: dict[str, Any] = {
            name: answer.body for name, answer in zip(bodies, answers, strict=True)
        }
        return parse_search(by_name)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The FastAPI + Uvicorn peer of trio_books.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    uvicorn.run(
        FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
