"""The cut at the graceful timeout, on both builds' middleware, without a server (``api.graceful``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from trio_books.api.graceful import ASGIApp, Message, cut_after
from trio_books.asyncio.graceful import AsyncioGracefulCut
from trio_books.trio.graceful import TrioGracefulCut

SCOPE = {"type": "http", "path": "/api/v1/search/", "headers": []}


def test_the_cut_comes_a_little_before_the_servers_own() -> None:
    assert [cut_after(seconds) for seconds in (10, 2, 1, 0)] == [9.5, 1.5, 0.75, 0.0]


def stand_in(
    sleep: Callable[[float], Awaitable[None]], seconds: float, *, head_first: bool
) -> ASGIApp:
    """Answers after *seconds*; with *head_first*, sends its answer's head before waiting."""

    async def app(scope: Any, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": []}
        if head_first:
            await send(start)
        await sleep(seconds)
        if not head_first:
            await send(start)
        await send({"type": "http.response.body", "body": b"done"})

    return app


def summary(sent: list[Message]) -> tuple[int, str | None]:
    """The status sent, and the error code of a JSON error body."""
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)["error"] if status >= 400 else None


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


# Each case: the app's own time, when the drain comes (seconds after the request
# began; None: never), the graceful timeout, and what the client must get.
CASES = {
    "running at the cut: 503": (60.0, 1.0, 1.0, (503, "shutting_down")),
    "done before the cut: its own answer": (0.5, 0.2, 1.0, (200, None)),
    "begun after the drain, too slow: 503": (60.0, -0.1, 1.0, (503, "shutting_down")),
    "no drain: no cut": (3.0, None, 1.0, (200, None)),
}


@pytest.mark.parametrize(("seconds", "drain_at", "graceful", "expected"), CASES.values(), ids=CASES)
async def test_trio_cut(
    seconds: float,
    drain_at: float | None,
    graceful: float,
    expected: tuple[int, str | None],
    autojump_clock: trio.abc.Clock,
) -> None:
    cut = TrioGracefulCut(stand_in(trio.sleep, seconds, head_first=False), graceful)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async with trio.open_nursery() as nursery:
        if drain_at is not None and drain_at < 0:
            cut.drain()
        nursery.start_soon(cut, SCOPE, receive, send)
        if drain_at is not None and drain_at >= 0:
            await trio.sleep(drain_at)
            cut.drain()
    assert summary(sent) == expected
    assert cut.cut == (expected[0] == 503)


@pytest.mark.parametrize(("seconds", "drain_at", "graceful", "expected"), CASES.values(), ids=CASES)
def test_asyncio_cut(
    seconds: float, drain_at: float | None, graceful: float, expected: tuple[int, str | None]
) -> None:
    # Real time on asyncio: the cases are scaled down to a tenth.
    async def main() -> tuple[list[Message], AsyncioGracefulCut]:
        cut = AsyncioGracefulCut(
            stand_in(asyncio.sleep, seconds / 10, head_first=False), graceful / 10
        )
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        if drain_at is not None and drain_at < 0:
            cut.drain()
        request = asyncio.create_task(cut(SCOPE, receive, send))
        if drain_at is not None and drain_at >= 0:
            await asyncio.sleep(drain_at / 10)
            cut.drain()
        async with asyncio.timeout(10):
            await request
        return sent, cut

    sent, cut = asyncio.run(main())
    assert summary(sent) == expected
    assert cut.cut == (expected[0] == 503)


async def test_trio_an_answer_already_begun_is_not_answered_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    cut = TrioGracefulCut(stand_in(trio.sleep, 60, head_first=True), 1.0)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    cut.drain()
    await cut(SCOPE, receive, send)
    # The head went out; the body never came: the server's close ends it.
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert cut.cut == 0


def test_asyncio_a_timeout_of_the_apps_own_is_not_taken_for_the_cut() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise TimeoutError("the app's own")

    async def main() -> None:
        cut = AsyncioGracefulCut(app, 1.0)
        cut.drain()
        await cut(SCOPE, receive, lambda message: asyncio.sleep(0))

    with pytest.raises(TimeoutError, match="the app's own"):
        asyncio.run(main())
