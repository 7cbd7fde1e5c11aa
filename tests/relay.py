"""A TCP relay the test owns, standing between the app and Elasticsearch.

The browser test cannot stop the shared Elasticsearch, so the app talks to it
through this relay; closing the relay is, for the app, Elasticsearch stopping:
its connections drop and new ones are refused.
"""

from __future__ import annotations

import trio


async def _pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    async for chunk in source:
        await sink.send_all(chunk)


class Relay:
    """Start with ``url = await nursery.start(relay.serve, host, port)``; ``await relay.stop()``."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()

    async def _handle(self, client: trio.SocketStream, host: str, port: int) -> None:
        async with (
            client,
            await trio.open_tcp_stream(host, port) as upstream,
            trio.open_nursery() as nursery,
        ):
            # Either side closing ends the relayed connection.
            async def both_ways(a: trio.SocketStream, b: trio.SocketStream) -> None:
                await _pipe(a, b)
                nursery.cancel_scope.cancel()

            nursery.start_soon(both_ways, client, upstream)
            nursery.start_soon(both_ways, upstream, client)

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            with self.scope:
                listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
                bound = listeners[0].socket.getsockname()[1]
                task_status.started(f"http://127.0.0.1:{bound}")

                async def handle(client: trio.SocketStream) -> None:
                    await self._handle(client, host, port)

                await trio.serve_listeners(handle, listeners)
        finally:
            self.stopped.set()

    async def stop(self) -> None:
        """Close the listener and every relayed connection; return once they are closed."""
        self.scope.cancel()
        await self.stopped.wait()
