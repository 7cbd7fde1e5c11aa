"""A real Prometheus (Debian's package) scraping the service under test, for the metrics tests.

``prometheus = await nursery.start(serve_prometheus, ["127.0.0.1:5000"], tmp_path)``
runs Prometheus on a free loopback port with a scrape configuration for those
targets (every ``SCRAPE_INTERVAL``), its data in *tmp_path*, until the nursery
is cancelled; :meth:`PrometheusInfo.query` asks its HTTP API.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

SCRAPE_INTERVAL = "500ms"
STARTUP_LIMIT = 60.0
JOB = "trio_books"


@dataclass(frozen=True)
class PrometheusInfo:
    url: str

    async def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector of *expression*: each item's ``metric`` labels and ``value``."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            answer = await http.get("/api/v1/query", params={"query": expression})
        answer.raise_for_status()
        body = answer.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def find_prometheus() -> str:
    """The binary's path; ``nox -s tests`` installs Debian's prometheus package."""
    found = shutil.which("prometheus")
    if found is None:
        raise RuntimeError(
            "the metrics tests need Prometheus: apt-get install prometheus (nox -s tests does it)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape_config(targets: list[str]) -> str:
    quoted = ", ".join(f'"{target}"' for target in targets)
    return (
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: [{quoted}]\n"
    )


async def serve_prometheus(
    targets: list[str],
    workdir: Path,
    *,
    task_status: trio.TaskStatus[PrometheusInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run Prometheus scraping *targets* until cancelled; its log goes to ``workdir/prometheus.log``.

    Raises:
        RuntimeError: Prometheus exited (the message ends with its log).
        TimeoutError: it was not ready within ``STARTUP_LIMIT`` seconds.
    """
    binary = find_prometheus()
    await trio.Path(workdir).mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    await trio.Path(config).write_text(scrape_config(targets))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "prometheus.log"
    with log.open("wb") as output:
        process = await trio.lowlevel.open_process(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
        try:
            with trio.fail_after(STARTUP_LIMIT):
                while not await _ready(url):
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"prometheus exited with {process.returncode}:\n{await _tail(log)}"
                        )
                    await trio.sleep(0.1)
            task_status.started(PrometheusInfo(url))
            await process.wait()
            raise RuntimeError(f"prometheus exited with {process.returncode}:\n{await _tail(log)}")
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


async def _ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            answer = await http.get(f"{url}/-/ready")
    except httpx.HTTPError:
        return False
    return answer.status_code == 200
