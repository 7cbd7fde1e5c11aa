"""Everything both builds add to their Quart app: OpenAPI, routes, the search page, errors as
JSON, headers, CORS.

Before any route runs, each request gets an id and its head is checked against
the caps (:mod:`trio_books.api.guards`); every answer carries the security
headers (:mod:`trio_books.api.security`) and, when access logging is on, one
log line.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from pydantic import ValidationError
from quart import Quart, Response, current_app, g, request
from quart_schema import Info, QuartSchema, RequestSchemaValidationError, hide
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from trio_books import __version__
from trio_books.api.cors import cors_headers, preflight_headers
from trio_books.api.graceful import GRACEFUL_KEY, MakeGracefulCut
from trio_books.api.guards import oversized
from trio_books.api.json_provider import use_orjson
from trio_books.api.metrics import (
    CONTENT_TYPE,
    METRICS_PATH,
    UNMATCHED,
    LiveSources,
    ServiceMetrics,
    method_label,
)
from trio_books.api.metrics_listener import MetricsListener
from trio_books.api.openapi import ClientReadyDocument
from trio_books.api.otel import TimelineExporter, exporter_from_environment
from trio_books.api.proxying import behind_proxies
from trio_books.api.request_ids import RequestIds
from trio_books.api.routes import SERVICE_KEY, register_routes
from trio_books.api.security import (
    HEADERS,
    POLICIES_KEY,
    add_content_security_policy,
    docs_policy,
    policy_for,
    with_inline_hashes,
)
from trio_books.api.shedding import DoorShedder
from trio_books.api.tally import RequestTally
from trio_books.api.ui import register_ui
from trio_books.core.timeline import trace_of
from trio_books.core.timing import server_timing
from trio_books.errors import (
    BodyTooLarge,
    CorsRefused,
    FieldProblem,
    HttpProblem,
    InvalidParameter,
    TrioBooksError,
    error_body,
)
from trio_books.logs import REQUEST_ID_HEADER, bounded, current_request_id, printable, request_id
from trio_books.settings import Settings

log = logging.getLogger("trio_books.api")
access_log = logging.getLogger("trio_books.access")
DOCS_PATH = "/docs"
TALLY_KEY = "trio_books.tally"
METRICS_KEY = "trio_books.metrics"
OTEL_KEY = "trio_books.otel"
SHEDDER_KEY = "trio_books.shedder"


def configure_app(app: Quart, settings: Settings, graceful: MakeGracefulCut) -> None:
    """Add the shared parts to a Quart or Quart-Trio *app*.

    *graceful* makes the build's own middleware that answers, at the graceful
    timeout, the requests still running (:mod:`trio_books.api.graceful`).
    """
    app.config["TRIO_BOOKS_SETTINGS"] = settings
    QuartSchema(
        app,
        info=Info(
            title="trio_books",
            version=__version__,
            description="Book search on Trio and Elasticsearch.",
        ),
        openapi_path="/openapi.json" if settings.openapi else None,
        swagger_ui_path=DOCS_PATH if settings.docs and settings.openapi else None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        openapi_provider_class=ClientReadyDocument,
    )
    # The API reads no body; Quart stops buffering one past this size.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["BODY_TIMEOUT"] = settings.read_timeout
    app.config.setdefault(POLICIES_KEY, {})
    if settings.docs and settings.openapi:
        add_content_security_policy(
            app,
            DOCS_PATH,
            docs_policy(
                app.config["QUART_SCHEMA_SWAGGER_JS_URL"],
                app.config["QUART_SCHEMA_SWAGGER_CSS_URL"],
            ),
        )
    # Set after QuartSchema, which installs its own JSON provider: orjson in front
    # of it, keys in the documented field order.
    use_orjson(app)
    register_routes(app, settings)
    register_ui(app, settings)
    _register_error_handlers(app)
    _register_headers(app, settings)
    # At most every slot and queue place of the admission gate may be inside the app.
    shedder = DoorShedder(
        app.asgi_app,  # type: ignore[arg-type]
        prefix=settings.api_prefix or "/",
        limit=settings.max_in_flight + settings.max_queued,
        retry_after=settings.retry_after,
        access_log=settings.access_log,
    )
    app.extensions[SHEDDER_KEY] = shedder
    cut = graceful(shedder, settings.graceful_timeout)
    app.extensions[GRACEFUL_KEY] = cut
    # The door's own 503s, and those of the cut at shutdown, are requests begun and answered too.
    tally = RequestTally(cut)
    # Outermost: the request's id, for every line logged for it, the server's included.
    app.asgi_app = RequestIds(tally)  # type: ignore[assignment, method-assign]
    app.extensions[TALLY_KEY] = tally
    if (exporter := exporter_from_environment()) is not None:
        _register_export(app, exporter)
    if settings.metrics:
        metrics = _register_metrics(app, public=settings.metrics_port is None)
        if settings.metrics_port is not None:
            # Outermost: a request on the metrics port never reaches the app.
            app.asgi_app = MetricsListener(  # type: ignore[assignment, method-assign]
                app.asgi_app,  # type: ignore[arg-type]
                port=settings.metrics_port,
                metrics=metrics,
                path=METRICS_PATH,
            )
    # Outermost of all: the client's address and the path as the proxy in front saw them.
    app.asgi_app = behind_proxies(  # type: ignore[assignment, method-assign]
        app.asgi_app,  # type: ignore[arg-type]
        hops=settings.trusted_proxy_hops,
        root_path=settings.root_path,
    )


def _register_export(app: Quart, exporter: TimelineExporter) -> None:
    """Export each answered request that has a timeline; flush and stop when serving ends."""
    app.extensions[OTEL_KEY] = exporter

    @app.after_request
    async def export_trace(response: Response) -> Response:
        if (timeline := g.get("timeline")) is not None:
            rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            exporter.export(
                timeline,
                name=f"{method_label(request.method)} {rule}",
                attributes={"http.request.method": request.method, "http.route": rule},
                status=response.status_code,
            )
        return response

    @app.after_serving
    async def flush_traces() -> None:
        # The processor's flush and join block: in a worker thread, off the event loop.
        await app.sync_to_async(exporter.close)()


def _register_metrics(app: Quart, *, public: bool) -> ServiceMetrics:
    """The app's metrics; ``GET /metrics`` on the public port too when *public*."""
    metrics = ServiceMetrics()
    app.extensions[METRICS_KEY] = metrics
    metrics.watch(
        lambda: LiveSources(
            tally=app.extensions.get(TALLY_KEY),
            shedder=app.extensions.get(SHEDDER_KEY),
            service=app.extensions.get(SERVICE_KEY),
        )
    )

    if not public:
        return metrics

    # Off the OpenAPI document: for the operator's scraper, not for API clients.
    @app.get(METRICS_PATH)
    @hide
    async def prometheus_metrics() -> Response:
        """The service's figures in Prometheus's text format (no Elasticsearch call)."""
        return Response(metrics.render(), content_type=CONTENT_TYPE)

    return metrics


def json_error(error: TrioBooksError, extra: dict[str, Any] | None = None) -> Response:
    """The error's JSON answer, with the request id its log line carries."""
    body = error_body(error)
    if (rid := current_request_id.get()) is not None:
        body["request_id"] = rid
    response = Response(
        orjson.dumps({**body, **(extra or {})}),
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
            log.warning("answered %s: %s", error.status, error.log_message)
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


# The headers every answer gets unless it has its own, with their names lowercased once.
SECURE_HEADERS = tuple((name.lower(), name, value) for name, value in HEADERS.items())


def _register_headers(app: Quart, settings: Settings) -> None:
    @app.before_request
    async def start_clock() -> Response | None:
        g.started = time.perf_counter()
        # Set where the request came in (api.request_ids); made here only if
        # the app is driven below that layer.
        g.request_id = current_request_id.get() or request_id(
            request.headers.get(REQUEST_ID_HEADER)
        )
        current_request_id.set(g.request_id)
        scope = request.scope
        if too_large := oversized(
            settings,
            raw_path=scope.get("raw_path") or scope["path"].encode(),
            query_string=scope.get("query_string", b""),
            headers=scope.get("headers", ()),
        ):
            return json_error(too_large)
        if "Transfer-Encoding" in request.headers:
            # A body of unknown length: read it (Quart stops at MAX_CONTENT_LENGTH) to know.
            try:
                await request.get_data(cache=False)
            except RequestEntityTooLarge:
                return json_error(
                    BodyTooLarge(f"the body is over the {settings.max_body_bytes} bytes accepted")
                )
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
                # The origin stays out of the answer (its sender knows it); the log has it.
                log.info("refused a preflight from origin %s", printable(bounded(origin, 200)))
                return json_error(
                    CorsRefused("cross-origin requests from this origin are not allowed")
                )
            return Response("", status=204, headers=headers)
        return None

    @app.after_request
    async def add_headers(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        response.headers["X-Process-Time"] = f"{elapsed:.6f}"
        timeline = g.get("timeline")
        response.headers["Server-Timing"] = server_timing(
            timeline.spans if timeline else (), elapsed, detailed=settings.allow_trace
        )
        origin = request.headers.get("Origin")
        if origin and request.method != "OPTIONS":
            response.headers.update(cors_headers(origin, settings.cors_origins))
        await _secure(response)
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or request_id(None)
        if settings.access_log:
            _log_access(response, elapsed, settings.log_input_prefix)
        if (metrics := app.extensions.get(METRICS_KEY)) is not None:
            rule = request.url_rule.rule if request.url_rule is not None else None
            metrics.observe_request(rule, request.method, response.status_code, elapsed)
        return response

    async def _secure(response: Response) -> None:
        # One pass over the answer's headers, one extend: a setdefault per header
        # rescans them each time (a few per cent of a ping's CPU in the profile).
        present = {name.lower() for name, _value in response.headers.items()}
        added = [(name, value) for lower, name, value in SECURE_HEADERS if lower not in present]
        if "content-security-policy" not in present:
            policy = policy_for(request.path, app.config[POLICIES_KEY])
            if "{inline}" in policy:
                policy = with_inline_hashes(policy, await response.get_data(as_text=False))
            added.append(("Content-Security-Policy", policy))
        response.headers.extend(added)


def _log_access(response: Response, elapsed: float, limit: int) -> None:
    """One line per request; user input only as a bounded prefix, control characters escaped."""
    method = printable(bounded(request.method, 16))
    path = printable(bounded(request.path, limit))
    access_log.info(
        "%s %s %s",
        method,
        path,
        response.status_code,
        extra={
            "method": method,
            "path": path,
            "query": printable(bounded(request.query_string.decode("latin-1"), limit)),
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 3),
            "client": (request.scope.get("client") or ("-",))[0],
        },
    )
