"""The request tally: begun when the app gets a request, answered when its last body part is sent."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest

from trio_books.api.tally import RequestTally

Message = MutableMapping[str, Any]


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def run(app: Any, scope_type: str = "http") -> tuple[RequestTally, list[Message]]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    tally = RequestTally(app)
    await tally({"type": scope_type, "path": "/"}, receive, send)
    return tally, sent


async def test_a_streamed_answer_counts_once_when_its_last_part_is_sent() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    tally, sent = await run(app)
    assert tally.counters() == {"requests_begun": 1, "requests_answered": 1}
    assert len(sent) == 3


async def test_a_cut_answer_leaves_the_counts_apart() -> None:
    tally = RequestTally(None)  # type: ignore[arg-type]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("cut")

    async def send(message: Message) -> None:
        pass

    tally.app = app
    with pytest.raises(RuntimeError):
        await tally({"type": "http", "path": "/"}, receive, send)
    assert tally.counters() == {"requests_begun": 1, "requests_answered": 0}


async def test_a_failed_send_is_not_an_answer() -> None:
    tally = RequestTally(None)  # type: ignore[arg-type]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a"})

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("the client is gone")

    tally.app = app
    with pytest.raises(OSError, match="gone"):
        await tally({"type": "http", "path": "/"}, receive, send)
    assert tally.counters() == {"requests_begun": 1, "requests_answered": 0}


async def test_lifespan_messages_are_not_requests() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "lifespan.startup.complete"})

    tally, sent = await run(app, "lifespan")
    assert tally.counters() == {"requests_begun": 0, "requests_answered": 0}
    assert sent == [{"type": "lifespan.startup.complete"}]
