"""The access log: user input cannot forge or colour a line, and requests shed at the door are logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing
from log_lines import Lines
from servers import api_client

from trio_books.api.shedding import SHED_LOG_EVERY, DoorShedder
from trio_books.settings import Settings

FORGED = "/api/v1/search/%0A2026-12-03 ERROR trio_books.api forged%1B%5B31m%E2%80%A8red"


async def test_a_path_cannot_start_a_line_or_send_an_escape(
    build: str, api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_books.access")
    async with api_client(build, api_settings) as http:
        await http.get(FORGED)
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    lines = [text.format(record) for record in caplog.records if record.name == "trio_books.access"]
    assert len(lines) == 1, lines
    line = lines[0]
    for raw in ("\n", "\x1b", "\u2028"):
        assert raw not in line
    assert "/api/v1/search/\\n2026-12-03 ERROR trio_books.api forged\\x1b[31m\\u2028red" in line


async def answer_after(event: trio.Event, sent: list[dict[str, Any]]) -> Any:
    """An ASGI app that answers 200 once *event* is set: a request held inside the service."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await event.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def http_scope(request_id: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/search/",
        "headers": [(b"x-request-id", request_id.encode())],
    }


async def test_a_request_shed_at_the_door_keeps_its_id_and_is_logged(
    log_lines: Lines, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_books.access")
    release = trio.Event()
    sent: list[dict[str, Any]] = []
    shedder = DoorShedder(
        await answer_after(release, sent), prefix="/api/v1", limit=1, retry_after=1
    )

    async def nothing() -> dict[str, Any]:
        return {"type": "http.request"}

    async def keep(message: dict[str, Any]) -> None:
        sent.append(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(shedder, http_scope("inside"), nothing, keep)
        await trio.testing.wait_all_tasks_blocked()  # inside, holding the one place
        for n in range(1, SHED_LOG_EVERY + 1):
            await shedder(http_scope(f"shed-{n}"), nothing, keep)
        release.set()
    starts = [m for m in sent if m["type"] == "http.response.start" and m["status"] == 503]
    assert len(starts) == SHED_LOG_EVERY
    assert dict(starts[0]["headers"])[b"x-request-id"] == b"shed-1"
    # The first and every SHED_LOG_EVERY-th, each with its own request id.
    assert log_lines.of("shed-1") == ["GET /api/v1/search/ 503 shed at the door (1 so far)"]
    assert log_lines.of(f"shed-{SHED_LOG_EVERY}") == [
        f"GET /api/v1/search/ 503 shed at the door ({SHED_LOG_EVERY} so far)"
    ]
    assert log_lines.of("shed-2") == []
