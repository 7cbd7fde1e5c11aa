"""Structured logs: one JSON object per line, each request's lines carrying its request id.

A request id comes from the client's ``X-Request-Id`` when it is short and
plain (see :func:`request_id`), else it is made here; the answer returns it in
the same header. User input reaches a log line only as a bounded prefix
(:func:`bounded`), so a hostile request cannot flood or forge the logs.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

import orjson

from trio_books.core.timeline import current_span
from trio_books.core.trace_context import current_trace
from trio_books.settings import Settings

REQUEST_ID_HEADER = "X-Request-Id"
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
current_request_id: ContextVar[str | None] = ContextVar("trio_books_request_id", default=None)

# Attributes every LogRecord has; anything else was passed in ``extra=`` and is logged as a field.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def request_id(incoming: str | None) -> str:
    """The client's id when it is 1-64 plain characters, else a new random one."""
    if incoming is not None and _PLAIN_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """*text* with control characters written as escapes (``\\n``, ``\\x1b``…).

    A request path arrives percent-decoded: without this, ``%0A`` would start a
    forged log line in the text format and ``%1B[`` would colour a terminal.
    """
    return _UNPRINTABLE.sub(lambda found: found.group().encode("unicode_escape").decode(), text)


def bounded(text: str, limit: int) -> str:
    """At most *limit* characters of *text*, marked with ``…`` when cut."""
    return text if len(text) <= limit else text[:limit] + "…"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (rid := current_request_id.get()) is not None:
            entry["request_id"] = rid
        if (trace := current_trace.get()) is not None:
            # ECS's names, which Kibana and the APM UI join traces and logs by.
            span = current_span.get()
            entry["trace.id"] = trace.trace_id
            entry["span.id"] = span.span_id if span is not None else trace.span_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(settings: Settings) -> None:
    """Send every log line (ours and Hypercorn's) to stderr in the configured format.

    Called once per process by whoever serves, never at import time.
    """
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # httpx logs every Elasticsearch call at INFO: one line per branch is noise and CPU.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Hypercorn's own loggers propagate here instead of printing their own format.
    for name in ("hypercorn.error", "hypercorn.access"):
        hypercorn_logger = logging.getLogger(name)
        hypercorn_logger.handlers.clear()
        hypercorn_logger.propagate = True
