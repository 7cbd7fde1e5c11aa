"""Hypercorn's own trio shell (``SERVER_SHELL=hypercorn``), with its shutdown race closed.

At the shutdown signal, Hypercorn's per-connection timer task
(``TCPServer._idle_timeout``) wakes and closes its connection, in a shielded
scope. A request that arrives on that connection while the task is waking
reaches the app all the same: the reader parses it and says "not idle"
(``Updated(idle=False)``), but stopping the timer takes a lock first, the
timer runs meanwhile, finds nothing cancelled and closes the connection, and
the app's answer is lost. The shutdown drill saw a request the server began
go unanswered in 2 runs of 3 on Hypercorn 0.18.0's shell.

:class:`TCPServer` notes the protocol's last ``Updated`` as it is sent, before
anything awaits, and the timer stands down when a request is in hand: the
protocol closes that connection after its answer, as the lean shell does.
Its send to the client is shielded with no deadline, so a client that stops
reading holds the connection's task (and its answer's memory) for as long as
it keeps the connection open; ``READ_TIMEOUT`` bounds only reads. The send
here goes in parts of 64 KB, each given ``READ_TIMEOUT`` (or the keep-alive
timeout, as the lean shell falls back to): a reader that takes a part in that
time gets the whole answer however long it is, one that stops is cut off and
its connection closed. (The lean shell's bound is finer, moving with every
byte the kernel takes.)

Everything else is Hypercorn's, so the benchmark's ``trio-hypercorn`` target
still measures Hypercorn's shell (the extra work is one attribute per
``Updated``, one test when the timer fires, and a deadline per part sent).
"""

from __future__ import annotations

import math
from types import ModuleType

import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio import tcp_server

# Small enough that even a slow reader takes a part within the timeout, large
# enough that a big answer costs few wake-ups.
SEND_PART = 64 * 1024


class TCPServer(tcp_server.TCPServer):
    # Whether the protocol has a request in hand (its last ``Updated``), set
    # before Hypercorn's shell awaits anything for that event.
    _busy = False

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            await self._send_bounded(event.data)
            return
        if isinstance(event, Updated):
            self._busy = not event.idle
        await super().protocol_send(event)

    async def _send_bounded(self, data: bytes) -> None:
        """Hypercorn's send (shielded, under the send lock), with each part's stall bounded."""
        stall = self.config.read_timeout or self.config.keep_alive_timeout or math.inf
        view = memoryview(data)
        async with self.send_lock:
            try:
                for start in range(0, len(view), SEND_PART):
                    # Shielded like Hypercorn's (half a message must not be
                    # abandoned by a cancelled app), but not for ever.
                    with trio.CancelScope(
                        shield=True, deadline=trio.current_time() + stall
                    ) as part:
                        await self.stream.send_all(view[start : start + SEND_PART])
                    if part.cancelled_caught:
                        raise trio.ClosedResourceError  # the client stopped reading
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # Shielded: a cancelled caller must not leave the protocol unaware.
                with trio.CancelScope(shield=True):
                    # A half-sent stream cannot go on.
                    await self.stream.aclose()
                    await self.protocol.handle(Closed())

    async def _idle_timeout(self) -> None:
        with trio.move_on_after(self.config.keep_alive_timeout):
            await self.context.terminated.wait()
        # A request arrived while this task was waking: the protocol closes
        # the connection after its answer (it sees ``terminated`` then).
        if self._busy:
            return
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()


def patch_hypercorn_run(run: ModuleType) -> None:
    """Make ``hypercorn.trio.run`` (*run*) serve each connection with :class:`TCPServer`.

    Raises:
        RuntimeError: *run* no longer serves through ``tcp_server.TCPServer``
            (a Hypercorn upgrade renamed it): the race may be back unnoticed.
    """
    if run.TCPServer not in (tcp_server.TCPServer, TCPServer):
        raise RuntimeError(
            f"{run.__name__} no longer serves with hypercorn.trio.tcp_server.TCPServer: "
            "review trio_books.trio.hypercorn_shell for this Hypercorn version"
        )
    # Through setattr: the type checker knows no attributes of a module passed in.
    setattr(run, "TCPServer", TCPServer)  # noqa: B010
