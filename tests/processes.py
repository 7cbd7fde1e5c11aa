"""Real processes for the tests: the service's own (``python -m trio_books serve``, for tests
of signals and shutdown) and the programs some tests run beside it (Prometheus, Jaeger).
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

ANNOUNCED = re.compile(rb"serving on (http://\S+)")
# Each worker says so once it listens (Hypercorn's line, on every shell).
WORKER_RUNNING = re.compile(rb"Running on http://")


class Output:
    """What a process writes to a pipe, read as it comes (a full pipe would stall the workers)."""

    def __init__(self) -> None:
        self.seen = b""

    async def read(self, pipe: trio.abc.ReceiveStream) -> None:
        while chunk := await pipe.receive_some():
            self.seen += chunk

    async def wait_for(self, pattern: re.Pattern[bytes], count: int = 1) -> re.Match[bytes]:
        while len(found := list(pattern.finditer(self.seen))) < count:
            await trio.sleep(0.05)
        return found[0]


async def refused(host: str, port: int) -> bool:
    """Whether a new connection to *host*:*port* is refused (nothing listens any more)."""
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        return True
    await stream.aclose()
    return False


def free_port() -> int:
    """A loopback port nothing listens on now (for programs that cannot report the one they took)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def run_program(
    argv: list[str],
    log: Path,
    ready: Callable[[], Awaitable[bool]],
    started: Callable[[], None],
    *,
    startup_limit: float,
) -> None:
    """Run *argv*, its output to *log*, until cancelled; call *started* once *ready* says so.

    Stopped with SIGTERM (SIGKILL after 10 s) however this ends.

    Raises:
        RuntimeError: the program exited (the message ends with its log).
        TimeoutError: it was not ready within *startup_limit* seconds.
    """
    name = Path(argv[0]).name
    with log.open("wb") as output:
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        try:
            with trio.fail_after(startup_limit):
                while not await ready():
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with {process.returncode}:\n{await _tail(log)}"
                        )
                    await trio.sleep(0.1)
            started()
            await process.wait()
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{await _tail(log)}")
        finally:
            with trio.CancelScope(shield=True):
                process.terminate()
                with trio.move_on_after(10):
                    await process.wait()
                if process.poll() is None:
                    process.kill()
                    await process.wait()


async def _tail(log: Path) -> str:
    text = await trio.Path(log).read_text(errors="replace")
    return text[-2000:]
