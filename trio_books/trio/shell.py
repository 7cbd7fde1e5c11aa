"""One HTTP connection on Trio: the lean shell around Hypercorn's loop-free protocol.

Hypercorn keeps HTTP in ``hypercorn.protocol`` (free of any event loop) and
gives each library a thin shell that moves bytes and runs timers. This is the
Trio build's own shell; it differs from ``hypercorn.trio.tcp_server`` where
that one costs time per request or races at shutdown:

* **No timer task.** Hypercorn restarts a keep-alive task (``nursery.start``
  under a lock) after every answer. Here the keep-alive deadline is only a
  number, applied to the one wait for the next request's bytes; a read
  timeout likewise applies only while the reader actually waits.
* **The raw socket.** Reads and writes go straight to the non-blocking socket
  and wait (``wait_readable``/``wait_writable``) only when the kernel has
  nothing, so a read that finds data does not pass through the scheduler.
* **No send lock on the fast path.** A send the kernel takes whole does not
  wait, so it cannot interleave; only a send that must wait takes the lock
  (and every send after it queues behind, until none waits).
  It still yields to the scheduler once it is done, for fairness.
* **Idle means idle at shutdown.** At the shutdown signal the server closes
  its idle connections. Hypercorn's timer task closes a connection even when
  its reader has just handed a request to the app, so a request the app began
  is cut unanswered; here idleness is read where requests are, in the reader,
  and a connection busy with a request closes after its answer. And the reader
  no longer waits forever when the protocol closes a connection on which the
  next request has already arrived (Hypercorn's reader then sleeps until the
  graceful timeout cancels it).
"""

from __future__ import annotations

import contextlib
import math
import socket
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState
from hypercorn.utils import parse_socket_addr

from trio_books.http1_only import HTTP11Only

# What Hypercorn's shells read at once.
MAX_RECV = 2**16
# At most this long, after the last answer, for the client to see the end and close.
LINGER_SECONDS = 2.0


class Connection:
    """Serve one accepted, non-blocking socket until either side closes it (:meth:`run`)."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        state: dict[str, Any],
        sock: socket.socket,
    ) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.state = state
        self.socket = sock
        self.idle = True
        self.closed = False
        # When an idle connection is closed unless a request arrives first.
        self._idle_deadline = trio.current_time() + config.keep_alive_timeout
        self._read_timeout = config.read_timeout or math.inf
        # A send that must wait gives up after this (Hypercorn's has no bound).
        self._send_timeout = config.read_timeout or config.keep_alive_timeout
        self._waiting: trio.CancelScope | None = None
        self._reader: trio.CancelScope | None = None
        self._reader_task: trio.lowlevel.Task | None = None
        # Accepted just as the server began to stop: close unread.
        self._stop_when_idle = context.terminated.is_set()
        self._send_lock = trio.Lock()
        # Senders past the fast path (waiting for the lock or the socket):
        # while any, every send queues behind them, in order.
        self._senders = 0
        # Anything sent at all: closing must then linger, so that a reset
        # cannot destroy an answer the client has not read yet.
        self._sent = False

    async def run(self) -> None:
        try:
            client = parse_socket_addr(self.socket.family, self.socket.getpeername())
            server = parse_socket_addr(self.socket.family, self.socket.getsockname())
        except OSError:
            self.socket.close()
            return
        try:
            await self._serve(client, server)
        except BaseException:
            # Cancelled (the graceful timeout, or serving cancelled from outside).
            self.socket.close()
            raise

    async def _serve(self, client: tuple[str, int] | None, server: tuple[str, int] | None) -> None:
        # Hypercorn's task group: the connection's app tasks live in its nursery
        # and are done (answered, or told the client left) before run returns.
        async with TaskGroup() as task_group:
            self.protocol = HTTP11Only(
                self.app,
                self.config,
                self.context,
                task_group,
                ConnectionState(self.state.copy()),
                False,
                client,
                server,
                self.protocol_send,
                "http/1.1",
            )
            await self.protocol.initiate()
            self._reader_task = trio.lowlevel.current_task()
            with trio.CancelScope() as self._reader:
                await self._read()
            # The app hears the client left; an answer already being sent
            # (a client that half-closed) may still finish before the task
            # group ends, so the write side stays open until then.
            await self.protocol.handle(Closed())
        self._stop_sending()
        if self._sent:
            await self._linger()
        else:
            # Nothing of ours is on its way: no reset can harm it.
            self.socket.close()

    async def _linger(self) -> None:
        """Read and drop what the client still sends, until it closes, then close.

        Closing a socket with unread bytes in it makes the kernel send a reset,
        which may destroy the answer still on its way to the client; so the
        server half-closes, reads until the client has seen the end (RFC 9112
        §9.6, "lingering close"), and only then lets go, within a bound.
        """
        try:
            with trio.move_on_after(LINGER_SECONDS):
                while True:
                    try:
                        if not self.socket.recv(MAX_RECV):
                            return
                    except BlockingIOError:
                        await trio.lowlevel.wait_readable(self.socket)
                    except OSError:
                        return
                    else:
                        # A client that keeps sending must not hold the worker,
                        # and the bound above is only checked at a checkpoint.
                        await trio.lowlevel.checkpoint()
        finally:
            self.socket.close()

    def terminate(self) -> None:
        """The server is shutting down: close now if idle, else once the answer is sent.

        The protocol sees ``context.terminated`` when an answer is done and
        closes then; an idle connection's reader is woken here and stops.
        """
        self._stop_when_idle = True
        if self.idle and self._waiting is not None:
            self._waiting.cancel()

    async def _read(self) -> None:
        recv = self.socket.recv
        while not (self.idle and self._stop_when_idle):
            try:
                data = recv(MAX_RECV)
            except BlockingIOError:
                if not await self._wait_readable():
                    return
                continue
            except OSError:
                return
            await self.protocol.handle(RawData(data))
            if not data or self.closed:
                return

    async def _wait_readable(self) -> bool:
        """Wait for bytes; ``False`` when the keep-alive or read timeout passed, or told to stop."""
        deadline = trio.current_time() + self._read_timeout
        if self.idle:
            deadline = min(deadline, self._idle_deadline)
        with trio.CancelScope(deadline=deadline) as waiting:
            self._waiting = waiting
            try:
                await trio.lowlevel.wait_readable(self.socket)
            except trio.ClosedResourceError:
                return False
            finally:
                self._waiting = None
        return not waiting.cancelled_caught

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            await self._send_all(event.data)
        elif isinstance(event, Closed):
            self._stop_sending()
            self._stop_reader()
            await self.protocol.handle(Closed())
        elif isinstance(event, Updated):
            self.idle = event.idle
            if event.idle:
                # One schedule point per answer, at its end, not one per send:
                # without any, the other connections waited on whole answers'
                # worth of work (ping's p99 at 64 clients was twice Hypercorn's
                # shell's); with one per send (three per answer through
                # Quart-Trio), each waited out a whole batch of the scheduler
                # under load, 54 ms per answer at the median on searches.
                await trio.lowlevel.cancel_shielded_checkpoint()
                if not self.idle:
                    # The reader began the next request during the yield (its
                    # bytes had arrived): busy again, so neither the keep-alive
                    # deadline nor a stop when idle applies to its wait.
                    return
                self._idle_deadline = trio.current_time() + self.config.keep_alive_timeout
                # The reader may already be waiting for the next request, with
                # only the read timeout on its wait: the keep-alive one starts now.
                if self._waiting is not None:
                    self._waiting.deadline = min(self._waiting.deadline, self._idle_deadline)
                    if self._stop_when_idle:
                        self._waiting.cancel()

    async def _send_all(self, data: bytes) -> None:
        if self.closed:
            return
        self._sent = True
        view = memoryview(data)
        if not self._senders:
            # Fast path: the kernel takes it all before anything yields, so
            # no other send can interleave and no lock is needed.
            try:
                sent = self.socket.send(view)
            except BlockingIOError:
                sent = 0
            except OSError:
                await self._lost()
                return
            if sent == len(view):
                # No schedule point here: the answer's end yields once instead
                # (``Updated(idle=True)`` below).
                return
            view = view[sent:]
        # Counted before the first await, so a send arriving meanwhile queues
        # behind this one rather than writing into the middle of it.
        self._senders += 1
        try:
            # Shielded like Hypercorn's send (half a message must not be
            # abandoned by a cancelled app), but bounded, so a client that
            # stops reading cannot hold the task forever.
            with trio.CancelScope(
                shield=True, deadline=trio.current_time() + self._send_timeout
            ) as scope:
                async with self._send_lock:
                    while view and not self.closed:
                        try:
                            sent = self.socket.send(view)
                        except BlockingIOError:
                            await trio.lowlevel.wait_writable(self.socket)
                            continue
                        view = view[sent:]
                        # A bound on a stall, not on the whole answer: a slow
                        # reader that keeps reading gets all of it.
                        scope.deadline = trio.current_time() + self._send_timeout
            failed = scope.cancelled_caught
        except OSError:
            failed = True
        finally:
            self._senders -= 1
        if failed:
            await self._lost()

    async def _lost(self) -> None:
        self._stop_sending()
        self._stop_reader()
        await self.protocol.handle(Closed())

    def _stop_reader(self) -> None:
        """Stop the reader, which may be waiting inside the protocol for a next
        cycle that will never come (it holds the next request's bytes).

        Not when the reader itself closes: cancelling its own scope would also
        cancel the protocol's telling the app that the client is gone; it
        stops by itself once ``closed`` is set.
        """
        if self._reader is not None and trio.lowlevel.current_task() is not self._reader_task:
            self._reader.cancel()

    def _stop_sending(self) -> None:
        if self.closed:
            return
        self.closed = True
        # FIN after whatever answer is queued; the descriptor goes after lingering.
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_WR)
