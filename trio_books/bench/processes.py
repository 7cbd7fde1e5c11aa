"""Server processes: started, waited for, stopped; their CPU time and memory read from ``/proc``.

A target may be several processes (Hypercorn or Uvicorn with ``--workers``), so
every figure covers the whole process tree. Linux only, like ``wrk`` itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

import trio_books
from trio_books.es.connection import ConnectionConfig
from trio_books.es.environment import child_env

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PORT_RANGE = range(5100, 5200)
STARTUP_LIMIT = 60.0
PROJECT_ROOT = Path(trio_books.__file__).resolve().parent.parent


def free_port(taken: Iterable[int] = ()) -> int:
    """A loopback port in 5100-5199 that nothing listens on (the range kept for our servers)."""
    skip = set(taken)
    for port in PORT_RANGE:
        if port in skip:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 5100-5199")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; everything after its ")" is split safely.
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """*root* and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parent = int(_stat_fields(int(entry.name))[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time of *pids*, in seconds."""
    ticks = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue  # exited
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of *pids*, summed."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
        except OSError:
            continue
    return total


class PeakMemory:
    """Samples a process tree's resident memory in a thread and keeps the peak.

    A thread, not a task: the orchestrator is blocked waiting for ``wrk``.
    """

    def __init__(self, pids: Sequence[int], interval: float = 0.1) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.peak = rss_bytes(self.pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pids))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pids))


@dataclass
class Server:
    """A server process we started, and where it answers."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)


def start_server(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    url: str,
    ready_path: str,
    log: Path,
    connection: ConnectionConfig | None = None,
) -> Server:
    """Start *command*, its output going to *log*; return once ``GET ready_path`` answers 200.

    The child inherits this process's environment, then *env*; with *connection*,
    its ``TRIO_BOOKS_ES_*`` settings are *connection*'s instead of inherited ones.
    """
    base = dict(os.environ) if connection is None else child_env(connection, os.environ)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        # Run from the folder holding the trio_books being benchmarked, so that
        # ``python -m trio_books`` serves this very code whatever the caller's folder.
        process = subprocess.Popen(
            list(command),
            env={**base, **env},
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, process, url, log)
    deadline = time.monotonic() + STARTUP_LIMIT
    with httpx.Client(base_url=url, timeout=5) as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited at start: {log_tail(log)}")
            try:
                if http.get(ready_path).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                stop_server(server)
                raise RuntimeError(
                    f"{name} did not answer within {STARTUP_LIMIT:.0f} s: {log_tail(log)}"
                )
            time.sleep(0.2)


def start_standin(port: int, latency_ms: float, log: Path) -> Server:
    """The latency STAND-IN (:mod:`.latency_standin`, not Elasticsearch) on 127.0.0.1:*port*."""
    return start_server(
        "latency-standin",
        [
            sys.executable,
            "-m",
            "trio_books.bench.latency_standin",
            "--port",
            str(port),
            "--latency-ms",
            f"{latency_ms:g}",
        ],
        env={},
        url=f"http://127.0.0.1:{port}",
        ready_path="/_cluster/health",
        log=log,
    )


def start_otlp_sink(port: int, log: Path) -> Server:
    """The OTLP trace sink STAND-IN (:mod:`.otlp_sink`, not a trace backend) on 127.0.0.1:*port*."""
    return start_server(
        "otlp-sink",
        [sys.executable, "-m", "trio_books.bench.otlp_sink", "--port", str(port)],
        env={},
        url=f"http://127.0.0.1:{port}",
        ready_path="/stats",
        log=log,
    )


def otlp_sink_stats(sink: Server) -> dict[str, int]:
    """How many exports and bytes the sink stand-in took; empty if it did not say."""
    try:
        with httpx.Client(base_url=sink.url, timeout=5) as http:
            stats = http.get("/stats").json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {key: int(stats[key]) for key in ("exports", "bytes") if key in stats}


def stop_server(server: Server, grace: float = 15.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after *grace* seconds."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(grace)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


CLOSED_LINE = "closed the Elasticsearch client"
POOL_COUNTERS = (
    "es_connections_opened",
    "es_connections_reused",
    "es_connections_discarded",
    "es_stale_retries",
    "es_connections_drained",
)


def pool_counters(log: Path) -> dict[str, int] | None:
    """The transport's counters from a stopped server's *log*, summed over its worker processes.

    Each worker's app logs them (JSON) as it closes its Elasticsearch client
    (:func:`trio_books.transport.connection_pool.pool_counters`). ``None``: no such line had them (a
    server that is not ours, a transport that keeps none, a text log format).
    """
    totals = dict.fromkeys(POOL_COUNTERS, 0)
    seen = False
    try:
        lines = log.read_bytes().splitlines()
    except OSError:
        return None
    for line in lines:
        if CLOSED_LINE.encode() not in line:
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(name), int) for name in POOL_COUNTERS
        ):
            continue
        seen = True
        for name in POOL_COUNTERS:
            totals[name] += entry[name]
    return totals if seen else None


def log_tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
