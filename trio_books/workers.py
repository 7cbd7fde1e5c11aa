"""The parent of several worker processes: ``serve --workers N``.

Hypercorn's own parent (``hypercorn.run.run``) wakes when the *first* worker
exits and then terminates the others. After SIGTERM, the worker that drains
first would thus end its siblings while they still answer in-flight
requests. This parent does what Hypercorn's does otherwise (the same
sockets and shutdown event) but, once told to stop, waits for *every* worker
to finish its graceful shutdown, up to the graceful timeout and a margin,
before it kills any straggler.

Until then a worker that exits on its own with status 0 (``max_requests``) is
replaced, as Hypercorn does; one that fails stops them all.

The workers are the builds' own (``serve_worker``), not Hypercorn's: they
serve through the same ``serve_app`` as one process does, so each marks
itself draining (``/readyz`` 503) at the shutdown event before it stops
taking requests.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from multiprocessing import get_context
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from hypercorn.config import Config, Sockets
from hypercorn.typing import WorkerFunc
from hypercorn.utils import repr_socket_addr

# Seconds past the graceful timeout a worker may take to exit (its lifespan's close).
EXIT_MARGIN = 5.0


def run_workers(
    config: Config, worker: WorkerFunc, *, started: Callable[[list[str]], object] | None = None
) -> int:
    """Run ``config.workers`` processes of *worker* until SIGINT or SIGTERM; the worst exit code.

    *worker* is the build's (``serve_worker`` in ``trio_books.trio.serve`` or
    ``trio_books.asyncio.serve``), called as Hypercorn calls its own.
    *started* is called with the bound addresses as the workers start, so
    ``--port 0`` can tell which port it got. Each worker listens once it is
    up (its log says "Running on"); until the first does, a connection is
    refused rather than queued, so a client that gave up waiting was never
    read (the shutdown drill counts on that).
    """
    sockets: Sockets = config.create_sockets()
    context = get_context("spawn")
    shutdown = context.Event()

    def start(index: int) -> BaseProcess:
        # *index* stays with the slot: a replacement serves where its predecessor did
        # (its own metrics port, METRICS_PORT + index).
        process = context.Process(
            target=worker,
            kwargs={
                "config": config,
                "shutdown_event": shutdown,
                "sockets": sockets,
                "index": index,
            },
        )
        process.daemon = config.daemon
        process.start()
        return process

    def stop(*_: Any) -> None:
        shutdown.set()

    # Workers inherit SIGINT ignored: the parent alone turns a signal into the shutdown event.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    slots = {index: start(index) for index in range(config.workers)}
    if started is not None:
        started(binds(sockets))
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    # A signal also writes a byte here, so the wait below wakes at once.
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    previous_wakeup = signal.set_wakeup_fd(wake)
    exitcode = 0
    try:
        while slots and not shutdown.is_set():
            wait([woken, *(process.sentinel for process in slots.values())], timeout=1.0)
            for index, process in [(i, p) for i, p in slots.items() if p.exitcode is not None]:
                process.join()
                del slots[index]
                if process.exitcode != 0:
                    exitcode = exitcode or process.exitcode or 1
                    shutdown.set()
                elif not shutdown.is_set():
                    slots[index] = start(index)  # max_requests reached: a fresh one
        # Told to stop. The workers close their listening sockets; the
        # parent's copies go too, so a new connection is refused at once
        # instead of waiting in the backlog for a worker that will not accept it.
        _close(sockets)
        # Every worker drains its in-flight requests, then exits.
        # One deadline for all: they drain at the same time, not one after another.
        deadline = time.monotonic() + config.graceful_timeout + EXIT_MARGIN
        for process in slots.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join()
            exitcode = exitcode or (process.exitcode or 0)
    finally:
        _close(sockets)
        signal.set_wakeup_fd(previous_wakeup)
        os.close(woken)
        os.close(wake)
    return exitcode


def binds(sockets: Sockets) -> list[str]:
    """The addresses of *sockets*, as URLs."""
    return [
        *(f"https://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets.secure_sockets),
        *(
            f"http://{repr_socket_addr(s.family, s.getsockname())}"
            for s in sockets.insecure_sockets
        ),
    ]


def _close(sockets: Sockets) -> None:
    for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
        sock.close()
