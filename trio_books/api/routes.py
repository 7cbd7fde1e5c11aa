"""The routes: ping, health, readiness, search, book, similar books and completion, identical in both builds."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from quart import Blueprint, Quart, Response, current_app, g, redirect, request
from quart.typing import ResponseReturnValue
from quart_schema import (
    document_response,
    validate_querystring,
    validate_response,
)

from trio_books.api.guards import unreadable_query
from trio_books.api.openapi import redirects
from trio_books.api.schemas import Engine, ErrorResponse, Health, Ping
from trio_books.api.service import SERVICE_KEY as SERVICE_KEY
from trio_books.api.service import SearchService
from trio_books.core.books import Book
from trio_books.core.completion import CompleteQuery, CompleteResponse
from trio_books.core.paging import link_header
from trio_books.core.query import SearchQuery
from trio_books.core.results import SearchResponse
from trio_books.core.similar import SimilarQuery, SimilarResponse
from trio_books.errors import TrioBooksError, error_body
from trio_books.settings import Settings

log = logging.getLogger("trio_books.app")


def install_service(app: Quart, service: SearchService | None) -> None:
    """Make *service* the one the routes use (``None`` when the app stops serving)."""
    app.extensions[SERVICE_KEY] = service


def service() -> SearchService:
    found: SearchService | None = current_app.extensions.get(SERVICE_KEY)
    if found is None:
        raise RuntimeError("the app is not serving: its Elasticsearch client is closed")
    return found


# The routes whose query string is read: refused early when it is not UTF-8.
QUERIED = frozenset({"api.search", "api.similar", "api.complete"})


def register_routes(app: Quart, settings: Settings) -> None:
    """Add every route to *app*; the API routes go under ``settings.api_prefix``."""

    @app.get("/")
    @validate_response(Ping)
    async def ping() -> Ping:
        """Ping: a canary for load balancers."""
        return Ping(message="Ping")

    @app.get("/healthz")
    @validate_response(Health)
    async def healthz() -> Health:
        """Liveness: 200 while the process runs."""
        return Health(status="ok")

    @app.get("/readyz")
    @validate_response(Health)
    @document_response(ErrorResponse, 503)
    async def readyz() -> Health | tuple[dict[str, object], int, dict[str, str]]:
        """Readiness: 200 when searches can succeed (the cluster answers, the index exists); else 503."""
        try:
            status = await service().ready()
        except TrioBooksError as error:
            # The client gets the public message; the log line (with the request id) the detail.
            log.warning("not ready: %s", error.log_message)
            body = {**error_body(error), "request_id": g.request_id}
            return body, 503, {"Retry-After": str(settings.retry_after)}
        engine = await service().identify_engine()
        return Health(
            status=status,
            engine=Engine(name=engine.name, version=engine.version) if engine else None,
            warnings=service().warnings,
        )

    api = Blueprint("api", __name__, url_prefix=settings.api_prefix or None)

    @api.before_request
    async def readable_query() -> None:
        # Before validation, which would see broken UTF-8 already replaced.
        if request.endpoint in QUERIED and (problem := unreadable_query(request.query_string)):
            raise problem

    @api.get("/search/")
    @validate_querystring(SearchQuery)
    @document_response(SearchResponse)
    @document_response(ErrorResponse, 422)
    @document_response(ErrorResponse, 502)
    @document_response(ErrorResponse, 503)
    @document_response(ErrorResponse, 504)
    async def search(query_args: SearchQuery) -> Response:
        """Search books by text, tags, year and language, with disjunctive facet counts.

        The hits and each facet are separate Elasticsearch requests run
        concurrently under one deadline; ``Server-Timing`` shows each one's
        start and duration. A facet that fails or runs out of time leaves the
        answer ``partial`` (200); the hits failing fails the request (502, 503,
        or 504 when the deadline passes).
        """
        search_service = service()
        g.timeline = search_service.new_timeline(g.get("started"))
        # Readable UTF-8: checked before validation (readable_query).
        params = parse_qsl(request.query_string.decode(), keep_blank_values=True)
        found = await search_service.search(query_args, g.timeline, params)
        # Validated as it was built: encoded once, by pydantic's own serializer,
        # rather than dumped to dicts and lists and encoded again (the hot path).
        answer = Response(found.model_dump_json(), content_type="application/json")
        if (links := link_header(found.next, found.prev)) is not None:
            answer.headers["Link"] = links
        return answer

    @api.get("/search")
    @redirects
    async def search_redirect() -> ResponseReturnValue:
        """Redirects to the canonical URL, `search/`, keeping the query string.

        Declared rather than left to the router's own redirect, so that the
        other methods get 405 with ``Allow`` here as on every path.
        """
        query = request.query_string.decode("latin-1")
        # Relative to this path: right under any prefix a proxy adds.
        return redirect("search/" + (f"?{query}" if query else ""), 308)

    @api.get("/books/<int:book_id>")
    @validate_response(Book)
    @document_response(ErrorResponse, 404)
    @document_response(ErrorResponse, 502)
    @document_response(ErrorResponse, 503)
    async def book(book_id: int) -> Book:
        """One book by its id."""
        return await service().book(book_id)

    @api.get("/books/<int:book_id>/similar")
    @validate_querystring(SimilarQuery)
    @validate_response(SimilarResponse)
    @document_response(ErrorResponse, 404)
    @document_response(ErrorResponse, 422)
    @document_response(ErrorResponse, 502)
    @document_response(ErrorResponse, 503)
    @document_response(ErrorResponse, 504)
    async def similar(book_id: int, query_args: SimilarQuery) -> SimilarResponse:
        """Books like this one, by its title words, its authors and its tags; never itself."""
        search_service = service()
        g.timeline = search_service.new_timeline(g.get("started"))
        return await search_service.similar(book_id, query_args, g.timeline)

    @api.get("/complete")
    @validate_querystring(CompleteQuery)
    @validate_response(CompleteResponse)
    @document_response(ErrorResponse, 422)
    @document_response(ErrorResponse, 502)
    @document_response(ErrorResponse, 503)
    @document_response(ErrorResponse, 504)
    async def complete(query_args: CompleteQuery) -> CompleteResponse:
        """Titles and authors that complete what the user has typed (search as you type).

        Two branches run together under ``COMPLETE_DEADLINE`` (300 ms by
        default): titles, required, and authors with their book counts,
        optional (``partial`` when they fail or run out of time).
        """
        search_service = service()
        g.timeline = search_service.new_timeline(g.get("started"))
        return await search_service.complete(query_args, g.timeline)

    app.register_blueprint(api)
