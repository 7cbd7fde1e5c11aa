"""A real Prometheus (Debian's package) scraping the service under test, for the metrics tests.

``prometheus = await nursery.start(serve_prometheus, ["127.0.0.1:5000"], tmp_path)``
runs Prometheus on a free loopback port with a scrape configuration for those
targets (every ``SCRAPE_INTERVAL``), its data in *tmp_path*, until the nursery
is cancelled; :meth:`PrometheusInfo.query` asks its HTTP API.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio
from processes import free_port, run_program

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
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    await run_program(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        workdir / "prometheus.log",
        lambda: _ready(url),
        lambda: task_status.started(PrometheusInfo(url)),
        startup_limit=STARTUP_LIMIT,
    )


async def _ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            answer = await http.get(f"{url}/-/ready")
    except httpx.HTTPError:
        return False
    return answer.status_code == 200
