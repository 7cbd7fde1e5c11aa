"""Everything both builds add to their Quart app: OpenAPI, routes, the search page, errors as
JSON, headers, CORS."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from pydantic import ValidationError
from quart import Quart, Response, current_app, g, request
from quart_schema import Info, QuartSchema, RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from trio_books import __version__
from trio_books.api.cors import cors_headers, preflight_headers
from trio_books.api.routes import register_routes
from trio_books.api.ui import register_ui
from trio_books.core.timeline import trace_of
from trio_books.core.timing import server_timing
from trio_books.errors import (
    CorsRefused,
    FieldProblem,
    HttpProblem,
    InvalidParameter,
    TrioBooksError,
    error_body,
)
from trio_books.settings import Settings

log = logging.getLogger("trio_books.api")


def configure_app(app: Quart, settings: Settings) -> None:
    """Add the shared parts to a Quart or Quart-Trio *app*."""
    app.config["TRIO_BOOKS_SETTINGS"] = settings
    QuartSchema(
        app,
        info=Info(
            title="trio_books",
            version=__version__,
            description="Book search on Trio and Elasticsearch.",
        ),
        openapi_path="/openapi.json",
        swagger_ui_path="/docs",
        redoc_ui_path=None,
        scalar_ui_path=None,
    )
    # Keep JSON answers in the documented field order (set after QuartSchema,
    # which installs its own JSON provider).
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_routes(app, settings)
    register_ui(app, settings)
    _register_error_handlers(app)
    _register_headers(app, settings)


def json_error(error: TrioBooksError, extra: dict[str, Any] | None = None) -> Response:
    response = Response(
        orjson.dumps({**error_body(error), **(extra or {})}),
        status=error.status,
        content_type="application/json",
    )
    response.headers.update(error.headers())
    return response


def invalid_parameters(error: Exception) -> InvalidParameter:
    """Our 422 error from a query-string validation failure."""
    problems: list[FieldProblem] = []
    if isinstance(error, ValidationError):
        for item in error.errors(include_url=False):
            field = (
                ".".join(str(part) for part in item["loc"] if not isinstance(part, int)) or "query"
            )
            problems.append(FieldProblem(field=field, rule=item["type"], message=item["msg"]))
    if not problems:
        problems.append(FieldProblem(field="query", rule="invalid", message=str(error)[:200]))
    return InvalidParameter(problems)


def _register_error_handlers(app: Quart) -> None:
    @app.errorhandler(TrioBooksError)
    async def ours(error: TrioBooksError) -> Response:
        if error.status >= 500:
            log.warning("answered %s: %s", error.status, error.message)
        # A failed search's timeline is the most telling one: return it when asked.
        timeline = g.get("timeline")
        settings: Settings = current_app.config["TRIO_BOOKS_SETTINGS"]
        wants_trace = request.args.get("trace", "").lower() in {"1", "true", "yes", "on"}
        if timeline is not None and wants_trace and settings.allow_trace:
            return json_error(error, {"trace": trace_of(timeline).model_dump(mode="json")})
        return json_error(error)

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid(error: RequestSchemaValidationError) -> Response:
        return json_error(invalid_parameters(error.validation_error))

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        response = json_error(
            HttpProblem(
                error.code or 500,
                (error.name or "error").lower().replace(" ", "_"),
                error.description or error.name or "error",
            )
        )
        if error.code == 405 and (allow := error.get_headers()):
            response.headers.update({k: v for k, v in allow if k.lower() == "allow"})
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unexpected error", exc_info=error)
        return json_error(TrioBooksError("internal error"))


def _register_headers(app: Quart, settings: Settings) -> None:
    @app.before_request
    async def start_clock() -> Response | None:
        g.started = time.perf_counter()
        origin = request.headers.get("Origin")
        if (
            request.method == "OPTIONS"
            and origin
            and "Access-Control-Request-Method" in request.headers
        ):
            headers = preflight_headers(
                origin,
                settings.cors_origins,
                request.headers.get("Access-Control-Request-Headers", ""),
            )
            if headers is None:
                return json_error(
                    CorsRefused(f"cross-origin requests from {origin} are not allowed")
                )
            return Response("", status=204, headers=headers)
        return None

    @app.after_request
    async def add_headers(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        response.headers["X-Process-Time"] = f"{elapsed:.6f}"
        timeline = g.get("timeline")
        response.headers["Server-Timing"] = server_timing(
            timeline.spans if timeline else (), elapsed
        )
        origin = request.headers.get("Origin")
        if origin and request.method != "OPTIONS":
            response.headers.update(cors_headers(origin, settings.cors_origins))
        return response
