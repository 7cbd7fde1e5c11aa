"""The service under drill: a real ``python -m trio_books serve`` subprocess, and what it uses.

Figures come from ``/proc`` (Linux): resident memory, open file descriptors
and TCP connections to Elasticsearch, summed over the server and its workers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from trio_books.es.connection import ConnectionConfig
from trio_books.es.environment import child_env


def free_port() -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def process_tree(pid: int) -> list[int]:
    """*pid* and all its descendants."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        try:
            pending += _children(current)
        except OSError:
            continue
    return tree


def rss_bytes(pid: int) -> int:
    """Resident memory of *pid* and its descendants (0 for those already gone)."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def open_fds(pid: int) -> int:
    total = 0
    for member in process_tree(pid):
        try:
            total += len(os.listdir(f"/proc/{member}/fd"))
        except OSError:
            continue
    return total


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections from *pid*'s tree to *port* (Elasticsearch)."""
    inodes: set[str] = set()
    for member in process_tree(pid):
        try:
            for fd in os.listdir(f"/proc/{member}/fd"):
                target = os.readlink(f"/proc/{member}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            # State 01 is ESTABLISHED.
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


# What each worker logs when serving has ended and its Elasticsearch client is closed.
CLOSING_MESSAGE = "closed the Elasticsearch client"


@dataclass
class Server:
    """A running server subprocess."""

    process: trio.Process
    url: str
    log_path: Path
    peak_rss: int = 0
    samples: list[int] = field(default_factory=list)
    # Answers to the start-up health probes (the server counts those requests too).
    probes_answered: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def process_count(self) -> int:
        return len(process_tree(self.pid))

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def closing_lines(self) -> list[dict[str, Any]]:
        """Each worker's last line (JSON logs), with its request and connection counts."""
        lines = []
        for line in self.log().splitlines():
            if CLOSING_MESSAGE in line:
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and entry.get("message") == CLOSING_MESSAGE:
                    lines.append(entry)
        return lines

    async def sample_memory(self, every: float = 0.1) -> None:
        """Keep :attr:`peak_rss` up to date until cancelled or the server exits."""
        while self.process.returncode is None:
            current = self.rss()
            self.samples.append(current)
            self.peak_rss = max(self.peak_rss, current)
            await trio.sleep(every)

    async def wait_exit(self, seconds: float) -> int | None:
        """The exit code, or ``None`` if it is still running after *seconds*."""
        with trio.move_on_after(seconds):
            return await self.process.wait()
        return None


@asynccontextmanager
async def running_server(
    config: ConnectionConfig,
    index: str,
    *,
    build: str = "trio",
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Server]:
    """Start *build*'s service on a free port, wait for ``/healthz``; stop it (SIGKILL if need be) after."""
    port = free_port()
    log_fd, log_name = tempfile.mkstemp(prefix="trio_books-drill-", suffix=".log")
    log_path = Path(log_name)
    # The server reaches Elasticsearch as the drill does: same nodes, TLS and credentials.
    settings_env = child_env(
        config,
        os.environ,
        {
            "TRIO_BOOKS_INDEX": index,
            "TRIO_BOOKS_ACCESS_LOG": "false",
            # Drills read counts from the closing line's fields.
            "TRIO_BOOKS_LOG_FORMAT": "json",
            **(env or {}),
        },
    )
    command = [sys.executable, "-m", "trio_books", "serve", "--build", build, "--port", str(port)]
    try:
        process = await trio.lowlevel.open_process(
            [*command, "--workers", str(workers)],
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            env=settings_env,
            # A process group of its own (its pid names it), so a drill can signal
            # the server and its workers together without reaching the drill.
            start_new_session=True,
        )
    finally:
        os.close(log_fd)
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        await _wait_healthy(server)
        yield server
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                if await server.wait_exit(15) is None:
                    for member in reversed(process_tree(process.pid)):
                        os.kill(member, signal.SIGKILL)
                    await server.wait_exit(5)
            # What a drill needs from the log it has read by now.
            await trio.Path(log_path).unlink(missing_ok=True)


async def _wait_healthy(server: Server, seconds: float = 30) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=2) as http:
        with trio.move_on_after(seconds):
            while server.process.poll() is None:
                try:
                    status = (await http.get("/healthz")).status_code
                except httpx.TransportError:
                    pass
                else:
                    server.probes_answered += 1
                    if status == 200:
                        return
                await trio.sleep(0.1)
    raise RuntimeError(f"the server did not start; its log:\n{server.log()[-2000:]}")
