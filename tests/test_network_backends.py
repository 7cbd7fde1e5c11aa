"""The transport's two socket backends, over a socket pair: a read that finds its bytes waiting.

On a busy machine Elasticsearch often answers before the worker runs again, so the
read finds the answer already there. Both backends must still let the other tasks
run at that point (Trio's checkpoint; one yield to asyncio's loop): else a fan-out's
branches run one whole exchange after another instead of side by side. Bytes read
just before a cancellation stay for the next read.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from trio_books.asyncio.network import AsyncioSocket
from trio_books.trio.network import TrioSocket


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair: ours non-blocking, the peer's end with an answer already sent."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.sendall(b"answer")
    with ours, peer:
        yield ours, peer


async def test_trio_lets_the_other_tasks_run_when_the_answer_is_waiting(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    stream = TrioSocket(pair[0])
    # Trio runs ready tasks in an order of its choosing: what it promises is the checkpoint.
    with trio.testing.assert_checkpoints():
        assert await stream.receive_some(math.inf) == b"answer"


async def test_trio_keeps_what_it_read_when_cancelled_at_that_point(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    stream = TrioSocket(pair[0])
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.receive_some(math.inf)
    assert scope.cancelled_caught
    assert stream.receive_nowait() == b"answer"


def test_asyncio_lets_the_other_tasks_run_when_the_answer_is_waiting(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    async def main() -> list[str]:
        stream = AsyncioSocket(pair[0], asyncio.get_running_loop())
        ran: list[str] = []

        async def other() -> None:
            ran.append("other")

        task = asyncio.create_task(other())
        assert await stream.receive_some(math.inf) == b"answer"
        seen = list(ran)
        await task
        return seen

    # Without the yield the read returned before the other task had run at all.
    assert asyncio.run(main()) == ["other"]


def test_asyncio_keeps_what_it_read_when_cancelled_at_that_point(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    async def main() -> bytes | None:
        stream = AsyncioSocket(pair[0], asyncio.get_running_loop())
        reading = asyncio.create_task(stream.receive_some(math.inf))
        await asyncio.sleep(0)  # it reads, then yields
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        return stream.receive_nowait()

    assert asyncio.run(main()) == b"answer"
