"""The service's log lines as its JSON format writes them, request id included, for tests to read."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from trio_books.logs import JsonFormatter


class Lines(logging.Handler):
    """The service's log lines as its JSON format writes them (request id included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))

    def of(self, request_id: str) -> list[str]:
        return [line["message"] for line in self.lines if line.get("request_id") == request_id]


@contextmanager
def lines_of(name: str = "trio_books") -> Iterator[Lines]:
    """Collect what the *name* logger (and its children) write while the block runs."""
    lines = Lines()
    logger = logging.getLogger(name)
    logger.addHandler(lines)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)
