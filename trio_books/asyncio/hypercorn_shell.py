"""Hypercorn's asyncio shell, with its shutdown races closed (the mirror of the Trio build's).

At the shutdown signal, Hypercorn's per-connection timer task
(``TCPServer._idle_timeout``) wakes and closes its connection, under
``asyncio.shield``. A request that arrives on that connection while the task
is waking reaches the app all the same: the reader parses it and says "not
idle" (``Updated(idle=False)``), but stopping the timer takes a lock first,
the timer runs meanwhile and closes the connection, the app is told its
client left, and the answer is lost. asyncio adds two more ways to lose a
begun request: its stream reader still hands back the bytes it had buffered
when the timer closed the connection, and the protocol begins them as a
request it cannot answer; and a connection accepted just before the listener
closed may start after Hypercorn took its list of connections to wait for,
so the worker's loop ends under a request it began. The shutdown drill, run
with ``--build asyncio`` on Hypercorn 0.18.0, lost 4 of 16 in-flight
requests with one worker and 2 to 8 with two, in every run.

:class:`TCPServer` notes the protocol's last ``Updated`` as it is sent, before
anything awaits, and the timer stands down when a request is in hand: the
protocol closes that connection after its answer (it sees ``terminated``
then). Bytes read after the timer closed the connection, and connections
that start after shutdown began, are closed unread: their clients may send
them again (RFC 9112 §9.3.1). Everything else is Hypercorn's.
"""

from __future__ import annotations

import asyncio
import contextlib
from ssl import SSLError
from types import ModuleType

from hypercorn.asyncio import tcp_server
from hypercorn.asyncio.tcp_server import MAX_RECV
from hypercorn.events import Closed, Event, RawData, Updated


class TCPServer(tcp_server.TCPServer):
    # Whether the protocol has a request in hand (its last ``Updated``), set
    # before Hypercorn's shell awaits anything for that event.
    _busy = False
    # Whether the timer has closed the connection: bytes read after that are
    # never begun as a request (the answer could not be sent).
    _closed_idle = False

    async def run(self) -> None:
        if self.context.terminated.is_set():
            # Accepted just before the listener closed but begun only after
            # Hypercorn took the list of connections to wait for: a request
            # read now could be cut when the worker's loop ends. Closed unread,
            # it was never begun.
            self.writer.close()
            return
        await super().run()

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            self._busy = not event.idle
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        # Hypercorn's loop, but a request whose bytes were read just as the timer
        # closed the connection is dropped unread: asyncio's reader still hands
        # back what it had buffered, which the protocol would begin as a request.
        while not self.reader.at_eof():
            try:
                data = await asyncio.wait_for(self.reader.read(MAX_RECV), self.config.read_timeout)
            except (ConnectionError, OSError, TimeoutError, SSLError):
                break
            if self._closed_idle:
                break
            await self.protocol.handle(RawData(data))
        await self.protocol.handle(Closed())

    async def _idle_timeout(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.context.terminated.wait(), self.config.keep_alive_timeout)
        # A request arrived while this task was waking: the protocol closes
        # the connection after its answer.
        if self._busy:
            return
        self._closed_idle = True
        await asyncio.shield(self._initiate_server_close())


def patch_hypercorn_run(run: ModuleType) -> None:
    """Make ``hypercorn.asyncio.run`` (*run*) serve each connection with :class:`TCPServer`.

    Raises:
        RuntimeError: *run* no longer serves through ``tcp_server.TCPServer``
            (a Hypercorn upgrade renamed it): the race may be back unnoticed.
    """
    if run.TCPServer not in (tcp_server.TCPServer, TCPServer):
        raise RuntimeError(
            f"{run.__name__} no longer serves with hypercorn.asyncio.tcp_server.TCPServer: "
            "review trio_books.asyncio.hypercorn_shell for this Hypercorn version"
        )
    # Through setattr: the type checker knows no attributes of a module passed in.
    setattr(run, "TCPServer", TCPServer)  # noqa: B010
