"""The Trio build's worker loop on the lean shell: listen, accept, drain at shutdown.

Hypercorn's own trio worker (``hypercorn.trio.run.worker_serve``) with the
lean connection shell (:mod:`trio_books.trio.shell`) in place of Hypercorn's,
the same lifespan, configuration and graceful timeout, and two changes at
shutdown: the listening sockets are closed as soon as the stop signal comes
(so a new connection is refused at once rather than left in the backlog
until the process exits), and each connection is told to close when idle
(idle ones close now, busy ones after their answer).

It serves plain-text HTTP/1.1 only (:mod:`trio_books.http1_only`). TLS stays
with Hypercorn's shell (``SERVER_SHELL=hypercorn``); the service's TLS ends at
a proxy.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from random import randint

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, LifespanState
from hypercorn.utils import repr_socket_addr

from trio_books.trio.shell import Connection

log = logging.getLogger("trio_books.server")

# Connections taken from the backlog between two schedule points. One per
# schedule point made a burst of new connections wait a whole scheduler batch
# each, which under load is tens of milliseconds: the 64th of a burst waited
# up to a second before its first request was read (the search p99 at 64
# clients was 1.1 s in some turns, 0.5 s in others). asyncio's loop takes up
# to its backlog (100) per readiness.
ACCEPT_BATCH = 64
# Out of descriptors or memory: wait a little and accept again (as trio.serve_listeners does).
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
# A peer that left or a network that failed before the accept: skip it (trio's list).
_PEER_ERRORS = {
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "EPERM",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
    )
    if hasattr(errno, name)
}
_ACCEPT_PAUSE = 0.1


class UnsupportedByLeanShell(Exception):
    """A configuration the lean shell does not serve (TLS, QUIC)."""


async def serve_lean(
    app: AppWrapper,
    config: Config,
    *,
    sockets: Sockets | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* (Hypercorn-wrapped) until *shutdown_trigger* returns; report the binds."""
    config.set_statsd_logger_class(StatsdLogger)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    max_requests = None
    if config.max_requests is not None:
        max_requests = config.max_requests + randint(0, config.max_requests_jitter)
    context = WorkerContext(max_requests)

    if sockets is None:
        sockets = config.create_sockets()
        for sock in sockets.insecure_sockets:
            sock.listen(config.backlog)
    if sockets.secure_sockets or sockets.quic_sockets:
        raise UnsupportedByLeanShell(
            "the lean server shell serves plain HTTP only; set SERVER_SHELL=hypercorn for TLS"
        )
    listeners = list(sockets.insecure_sockets)
    for sock in listeners:
        sock.setblocking(False)
    binds = [f"http://{repr_socket_addr(sock.family, sock.getsockname())}" for sock in listeners]

    try:
        await _serve_listeners(
            app,
            config,
            context,
            lifespan,
            lifespan_state,
            listeners,
            binds,
            task_status,
            shutdown_trigger,
        )
    finally:
        # Also when cancelled from outside: the sockets are this worker's to close.
        for sock in listeners:
            sock.close()


async def _serve_listeners(
    app: AppWrapper,
    config: Config,
    context: WorkerContext,
    lifespan: Lifespan,
    lifespan_state: LifespanState,
    listeners: list[socket.socket],
    binds: list[str],
    task_status: trio.TaskStatus[list[str]],
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
) -> None:
    # The lifespan task outlives serving: the app starts before the first
    # connection and shuts down after the last one has closed.
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        connections: set[Connection] = set()
        # Every connection's task: owned here, so serving ends only when each
        # has closed or the graceful timeout has cancelled it.
        async with trio.open_nursery() as connection_nursery:
            for bind in binds:
                await config.log.info(f"Running on {bind} (CTRL + C to quit)")
            task_status.started(binds)
            async with trio.open_nursery() as accepting:
                for sock in listeners:
                    accepting.start_soon(
                        _accept,
                        sock,
                        app,
                        config,
                        context,
                        lifespan_state,
                        connections,
                        connection_nursery,
                    )
                accepting.start_soon(_stop_on, shutdown_trigger, context, accepting.cancel_scope)
            # Stop accepting: from now on a new connection is refused at once.
            for sock in listeners:
                trio.lowlevel.notify_closing(sock)
                sock.close()
            await context.terminated.set()
            for connection in list(connections):
                connection.terminate()
            connection_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


async def _stop_on(
    trigger: Callable[[], Awaitable[None]] | None,
    context: WorkerContext,
    accepting: trio.CancelScope,
) -> None:
    """Return when the stop signal comes or the worker has served its max requests."""
    async with trio.open_nursery() as waiting:

        async def first(wait: Callable[[], Awaitable[None]]) -> None:
            await wait()
            waiting.cancel_scope.cancel()

        if trigger is not None:
            waiting.start_soon(first, trigger)
        waiting.start_soon(first, context.terminate.wait)
    accepting.cancel()


async def _accept(
    listener: socket.socket,
    app: AppWrapper,
    config: Config,
    context: WorkerContext,
    state: LifespanState,
    connections: set[Connection],
    nursery: trio.Nursery,
) -> None:
    accepted = 0
    while True:
        if accepted >= ACCEPT_BATCH:
            # A flood of connections must not starve the connections already open.
            accepted = 0
            await trio.lowlevel.checkpoint()
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            accepted = 0
            await trio.lowlevel.wait_readable(listener)
            continue
        except OSError as error:
            if error.errno in _RESOURCE_ERRORS:
                log.error("accept failed (%s); pausing", errno.errorcode.get(error.errno, "?"))
                await trio.sleep(_ACCEPT_PAUSE)
                continue
            if error.errno in _PEER_ERRORS:
                await trio.lowlevel.checkpoint()
                continue
            # Anything else (a socket that is not listening, a closed one) will not pass.
            raise
        try:
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            # Reset between the accept and here.
            sock.close()
            continue
        connection = Connection(app, config, context, state, sock)
        connections.add(connection)
        nursery.start_soon(_serve, connection, connections)
        accepted += 1


async def _serve(connection: Connection, connections: set[Connection]) -> None:
    try:
        await connection.run()
    finally:
        connections.discard(connection)
