"""The cut at the graceful timeout, on both builds' middleware around a real Quart app, without a server.

Each build's middleware wraps the app its build serves (Quart-Trio, Quart)
with one slow route. What matters beside the 503: the route's handler has
ended by the time the middleware returns, so no search goes on unowned.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
from quart import Quart
from quart_trio import QuartTrio

from trio_books.api.asgi import Message
from trio_books.api.graceful import cut_after
from trio_books.asyncio.graceful import AsyncioGracefulCut
from trio_books.trio.graceful import TrioGracefulCut


def test_the_cut_comes_a_little_before_the_servers_own() -> None:
    assert [cut_after(seconds) for seconds in (10, 2, 1, 0)] == [9.5, 1.5, 0.75, 0.0]


def scope(seconds: float, path: str = "/slow") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": f"seconds={seconds}".encode(),
        "root_path": "",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }


def slow_app(app: Quart, sleep: Callable[[float], Awaitable[None]], ended: list[str]) -> Quart:
    """*app* with ``/slow?seconds=S``: answers after S seconds; notes how its handler ended.

    ``/stream?seconds=S`` sends its head and a first part at once, the rest after S seconds.
    """

    @app.route("/slow")
    async def slow() -> str:
        from quart import request

        try:
            await sleep(float(request.args["seconds"]))
        except BaseException:
            ended.append("cancelled")
            raise
        ended.append("answered")
        return "done"

    @app.route("/stream")
    async def stream() -> Any:
        from quart import request

        seconds = float(request.args["seconds"])

        async def parts() -> AsyncIterator[bytes]:
            yield b"first,"
            await sleep(seconds)
            yield b"rest"
            ended.append("answered")

        return parts()

    return app


def summary(sent: list[Message]) -> tuple[int, str | None]:
    """The status sent, and the error code of a JSON error body."""
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)["error"] if status >= 400 else None


# Each case: the handler's own time, when the drain comes (seconds after the request
# began; negative: before it; None: never), and what the client must get.
CASES = {
    "running at the cut: 503": (60.0, 1.0, (503, "shutting_down"), "cancelled"),
    "done before the cut: its own answer": (0.3, 0.2, (200, None), "answered"),
    "begun between the drain and the cut, too slow: 503": (
        60.0,
        -0.1,
        (503, "shutting_down"),
        "cancelled",
    ),
    "begun after the cut: 503": (60.0, -1.0, (503, "shutting_down"), "cancelled"),
    "no drain: no cut": (3.0, None, (200, None), "answered"),
}
GRACEFUL = 1.0


@pytest.mark.parametrize(("seconds", "drain_at", "expected", "handler"), CASES.values(), ids=CASES)
async def test_trio_cut(
    seconds: float,
    drain_at: float | None,
    expected: tuple[int, str | None],
    handler: str,
    autojump_clock: trio.abc.Clock,
) -> None:
    ended: list[str] = []
    app = slow_app(QuartTrio(__name__), trio.sleep, ended)
    cut = TrioGracefulCut(app.asgi_app, GRACEFUL)  # type: ignore[arg-type]
    sent: list[Message] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if requests:
            return requests.pop()
        await trio.sleep_forever()  # the client stays
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    async def request() -> None:
        await cut(scope(seconds), receive, send)
        assert ended == [handler]  # the handler is over when the middleware returns

    async with trio.open_nursery() as nursery:
        if drain_at is not None and drain_at < 0:
            cut.drain()
            await trio.sleep(-drain_at)
        nursery.start_soon(request)
        if drain_at is not None and drain_at >= 0:
            await trio.sleep(drain_at)
            cut.drain()
    assert summary(sent) == expected
    assert cut.cut == (expected[0] == 503)


@pytest.mark.parametrize(("seconds", "drain_at", "expected", "handler"), CASES.values(), ids=CASES)
def test_asyncio_cut(
    seconds: float, drain_at: float | None, expected: tuple[int, str | None], handler: str
) -> None:
    # Real time on asyncio: every case runs twice as fast.
    scale = 0.5

    async def main() -> tuple[list[Message], AsyncioGracefulCut]:
        ended: list[str] = []
        app = slow_app(Quart(__name__), asyncio.sleep, ended)
        cut = AsyncioGracefulCut(app.asgi_app, GRACEFUL * scale)  # type: ignore[arg-type]
        sent: list[Message] = []
        requests = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> Message:
            if requests:
                return requests.pop()
            await asyncio.Event().wait()  # the client stays
            raise AssertionError

        async def send(message: Message) -> None:
            sent.append(message)

        if drain_at is not None and drain_at < 0:
            cut.drain()
            await asyncio.sleep(-drain_at * scale)
        request = asyncio.create_task(cut(scope(seconds * scale), receive, send))
        if drain_at is not None and drain_at >= 0:
            await asyncio.sleep(drain_at * scale)
            cut.drain()
        async with asyncio.timeout(10):
            await request
        assert ended == [handler]  # the handler is over when the middleware returns
        return sent, cut

    sent, cut = asyncio.run(main())
    assert summary(sent) == expected
    assert cut.cut == (expected[0] == 503)


def body_of(sent: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


# An answer under way when the stop signal comes, or begun between the signal and the cut.
UNDER_WAY = pytest.mark.parametrize(
    "drain_first", [False, True], ids=["drain later", "drain first"]
)


@UNDER_WAY
async def test_trio_an_answer_under_way_is_left_to_finish(
    autojump_clock: trio.abc.Clock, drain_first: bool
) -> None:
    ended: list[str] = []
    cut = TrioGracefulCut(slow_app(QuartTrio(__name__), trio.sleep, ended).asgi_app, GRACEFUL)  # type: ignore[arg-type]
    sent: list[Message] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if requests:
            return requests.pop()
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    async with trio.open_nursery() as nursery:
        if drain_first:
            cut.drain()  # the cut would come at 0.75 s; the head goes out at once
        nursery.start_soon(cut, scope(5.0, "/stream"), receive, send)
        await trio.sleep(1.0)  # its head and first part are out
        if not drain_first:
            cut.drain()  # the cut would come at 1.75 s; the answer ends at 5 s
    assert (summary(sent), body_of(sent), ended, cut.cut) == (
        (200, None),
        b"first,rest",
        ["answered"],
        0,
    )


@UNDER_WAY
def test_asyncio_an_answer_under_way_is_left_to_finish(drain_first: bool) -> None:
    async def main() -> tuple[list[Message], list[str], int]:
        ended: list[str] = []
        cut = AsyncioGracefulCut(slow_app(Quart(__name__), asyncio.sleep, ended).asgi_app, 0.2)  # type: ignore[arg-type]
        sent: list[Message] = []
        requests = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> Message:
            if requests:
                return requests.pop()
            await asyncio.Event().wait()
            raise AssertionError

        async def send(message: Message) -> None:
            sent.append(message)

        if drain_first:
            cut.drain()  # the cut comes 0.15 s later; the head goes out at once
        request = asyncio.create_task(cut(scope(1.0, "/stream"), receive, send))
        while not sent:
            await asyncio.sleep(0.01)
        if not drain_first:
            cut.drain()  # the cut comes 0.15 s later; the answer ends after 1 s
        async with asyncio.timeout(10):
            await request
        return sent, ended, cut.cut

    sent, ended, count = asyncio.run(main())
    assert (summary(sent), body_of(sent), ended, count) == (
        (200, None),
        b"first,rest",
        ["answered"],
        0,
    )
