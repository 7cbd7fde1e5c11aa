"""A small HTTP/1.1 server on Trio and h11 that tests control: a real peer for the pool.

It is not a stand-in for Elasticsearch: it is the other end of a TCP connection
whose behaviour a pool test must meet (keep-alive, idle close, slow or stalled
answers). Routes, by path:

- ``/echo``: 200 at once, the body naming the connection and the request's ``x-id``;
- ``/slow?ms=N``: the same after N milliseconds;
- ``/hang``: reads the request and never answers;
- ``/half``: sends the head and half the body, then stalls;
- ``/close``: answers with ``Connection: close`` and closes.

``idle_close`` closes a connection that stays idle that long (what Elasticsearch
does with an idle keep-alive connection); ``drop_second`` closes a connection,
without answering, when its second request arrives (a keep-alive connection
the server dropped just as the client reused it).

The counters are the server's side of the story: ``opened`` connections
accepted, ``open_now`` of them still being served, ``closed`` of them whose
socket the server has closed (counted after the close, so a test that sees it
may rely on the FIN having been sent), ``requests`` read in full, ``busy_now``
and ``max_busy`` answers under way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import h11
import orjson
import trio


@dataclass
class HttpPeer:
    idle_close: float | None = None
    drop_second: bool = False
    port: int = 0
    opened: int = 0
    open_now: int = 0
    busy_now: int = 0
    max_busy: int = 0
    requests: int = 0
    closed: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(
        self, *, task_status: trio.TaskStatus[HttpPeer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        ids = itertools.count(1)

        async def handler(stream: trio.SocketStream) -> None:
            self.opened += 1
            self.open_now += 1
            try:
                await self._connection(stream, next(ids))
            except (trio.BrokenResourceError, h11.RemoteProtocolError):
                pass
            finally:
                self.open_now -= 1
                await trio.aclose_forcefully(stream)
                self.closed += 1

        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        # The listeners' tasks live in this call's nursery: the peer serves
        # until the test's nursery is cancelled.
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handler, listeners)
            task_status.started(self)

    async def _connection(self, stream: trio.SocketStream, conn_id: int) -> None:
        connection = h11.Connection(h11.SERVER)
        served = 0
        while True:
            request = await self._read_request(stream, connection)
            if request is None:
                return
            served += 1
            self.requests += 1
            if self.drop_second and served == 2:
                return
            path = request.target.decode()
            request_id = dict(request.headers).get(b"x-id", b"").decode()
            body = orjson.dumps({"conn": conn_id, "id": request_id, "path": path})
            self.busy_now += 1
            self.max_busy = max(self.max_busy, self.busy_now)
            try:
                if path.startswith("/slow"):
                    await trio.sleep(int(path.partition("ms=")[2] or 100) / 1000)
                elif path == "/hang":
                    await trio.sleep_forever()
                headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
                if path == "/close":
                    headers.append(("connection", "close"))
                head = connection.send(h11.Response(status_code=200, headers=headers)) or b""
                if path == "/half":
                    await stream.send_all(head + body[: len(body) // 2])
                    await trio.sleep_forever()
                out = head + (connection.send(h11.Data(data=body)) or b"")
                await stream.send_all(out + (connection.send(h11.EndOfMessage()) or b""))
            finally:
                self.busy_now -= 1
            if connection.our_state is h11.MUST_CLOSE or path == "/close":
                return
            connection.start_next_cycle()

    async def _read_request(
        self, stream: trio.SocketStream, connection: h11.Connection
    ) -> h11.Request | None:
        request = None
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                with trio.move_on_after(
                    self.idle_close if request is None and self.idle_close else float("inf")
                ):
                    connection.receive_data(await stream.receive_some(65536))
                    continue
                return None  # idle too long: close, as Elasticsearch would
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.EndOfMessage):
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None
