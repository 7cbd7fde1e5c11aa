"""The Trio transport's pool against a real local HTTP server (``http_peer.py``).

Loopback only, port 0, a deadline on every test (conftest). Each test checks the
pool's own counters and what the server saw on its side of the sockets. No test
sleeps for something to happen, which a machine busy elsewhere would outlast: it
waits for the thing itself (:func:`until`), or cuts a call once the server holds
its request (:func:`cut_once_received`).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import trio
from http_peer import HttpPeer

from trio_books.errors import UsageError
from trio_books.es.connection import plain_config
from trio_books.es.opening import open_elasticsearch
from trio_books.transport.adapter import IDEMPOTENT, PoolOverloaded
from trio_books.transport.pool import PoolStats
from trio_books.trio.network import TrioDrains
from trio_books.trio.transport import TrioTransport


async def start_peer(nursery: trio.Nursery, **options: object) -> HttpPeer:
    peer: HttpPeer = await nursery.start(HttpPeer(**options).serve)  # type: ignore[arg-type]
    return peer


@pytest.fixture
async def peer(nursery: trio.Nursery) -> HttpPeer:
    return await start_peer(nursery)


def only_pool(transport: TrioTransport) -> PoolStats:
    (stats,) = transport.stats().values()
    return stats


def drains_under_way(transport: TrioTransport) -> int:
    """Drains under way, over the transport's nodes."""
    return sum(pool.state.draining for pool in transport._pools.values())


async def until(condition: Callable[[], bool], *, seconds: float = 10) -> None:
    """Return once *condition* holds; fail the test if it does not within *seconds*."""
    with trio.move_on_after(seconds):
        while not condition():
            await trio.sleep(0.005)
        return
    raise AssertionError(f"not true within {seconds} s: {inspect.getsource(condition).strip()}")


async def cut_once_received(peer: HttpPeer, http: httpx.AsyncClient, url: str) -> None:
    """GET *url*, cancelled as soon as *peer* holds the request and before it answers.

    A deadline that passes after the request went out, however long the send took
    (a fixed ``move_on_after`` cuts in the connect when the machine is busy).
    """
    seen = peer.requests
    with trio.CancelScope() as cut:
        async with trio.open_nursery() as nursery:

            async def cut_when_received() -> None:
                await until(lambda: peer.requests > seen)
                cut.cancel()

            nursery.start_soon(cut_when_received)
            await http.get(url)
            nursery.cancel_scope.cancel()  # answered before the cut: fails below
    assert cut.cancelled_caught, "the call was answered before it could be cut"


@pytest.fixture
async def transport() -> AsyncIterator[TrioTransport]:
    transport = TrioTransport(connections_per_node=4, max_waiting_per_node=8)
    yield transport
    await transport.aclose()


async def test_keep_alive_connection_is_reused(peer: HttpPeer, transport: TrioTransport) -> None:
    async with httpx.AsyncClient(transport=transport) as http:
        answers = [(await http.get(f"{peer.url}/echo")).json() for _ in range(10)]
    assert {answer["conn"] for answer in answers} == {1}
    stats = only_pool(transport)
    assert (stats.opened, stats.reused, stats.in_use) == (1, 9, 0)
    assert peer.opened == 1


async def test_concurrent_requests_reuse_up_to_capacity(
    peer: HttpPeer, transport: TrioTransport
) -> None:
    async with httpx.AsyncClient(transport=transport) as http:
        for _ in range(3):
            async with trio.open_nursery() as nursery:
                for _ in range(12):
                    nursery.start_soon(http.get, f"{peer.url}/slow?ms=20")
        stats = only_pool(transport)
    # Never more than the capacity at once, and the same four connections each round.
    assert peer.max_busy <= 4
    assert stats.opened == 4
    assert (stats.in_use, stats.waiting, stats.idle) == (0, 0, 4)


async def test_idle_connection_closed_by_the_server_is_not_reused(nursery: trio.Nursery) -> None:
    peer = await start_peer(nursery, idle_close=0.05)
    transport = TrioTransport()
    async with httpx.AsyncClient(transport=transport) as http:
        first = (await http.post(f"{peer.url}/echo", content=b"{}")).json()
        await until(lambda: peer.closed == 1)  # the server closed the idle connection
        # POST /echo may not be sent twice: it succeeds because the dead
        # connection is noticed before anything is sent on it.
        second = (await http.post(f"{peer.url}/echo", content=b"{}")).json()
    assert first["conn"] != second["conn"]
    stats = only_pool(transport)
    assert (stats.opened, stats.discarded, stats.stale_retries) == (2, 1, 0)
    assert peer.requests == 2  # each POST reached the server once


async def test_stale_connection_retried_once_for_idempotent_requests(
    nursery: trio.Nursery,
) -> None:
    peer = await start_peer(nursery, drop_second=True)
    transport = TrioTransport()
    async with httpx.AsyncClient(transport=transport) as http:
        await http.get(f"{peer.url}/echo")
        # The server drops the connection when the second request arrives on it.
        retried = await http.post(f"{peer.url}/books/_search", content=b"{}")
        assert retried.status_code == 200
        assert only_pool(transport).stale_retries == 1
        await http.get(f"{peer.url}/echo")
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f"{peer.url}/_bulk", content=b"{}")
        await http.get(f"{peer.url}/echo")
        marked = await http.post(f"{peer.url}/_bulk", content=b"{}", extensions={IDEMPOTENT: True})
        assert marked.status_code == 200
    assert only_pool(transport).in_use == 0


async def test_connection_close_answers_are_not_pooled(
    peer: HttpPeer, transport: TrioTransport
) -> None:
    async with httpx.AsyncClient(transport=transport) as http:
        await http.get(f"{peer.url}/close")
        # Not pooled at all, rather than pooled and thrown away at its next use.
        assert only_pool(transport).idle == 0
        await http.get(f"{peer.url}/echo")
        stats = only_pool(transport)
    assert (stats.opened, stats.reused, stats.idle) == (2, 0, 1)


@pytest.mark.parametrize("path", ["/slow?ms=30", "/hang", "/half"])
async def test_cancellation_at_any_point_leaves_the_pool_clean(
    peer: HttpPeer, transport: TrioTransport, path: str
) -> None:
    async with httpx.AsyncClient(transport=transport, timeout=5) as http:
        # Cancel after 0, 1, 2 … 40 ms: in the slot wait, the connect, the send,
        # between the head and the body, and while waiting for the answer.
        for step in range(0, 41, 1):
            with trio.move_on_after(step / 1000):
                async with trio.open_nursery() as nursery:
                    for _ in range(6):  # more than the capacity: some wait for a slot
                        nursery.start_soon(http.get, f"{peer.url}{path}")
                    nursery.start_soon(http.get, f"{peer.url}/echo")
            stats = only_pool(transport)
            assert (stats.in_use, stats.waiting) == (0, 0)
            # Whatever stayed pooled answers its own next request, not a stale one.
            for n in range(stats.idle + 1):
                answer = (await http.get(f"{peer.url}/echo", headers={"x-id": str(n)})).json()
                assert answer["id"] == str(n)
    assert only_pool(transport).in_use == 0


async def test_timeouts_release_the_slot(peer: HttpPeer, transport: TrioTransport) -> None:
    # Reads get 50 ms; connects get more, so that a full collection of the test
    # process's heap (tens of ms) cannot turn a connect into the timeout.
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(0.05, connect=5)
    ) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{peer.url}/hang")
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{peer.url}/half")
        assert (await http.get(f"{peer.url}/echo")).status_code == 200
    stats = only_pool(transport)
    assert (stats.in_use, stats.waiting) == (0, 0)


async def test_full_wait_queue_sheds_at_once(peer: HttpPeer) -> None:
    transport = TrioTransport(connections_per_node=2, max_waiting_per_node=2)
    async with (
        httpx.AsyncClient(transport=transport, timeout=5) as http,
        trio.open_nursery() as nursery,
    ):
        for _ in range(4):  # two hold the slots, two wait
            nursery.start_soon(http.get, f"{peer.url}/hang")
        await trio.testing.wait_all_tasks_blocked()
        assert only_pool(transport).waiting == 2
        # Shed at the door of the pool, without waiting for anything (no clock to race):
        # not one checkpoint on the way, and it never joined the queue.
        with pytest.raises(PoolOverloaded), trio.testing.assert_no_checkpoints():
            await http.get(f"{peer.url}/echo")
        assert (only_pool(transport).waiting, only_pool(transport).shed) == (2, 1)
        nursery.cancel_scope.cancel()
    stats = only_pool(transport)
    assert (stats.in_use, stats.waiting, stats.shed) == (0, 0, 1)


async def test_pool_timeout_when_slots_stay_busy(peer: HttpPeer) -> None:
    transport = TrioTransport(connections_per_node=1, max_waiting_per_node=4)
    timeout = httpx.Timeout(5, pool=0.05)
    async with (
        httpx.AsyncClient(transport=transport, timeout=timeout) as http,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(http.get, f"{peer.url}/hang")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(httpx.PoolTimeout):
            await http.get(f"{peer.url}/echo")
        nursery.cancel_scope.cancel()
    assert transport.pool_timeouts == 1
    assert only_pool(transport).in_use == 0


async def test_refused_connection_is_a_connect_error(transport: TrioTransport) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")
    assert only_pool(transport).in_use == 0


async def test_close_closes_idle_connections(peer: HttpPeer) -> None:
    transport = TrioTransport()
    async with httpx.AsyncClient(transport=transport) as http, trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(http.get, f"{peer.url}/slow?ms=20")
    # Leaving the client closed the transport; the server sees the sockets close.
    await until(lambda: peer.closed == 3)
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(httpx.Request("GET", f"{peer.url}/echo"))


# ---------------------------------------------------------------- drains of cut exchanges


@pytest.fixture
async def draining() -> AsyncIterator[TrioTransport]:
    """A transport whose cut exchanges are drained, as a client's own (``es.opening``) is."""
    transport = TrioTransport(connections_per_node=4, max_waiting_per_node=8, drain_seconds=1)
    async with transport.backend.drains() as drains:
        transport.drains = drains
        yield transport
        await transport.aclose()


async def test_a_call_cut_by_its_deadline_keeps_its_connection(
    peer: HttpPeer, draining: TrioTransport
) -> None:
    async with httpx.AsyncClient(transport=draining, timeout=5) as http:
        for n in range(5):
            await cut_once_received(peer, http, f"{peer.url}/slow?ms=150")
            await until(lambda: drains_under_way(draining) == 0)  # it read the answer
            answer = (await http.get(f"{peer.url}/echo", headers={"x-id": str(n)})).json()
            assert answer == {"conn": 1, "id": str(n), "path": "/echo"}
        stats = only_pool(draining)
    assert (stats.opened, stats.drained, stats.discarded) == (1, 5, 0)
    assert peer.opened == 1


async def test_a_drain_that_runs_out_of_time_closes_the_connection(
    peer: HttpPeer, draining: TrioTransport
) -> None:
    draining.drain_seconds = 0.1
    async with httpx.AsyncClient(transport=draining, timeout=5) as http:
        await cut_once_received(peer, http, f"{peer.url}/hang")
        await until(lambda: drains_under_way(draining) == 0)  # out of time, it gave up
        stats = only_pool(draining)
        assert (stats.drained, stats.discarded, stats.idle) == (0, 1, 0)
        await http.get(f"{peer.url}/echo")
    assert only_pool(draining).opened == 2


@pytest.mark.parametrize("path", ["/slow?ms=30", "/hang", "/half"])
async def test_with_drains_cancellation_at_any_point_leaves_the_pool_clean(
    peer: HttpPeer, draining: TrioTransport, path: str
) -> None:
    draining.drain_seconds = 0.05
    async with httpx.AsyncClient(transport=draining, timeout=5) as http:
        for step in range(0, 41, 1):
            with trio.move_on_after(step / 1000):
                async with trio.open_nursery() as nursery:
                    for _ in range(6):
                        nursery.start_soon(http.get, f"{peer.url}{path}")
                    nursery.start_soon(http.get, f"{peer.url}/echo")
            await until(lambda: drains_under_way(draining) == 0)  # each kept or closed
            stats = only_pool(draining)
            assert (stats.in_use, stats.waiting) == (0, 0)
            # Whatever a drain pooled answers its own next request, not a stale one.
            for n in range(stats.idle + 1):
                answer = (await http.get(f"{peer.url}/echo", headers={"x-id": str(n)})).json()
                assert answer["id"] == str(n)


async def test_closing_the_transport_ends_its_drains(peer: HttpPeer, nursery: trio.Nursery) -> None:
    # The drains' nursery outlives the transport, as a serving app's does.
    transport = TrioTransport(connections_per_node=4, drain_seconds=30)
    transport.drains = TrioDrains(nursery)
    async with httpx.AsyncClient(transport=transport, timeout=5) as http:
        await cut_once_received(peer, http, f"{peer.url}/hang")
        assert drains_under_way(transport) == 1
    # Far sooner than the drain's own 30 s: it saw its cancellation and closed its connection.
    await until(lambda: drains_under_way(transport) == 0)
    stats = only_pool(transport)
    assert (stats.drained, stats.discarded, stats.idle) == (0, 1, 0)


async def test_an_error_inside_the_client_comes_out_as_itself() -> None:
    # Not wrapped in an exception group by the client's own drain nursery.
    with pytest.raises(UsageError, match="mine"):
        async with open_elasticsearch(plain_config(["http://127.0.0.1:9"]), "trio"):
            raise UsageError("mine")
