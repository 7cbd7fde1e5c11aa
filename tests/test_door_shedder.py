"""Shedding at the door, step by step: who is shed, who never is, and what a shed request is told.

The middleware is driven with ASGI calls whose inner app the test holds open,
so "full" is a state the test creates, not a race it hopes to win; the real
app is then checked with its door held full, under both API prefixes. Last, the
other kind of shedding: every Elasticsearch node's pool full, over HTTP.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
import trio.testing
from conftest import PausableNode
from servers import api_client

from trio_books.api.shedding import NEVER_SHED, DoorShedder
from trio_books.settings import Settings
from trio_books.trio.app import create_app

PREFIX = "/api/v1"
SEARCH = f"{PREFIX}/search/"


class HeldApp:
    """An ASGI app that answers each request 200 once the test releases it."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.seen: list[str] = []
        self.fail = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(scope["path"])
        if scope["path"].startswith(PREFIX):
            await self.release.wait()
        if self.fail:
            raise RuntimeError("the app failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, path: str, request_id: str = "t-1") -> list[dict[str, Any]]:
    """One ASGI request to *app*; the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"x-request-id", request_id.encode())],
    }
    await app(scope, receive, send)
    return sent


def status_of(sent: list[dict[str, Any]]) -> int:
    status: int = sent[0]["status"]
    return status


async def test_past_the_limit_the_next_gated_request_is_503_at_once() -> None:
    inner = HeldApp()
    shedder = DoorShedder(inner, prefix=PREFIX, limit=2, retry_after=7, access_log=False)
    answers: list[list[dict[str, Any]]] = []

    async def held(path: str) -> None:
        answers.append(await call(shedder, path))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(held, SEARCH)
        nursery.start_soon(held, f"{PREFIX}/books/1")
        await trio.testing.wait_all_tasks_blocked()
        assert shedder.inside == 2
        shed = await call(shedder, SEARCH, request_id="lb-42")
        assert status_of(shed) == 503
        headers = dict(shed[0]["headers"])
        assert headers[b"retry-after"] == b"7"
        assert headers[b"x-request-id"] == b"lb-42"
        assert headers[b"x-frame-options"] == b"DENY"
        assert headers[b"content-type"] == b"application/json"
        body = orjson.loads(shed[1]["body"])
        assert body["error"] == "overloaded"
        assert int(headers[b"content-length"]) == len(shed[1]["body"])
        # The inner app never saw the shed request: the door answered it alone.
        assert inner.seen.count(SEARCH) == 1
        inner.release.set()
    assert [status_of(answer) for answer in answers] == [200, 200]
    assert (shedder.inside, shedder.shed) == (0, 1)
    # With room again, the next request goes in.
    assert status_of(await call(shedder, SEARCH)) == 200


@pytest.mark.parametrize("prefix", [PREFIX, ""])
async def test_health_checks_and_the_canary_are_never_shed(prefix: str) -> None:
    inner = HeldApp()
    shedder = DoorShedder(inner, prefix=prefix or "/", limit=0, retry_after=1, access_log=False)
    inner.release.set()
    for path in sorted(NEVER_SHED):
        assert status_of(await call(shedder, path)) == 200, path
    # A limit of 0: anything gated is shed, which shows the gate was really shut.
    assert status_of(await call(shedder, f"{prefix}/search/")) == 503
    assert shedder.shed == 1


async def test_a_request_that_fails_inside_still_gives_its_place_back() -> None:
    inner = HeldApp()
    inner.release.set()
    inner.fail = True
    shedder = DoorShedder(inner, prefix=PREFIX, limit=1, retry_after=1, access_log=False)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await call(shedder, SEARCH)
    assert shedder.inside == 0
    inner.fail = False
    assert status_of(await call(shedder, SEARCH)) == 200


@pytest.mark.parametrize("api_prefix", ["/api/v1", ""])
async def test_the_apps_door_held_full_sheds_searches_but_not_health_checks(
    api_settings: Settings, api_prefix: str
) -> None:
    settings = api_settings.model_copy(update={"api_prefix": api_prefix})
    app = create_app(settings)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        shedder: DoorShedder = app.extensions["trio_books.shedder"]
        shedder.inside = shedder.limit  # every slot and queue place taken
        try:
            shed = await client.get(f"{api_prefix}/search/", query_string={"q": "dune"})
            others = {
                path: await client.get(path) for path in ("/", "/healthz", "/readyz", "/metrics")
            }
        finally:
            shedder.inside = 0
        after = await client.get(f"{api_prefix}/search/", query_string={"q": "dune"})
    assert shed.status_code == 503
    assert shed.headers["Retry-After"] == str(settings.retry_after)
    assert (await shed.get_json())["error"] == "overloaded"
    assert {path: answer.status_code for path, answer in others.items()} == {
        "/": 200,
        "/healthz": 200,
        "/readyz": 200,
        "/metrics": 200,
    }
    assert after.status_code == 200


@pytest.mark.elasticsearch
async def test_every_nodes_pool_full_is_503_overloaded_with_retry_after(
    build: str, pausable_node: PausableNode, paused_catalogue: str
) -> None:
    # One connection and three waiting places: one search's four calls fill the
    # pool of a node that answers nothing; a second search finds no room anywhere.
    settings = Settings(
        es_urls=[pausable_node.url],
        index=paused_catalogue,
        es_pool_size=1,
        es_pool_queue=3,
        es_timeout=60.0,
        search_deadline=60.0,
    )
    async with api_client(build, settings) as http, trio.open_nursery() as nursery:
        assert (await http.get(SEARCH, params={"q": "dune"})).status_code == 200
        pausable_node.pause()
        nursery.start_soon(lambda: http.get(SEARCH, params={"q": "war"}, timeout=60.0))
        # Its calls start together: once one waits at the paused node, the pool's
        # one connection is taken and its three waiting places too.
        with trio.fail_after(20):
            while pausable_node.requests_waiting() < 1:
                await trio.sleep(0.01)
        shed = await http.get(SEARCH, params={"q": "peace"}, timeout=20.0)
        pausable_node.resume()
        nursery.cancel_scope.cancel()
    assert shed.status_code == 503
    assert shed.json()["error"] == "overloaded"
    assert shed.headers["Retry-After"] == str(settings.retry_after)
    # The client is told to retry; nothing names the node or its address.
    assert pausable_node.url.split("//")[1] not in shed.text
