"""The service as a real ``python -m trio_books serve`` process, for tests of signals and shutdown."""

from __future__ import annotations

import re

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
