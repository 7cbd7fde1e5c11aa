"""The physical reference for the ping route: a minimal h11-on-Trio server, and nothing else.

A measurement sketch, not a product feature: no ASGI, no framework, no
timeouts, no middleware. Every ``GET`` on any path gets the ping route's
answer (``{"message":"Ping"}``). Each connection is one Trio task that reads
the raw non-blocking socket (waiting only when the kernel has nothing), feeds
h11, and writes the answer straight back. Whatever a real shell costs above
this (Hypercorn's protocol, Quart, the project's middleware, timers), the
benchmark's ``h11-trio`` target shows as the distance to it; the report gives
each Trio shell's ping rate as a share of this one's.

    python -m trio_books.bench.h11_reference --port 5199
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys

import h11
import trio

PING_BODY = b'{"message":"Ping"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"18")]
MAX_RECV = 2**16


async def _recv(sock: socket.socket) -> bytes:
    """The kernel's bytes at once if it has some; else wait until it has."""
    while True:
        try:
            return sock.recv(MAX_RECV)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)


async def _send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        view = view[sent:]


def _answer(connection: h11.Connection) -> bytes:
    parts = (
        connection.send(h11.Response(status_code=200, headers=HEADERS, reason=b"OK")),
        connection.send(h11.Data(data=PING_BODY)),
        connection.send(h11.EndOfMessage()),
    )
    return b"".join(part for part in parts if part)


async def serve_connection(sock: socket.socket) -> None:
    """Answer every request on *sock* until the client closes or errs."""
    connection = h11.Connection(h11.SERVER)
    with sock:
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError:
                return
            if event is h11.NEED_DATA:
                try:
                    data = await _recv(sock)
                except OSError:
                    return
                connection.receive_data(data)
                if not data:
                    return
            elif isinstance(event, h11.EndOfMessage):
                try:
                    await _send_all(sock, _answer(connection))
                except OSError:
                    return
                if connection.our_state is h11.MUST_CLOSE:
                    return
                connection.start_next_cycle()
                # One yield per request, as any server gives others their turn.
                await trio.lowlevel.checkpoint()
            elif isinstance(event, h11.ConnectionClosed):
                return


async def serve(host: str, port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    print(f"h11 reference serving on http://{host}:{port}", file=sys.stderr, flush=True)
    # Every connection is a task of this one nursery: the server owns them all.
    async with trio.open_nursery() as nursery:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(listener)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(serve_connection, sock)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5199)
    parser.add_argument("--workers", type=int, default=1, help="only 1: one process")
    args = parser.parse_args(argv)
    if args.workers != 1:
        parser.exit(2, "h11 reference: --workers: only one process (--workers 1)\n")
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, args.host, args.port)


if __name__ == "__main__":
    main()
