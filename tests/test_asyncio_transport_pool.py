"""The asyncio transport's pool against the same real local HTTP server as the Trio one's.

The mirror of ``test_transport_pool.py``: :class:`AsyncioTransport` is the pool
of :class:`~trio_books.trio.transport.TrioTransport` over asyncio's waits, so it
meets the same server (``http_peer.py``) and the same checks, on the pool's own
counters and on what the server saw.

The server is a Trio one, in the test's nursery; the asyncio side runs on a loop
of its own in a worker thread (:func:`on_asyncio`), and reads the server's
counters across the thread. Loopback only, port 0, a deadline on every test
(conftest), which reaches the asyncio side as a cancellation. No test sleeps for
something to happen: it waits for the thing itself (:func:`until`), or cuts a
call once the server holds its request (:func:`cut_once_received`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
import trio
from http_peer import HttpPeer

from trio_books.asyncio.network import AsyncioDrains
from trio_books.asyncio.transport import AsyncioTransport
from trio_books.transport.adapter import IDEMPOTENT, PoolOverloaded
from trio_books.transport.pool import PoolStats

T = TypeVar("T")


async def on_asyncio(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``main()`` run to its end on a new asyncio loop in a worker thread.

    A cancellation of the calling Trio task (the test's deadline) is passed on as a
    cancellation of ``main()`` on its loop, and the Trio side goes on (cancelled)
    once that loop has closed, its sockets with it. Only a ``main()`` that ignores
    its cancellation for 10 s has its thread abandoned.
    """
    lock = threading.Lock()
    running: asyncio.Task[T] | None = None
    stopped = False
    closed = threading.Event()

    async def guarded() -> T:
        nonlocal running
        with lock:
            if stopped:  # cancelled before main() began: it never will
                raise asyncio.CancelledError
            running = asyncio.current_task()
        try:
            return await main()
        finally:
            with lock:
                running = None  # the loop closes from here on: nothing may be sent to it

    def in_thread() -> T:
        try:
            return asyncio.run(guarded())
        finally:
            closed.set()

    def stop() -> bool:
        """Cancel ``main()`` on its loop; whether it was running."""
        nonlocal stopped
        with lock:
            stopped = True
            if running is None:
                return False
            running.get_loop().call_soon_threadsafe(running.cancel)
            return True

    try:
        # Abandonable, so that a cancellation reaches this task at once: it then
        # ends the loop itself, and waits for it (shielded) before going on.
        return await trio.to_thread.run_sync(in_thread, abandon_on_cancel=True)
    except trio.Cancelled:
        if stop():
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(closed.wait, 10)
        raise


async def start_peer(nursery: trio.Nursery, **options: object) -> HttpPeer:
    peer: HttpPeer = await nursery.start(HttpPeer(**options).serve)  # type: ignore[arg-type]
    return peer


@pytest.fixture
async def peer(nursery: trio.Nursery) -> HttpPeer:
    return await start_peer(nursery)


def only_pool(transport: AsyncioTransport) -> PoolStats:
    (stats,) = transport.stats().values()
    return stats


def drains_under_way(transport: AsyncioTransport) -> int:
    """Drains under way, over the transport's nodes."""
    return sum(pool.state.draining for pool in transport._pools.values())


async def until(condition: Callable[[], bool], *, seconds: float = 10) -> None:
    """Return once *condition* holds; fail the test if it does not within *seconds*."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while not condition():
                await asyncio.sleep(0.005)
            return
    raise AssertionError(f"not true within {seconds} s: {inspect.getsource(condition).strip()}")


def in_one_step(call: Coroutine[Any, Any, T]) -> T:
    """*call*'s outcome, which it must reach without waiting on the loop even once."""
    try:
        call.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    call.close()
    raise AssertionError("the call waited on the loop")


async def cut_once_received(peer: HttpPeer, http: httpx.AsyncClient, url: str) -> None:
    """GET *url*, cancelled as soon as *peer* holds the request and before it answers.

    A deadline that passes after the request went out, however long the send took.
    """
    seen = peer.requests
    call = asyncio.create_task(http.get(url))
    await until(lambda: peer.requests > seen or call.done())
    call.cancel()
    await asyncio.wait([call])
    assert call.cancelled(), "the call was answered before it could be cut"


async def cancel_all(tasks: list[asyncio.Task[httpx.Response]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)


async def test_on_asyncio_passes_a_trio_cancellation_on() -> None:
    # The helper every test here stands on: a deadline reaches the asyncio side
    # as a cancellation, and the loop has closed when the Trio side goes on.
    seen: list[str] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        seen.append("started")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(on_asyncio, main)
            with trio.fail_after(10):
                while not seen:
                    await trio.sleep(0.005)
            scope.cancel()
    assert scope.cancelled_caught
    assert seen == ["started", "cancelled"]
    assert loops[0].is_closed()


# ---------------------------------------------------------------- reuse


async def test_keep_alive_connection_is_reused(peer: HttpPeer) -> None:
    async def main() -> None:
        transport = AsyncioTransport(connections_per_node=4, max_waiting_per_node=8)
        async with httpx.AsyncClient(transport=transport) as http:
            answers = [(await http.get(f"{peer.url}/echo")).json() for _ in range(10)]
        assert {answer["conn"] for answer in answers} == {1}
        stats = only_pool(transport)
        assert (stats.opened, stats.reused, stats.in_use) == (1, 9, 0)

    await on_asyncio(main)
    assert (peer.opened, peer.requests) == (1, 10)


async def test_concurrent_requests_reuse_up_to_capacity(peer: HttpPeer) -> None:
    async def main() -> None:
        transport = AsyncioTransport(connections_per_node=4, max_waiting_per_node=8)
        async with httpx.AsyncClient(transport=transport) as http:
            for _ in range(3):
                async with asyncio.TaskGroup() as group:
                    for _ in range(12):
                        group.create_task(http.get(f"{peer.url}/slow?ms=20"))
            stats = only_pool(transport)
        # The same four connections each round.
        assert stats.opened == 4
        assert (stats.in_use, stats.waiting, stats.idle) == (0, 0, 4)

    await on_asyncio(main)
    # Never more than the capacity at once.
    assert peer.max_busy <= 4
    assert (peer.opened, peer.requests) == (4, 36)


async def test_idle_connection_closed_by_the_server_is_not_reused(nursery: trio.Nursery) -> None:
    peer = await start_peer(nursery, idle_close=0.05)

    async def main() -> None:
        transport = AsyncioTransport()
        async with httpx.AsyncClient(transport=transport) as http:
            first = (await http.post(f"{peer.url}/echo", content=b"{}")).json()
            await until(lambda: peer.closed == 1)  # the server closed the idle connection
            # POST /echo may not be sent twice: it succeeds because the dead
            # connection is noticed before anything is sent on it.
            second = (await http.post(f"{peer.url}/echo", content=b"{}")).json()
        assert first["conn"] != second["conn"]
        stats = only_pool(transport)
        assert (stats.opened, stats.discarded, stats.stale_retries) == (2, 1, 0)

    await on_asyncio(main)
    assert peer.requests == 2  # each POST reached the server once


async def test_stale_connection_retried_once_for_idempotent_requests(
    nursery: trio.Nursery,
) -> None:
    peer = await start_peer(nursery, drop_second=True)

    async def main() -> None:
        transport = AsyncioTransport()
        async with httpx.AsyncClient(transport=transport) as http:
            await http.get(f"{peer.url}/echo")
            # The server drops the connection when the second request arrives on it.
            retried = await http.post(f"{peer.url}/books/_search", content=b"{}")
            assert retried.status_code == 200
            assert only_pool(transport).stale_retries == 1
            await http.get(f"{peer.url}/echo")
            assert only_pool(transport).stale_retries == 2  # a GET is idempotent too
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post(f"{peer.url}/_bulk", content=b"{}")
            assert only_pool(transport).stale_retries == 2  # not sent twice
            await http.get(f"{peer.url}/echo")
            marked = await http.post(
                f"{peer.url}/_bulk", content=b"{}", extensions={IDEMPOTENT: True}
            )
            assert marked.status_code == 200
        stats = only_pool(transport)
        assert (stats.stale_retries, stats.in_use) == (3, 0)

    await on_asyncio(main)
    # Four requests dropped with their connections: each sent once more but the _bulk.
    assert (peer.opened, peer.requests) == (5, 9)


async def test_connection_close_answers_are_not_pooled(peer: HttpPeer) -> None:
    async def main() -> None:
        transport = AsyncioTransport()
        async with httpx.AsyncClient(transport=transport) as http:
            await http.get(f"{peer.url}/close")
            # Closed at once, not pooled (where only the next taker's look would catch it).
            assert only_pool(transport).idle == 0
            await http.get(f"{peer.url}/echo")
            stats = only_pool(transport)
        assert (stats.opened, stats.reused, stats.idle) == (2, 0, 1)

    await on_asyncio(main)
    assert peer.opened == 2


async def test_close_closes_idle_connections(peer: HttpPeer) -> None:
    async def main() -> None:
        transport = AsyncioTransport()
        async with httpx.AsyncClient(transport=transport) as http, asyncio.TaskGroup() as group:
            for _ in range(3):
                group.create_task(http.get(f"{peer.url}/slow?ms=20"))
        # Leaving the client closed the transport; the server sees the sockets close.
        await until(lambda: peer.closed == 3)
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(httpx.Request("GET", f"{peer.url}/echo"))

    await on_asyncio(main)
    assert peer.open_now == 0


# ---------------------------------------------------------------- cancellation and limits


@pytest.mark.parametrize("path", ["/slow?ms=30", "/hang", "/half"])
async def test_cancellation_at_any_point_leaves_the_pool_clean(peer: HttpPeer, path: str) -> None:
    async def main() -> None:
        transport = AsyncioTransport(connections_per_node=4, max_waiting_per_node=8)
        async with httpx.AsyncClient(transport=transport, timeout=5) as http:
            # Cancel after 0, 1, 2 … 40 ms: in the slot wait, the connect, the send,
            # between the head and the body, and while waiting for the answer.
            for step in range(0, 41, 1):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(step / 1000), asyncio.TaskGroup() as group:
                        for _ in range(6):  # more than the capacity: some wait for a slot
                            group.create_task(http.get(f"{peer.url}{path}"))
                        group.create_task(http.get(f"{peer.url}/echo"))
                stats = only_pool(transport)
                assert (stats.in_use, stats.waiting) == (0, 0)
                # Whatever stayed pooled answers its own next request, not a stale one.
                for n in range(stats.idle + 1):
                    headers = {"x-id": str(n)}
                    answer = (await http.get(f"{peer.url}/echo", headers=headers)).json()
                    assert answer["id"] == str(n)
        assert only_pool(transport).in_use == 0

    await on_asyncio(main)


async def test_timeouts_release_the_slot(peer: HttpPeer) -> None:
    async def main() -> None:
        transport = AsyncioTransport(connections_per_node=1)
        # Reads get 50 ms; connects get more, so that a pause of the test process
        # cannot turn a connect into the timeout.
        timeout = httpx.Timeout(0.05, connect=5)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"{peer.url}/hang")
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"{peer.url}/half")
            # The one slot is free again, and the timed-out connections were not pooled.
            assert (await http.get(f"{peer.url}/echo")).json()["conn"] == 3
        stats = only_pool(transport)
        assert (stats.in_use, stats.waiting, stats.discarded) == (0, 0, 2)

    await on_asyncio(main)


async def test_full_wait_queue_sheds_at_once(peer: HttpPeer) -> None:
    async def main() -> None:
        transport = AsyncioTransport(connections_per_node=2, max_waiting_per_node=2)
        async with httpx.AsyncClient(transport=transport, timeout=5) as http:
            # Two hold the slots (their requests at the server, never answered), two wait.
            hanging = [asyncio.create_task(http.get(f"{peer.url}/hang")) for _ in range(4)]
            await until(lambda: peer.busy_now == 2 and only_pool(transport).waiting == 2)
            # Shed at the door of the pool, without waiting for anything (no clock to
            # race): it ends in its first step, and it never joined the queue.
            with pytest.raises(PoolOverloaded):
                in_one_step(http.get(f"{peer.url}/echo"))
            stats = only_pool(transport)
            assert (stats.in_use, stats.waiting, stats.shed) == (2, 2, 1)
            await cancel_all(hanging)
        stats = only_pool(transport)
        assert (stats.in_use, stats.waiting, stats.shed) == (0, 0, 1)

    await on_asyncio(main)
    assert peer.requests == 2  # the shed request never reached the server


async def test_pool_timeout_when_slots_stay_busy(peer: HttpPeer) -> None:
    async def main() -> None:
        transport = AsyncioTransport(connections_per_node=1, max_waiting_per_node=4)
        timeout = httpx.Timeout(5, pool=0.05)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
            holder = asyncio.create_task(http.get(f"{peer.url}/hang"))
            await until(lambda: peer.busy_now == 1)  # it holds the one slot, unanswered
            with pytest.raises(httpx.PoolTimeout):
                await http.get(f"{peer.url}/echo")
            assert only_pool(transport).waiting == 0
            await cancel_all([holder])
        assert transport.pool_timeouts == 1
        assert only_pool(transport).in_use == 0

    await on_asyncio(main)
    assert peer.requests == 1


async def test_refused_connection_is_a_connect_error() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now

    async def main() -> None:
        transport = AsyncioTransport()
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")
        assert only_pool(transport).in_use == 0

    await on_asyncio(main)


# ---------------------------------------------------------------- drains of cut exchanges


@contextlib.asynccontextmanager
async def open_draining(drain_seconds: float = 1) -> AsyncIterator[AsyncioTransport]:
    """A transport whose cut exchanges are drained, as a client's own (``es.opening``) is."""
    transport = AsyncioTransport(
        connections_per_node=4, max_waiting_per_node=8, drain_seconds=drain_seconds
    )
    async with transport.backend.drains() as drains:
        transport.drains = drains
        yield transport
        await transport.aclose()


async def test_a_call_cut_by_its_deadline_keeps_its_connection(peer: HttpPeer) -> None:
    async def main() -> None:
        async with (
            open_draining() as transport,
            httpx.AsyncClient(transport=transport, timeout=5) as http,
        ):
            for n in range(5):
                await cut_once_received(peer, http, f"{peer.url}/slow?ms=150")
                await until(lambda: drains_under_way(transport) == 0)  # it read the answer
                headers = {"x-id": str(n)}
                answer = (await http.get(f"{peer.url}/echo", headers=headers)).json()
                assert answer == {"conn": 1, "id": str(n), "path": "/echo"}
            stats = only_pool(transport)
        assert (stats.opened, stats.drained, stats.discarded) == (1, 5, 0)

    await on_asyncio(main)
    assert peer.opened == 1


async def test_a_drain_that_runs_out_of_time_closes_the_connection(peer: HttpPeer) -> None:
    async def main() -> None:
        async with (
            open_draining(drain_seconds=0.1) as transport,
            httpx.AsyncClient(transport=transport, timeout=5) as http,
        ):
            await cut_once_received(peer, http, f"{peer.url}/hang")
            await until(lambda: drains_under_way(transport) == 0)  # out of time, it gave up
            stats = only_pool(transport)
            assert (stats.drained, stats.discarded, stats.idle) == (0, 1, 0)
            await http.get(f"{peer.url}/echo")
        assert only_pool(transport).opened == 2

    await on_asyncio(main)


@pytest.mark.parametrize("path", ["/slow?ms=30", "/hang", "/half"])
async def test_with_drains_cancellation_at_any_point_leaves_the_pool_clean(
    peer: HttpPeer, path: str
) -> None:
    async def main() -> None:
        async with (
            open_draining(drain_seconds=0.05) as transport,
            httpx.AsyncClient(transport=transport, timeout=5) as http,
        ):
            for step in range(0, 41, 1):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(step / 1000), asyncio.TaskGroup() as group:
                        for _ in range(6):
                            group.create_task(http.get(f"{peer.url}{path}"))
                        group.create_task(http.get(f"{peer.url}/echo"))
                await until(lambda: drains_under_way(transport) == 0)  # each kept or closed
                stats = only_pool(transport)
                assert (stats.in_use, stats.waiting) == (0, 0)
                # Whatever a drain pooled answers its own next request, not a stale one.
                for n in range(stats.idle + 1):
                    headers = {"x-id": str(n)}
                    answer = (await http.get(f"{peer.url}/echo", headers=headers)).json()
                    assert answer["id"] == str(n)

    await on_asyncio(main)


async def test_closing_the_transport_ends_its_drains(peer: HttpPeer) -> None:
    async def main() -> None:
        # The drains outlive the transport, as a serving app's do.
        drains = AsyncioDrains()
        transport = AsyncioTransport(connections_per_node=4, drain_seconds=30)
        transport.drains = drains
        async with httpx.AsyncClient(transport=transport, timeout=5) as http:
            await cut_once_received(peer, http, f"{peer.url}/hang")
            assert drains_under_way(transport) == 1
        # Far sooner than the drain's own 30 s: it saw its cancellation and closed
        # its connection.
        await until(lambda: drains_under_way(transport) == 0)
        stats = only_pool(transport)
        assert (stats.drained, stats.discarded, stats.idle) == (0, 1, 0)
        await drains.aclose()

    await on_asyncio(main)
