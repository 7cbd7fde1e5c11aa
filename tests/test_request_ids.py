"""Every line logged for a request carries that request's id, the server's own lines included.

The id is the client's ``X-Request-Id`` when plain, else one made for the
request and sent back in the same header. Lines are read as the JSON format
writes them, from the root logger, while one request at a time is served.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio
from log_lines import Lines, lines_of
from servers import api_client

from trio_books.api.application import TALLY_KEY
from trio_books.serving import hypercorn_config
from trio_books.settings import Settings
from trio_books.trio.app import create_app
from trio_books.trio.serve import serve_app

pytestmark = pytest.mark.elasticsearch

SEARCH = "/api/v1/search/"


@pytest.fixture
def every_line(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    caplog.set_level(logging.INFO)  # the access log's level, as served
    for quiet in ("httpx", "httpcore"):  # as configure_logging sets them (and the test's client)
        caplog.set_level(logging.WARNING, logger=quiet)
    with lines_of("") as lines:  # the root logger: ours, Hypercorn's, everyone's
        yield lines


async def logged_during(
    lines: Lines, http: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    before = len(lines.lines)
    response = await http.get(path, headers=headers)
    return response, lines.lines[before:]


@pytest.mark.parametrize("given", ["lb-7f3a.1", None])
async def test_every_line_of_a_request_carries_its_id(
    build: str, es_url: str, index_name: str, every_line: Lines, given: str | None
) -> None:
    # A missing index: the request logs its failure, then its access line.
    settings = Settings(es_urls=[es_url], index=index_name, search_deadline=30.0)
    headers = {"X-Request-Id": given} if given else {}
    async with api_client(build, settings) as http:
        response, lines = await logged_during(every_line, http, f"{SEARCH}?q=dune", headers)
    assert response.status_code == 503
    expected = given or response.headers["X-Request-Id"]
    assert len(expected) == (len(given) if given else 32)
    assert len(lines) >= 2, lines
    assert {line.get("request_id") for line in lines} == {expected}, lines
    assert response.json()["request_id"] == expected


async def test_the_servers_own_line_for_a_request_carries_its_id(
    nursery: trio.Nursery, api_settings: Settings, every_line: Lines
) -> None:
    app = create_app(api_settings)
    # An app fault that reaches the server: Hypercorn answers 500 and logs it.
    # Below the request-id layer, whatever wraps it (the Hypercorn shell's shield).
    identified = app.extensions[TALLY_KEY]
    below = identified.app

    async def faulty(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/fault":
            raise RuntimeError("a fault below the app's own error handling")
        await below(scope, receive, send)

    identified.app = faulty
    config = hypercorn_config(api_settings, host="127.0.0.1", port=0)
    binds = await nursery.start(serve_app, app, api_settings, config)
    async with httpx.AsyncClient(base_url=binds[0]) as http:
        response, lines = await logged_during(every_line, http, "/fault", {"X-Request-Id": "f-1"})
    assert response.status_code == 500
    servers = [line for line in lines if line["logger"].startswith("hypercorn")]
    assert servers, lines
    assert {line.get("request_id") for line in lines} == {"f-1"}, lines
