"""An engine's distribution: downloaded once with Maven, unpacked once.

It is the zip each engine publishes to Maven Central for test clusters (its
coordinates: :mod:`trio_books.es.engines`); ``mvn`` with a pinned
``maven-dependency-plugin`` copies it into the cache folder.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from trio_books.errors import LocalElasticsearchError

if TYPE_CHECKING:
    from trio_books.es.layout import NodeLayout

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# A transfer that sends nothing for this long is retried; the whole download
# (about 100 MB, usually well under a minute) gives up after DOWNLOAD_TIMEOUT.
READ_TIMEOUT_MS = 60_000
DOWNLOAD_TIMEOUT = 900.0

Say = Callable[[str], None]


def say_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def maven_command(layout: NodeLayout) -> list[str]:
    """The ``mvn`` call that copies the distribution zip into the cache."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalElasticsearchError(
            f"Maven (mvn) is needed to download {layout.engine.title} the first time: install it, "
            "or point TRIO_BOOKS_ES_URLS at an Elasticsearch you already run"
        )
    return [
        mvn,
        "--batch-mode",
        "--no-transfer-progress",
        # Maven's own read timeout is 30 minutes per attempt: a stalled transfer
        # would hold the download (and a CI run) that long, three times over.
        f"-Dmaven.wagon.rto={READ_TIMEOUT_MS}",
        "-Dmaven.wagon.http.retryHandler.count=3",
        f"{DEPENDENCY_PLUGIN}:copy",
        f"-Dartifact={layout.engine.group_id}:{layout.engine.name}:{layout.version}:zip",
        f"-DoutputDirectory={layout.dist_dir}",
    ]


def _maven_repo_dir(layout: NodeLayout) -> Path:
    engine = layout.engine
    group = Path(*engine.group_id.split("."))
    return Path.home() / ".m2" / "repository" / group / engine.name / layout.version


def _dir_bytes(path: Path) -> int:
    try:
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    except OSError:
        return 0


async def download(layout: NodeLayout, say: Say = say_to_stderr) -> None:
    """Fetch the distribution zip with Maven, unless the cache has it already.

    Raises:
        LocalElasticsearchError: no Maven, Maven failed, or no zip after ``DOWNLOAD_TIMEOUT`` seconds.
    """
    if layout.dist_zip.exists():
        return
    command = maven_command(layout)
    layout.dist_dir.mkdir(parents=True, exist_ok=True)
    say(f"downloading {layout.title} with Maven (about 100 MB, once)")
    repo_dir = _maven_repo_dir(layout)

    async def report_progress() -> None:
        # A sibling of the download in the same nursery: it only reads the size
        # of Maven's local repository folder, and is cancelled when Maven ends.
        started = trio.current_time()
        while True:
            await trio.sleep(3)
            mb = _dir_bytes(repo_dir) / 1e6
            say(f"  ... {trio.current_time() - started:.0f} s, {mb:.0f} MB so far")

    with (
        tempfile.TemporaryDirectory() as empty_dir,
        trio.move_on_after(DOWNLOAD_TIMEOUT) as deadline,
    ):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(report_progress)
            try:
                result = await trio.run_process(
                    command,
                    cwd=empty_dir,
                    stdin=subprocess.DEVNULL,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
            finally:
                nursery.cancel_scope.cancel()
    if deadline.cancelled_caught:
        raise LocalElasticsearchError(
            f"download of {layout.title} did not finish in {DOWNLOAD_TIMEOUT:.0f} s: "
            "try again, or point TRIO_BOOKS_ES_URLS at an Elasticsearch you already run"
        )
    if result.returncode != 0 or not layout.dist_zip.exists():
        output = (result.stdout + result.stderr).decode(errors="replace")
        errors = [line for line in output.splitlines() if "[ERROR]" in line and line.strip()]
        reason = errors[0].split("[ERROR]", 1)[1].strip() if errors else "no output"
        raise LocalElasticsearchError(f"download of {layout.title} failed: {reason[:300]}")
    say(f"downloaded {layout.dist_zip.name} ({layout.dist_zip.stat().st_size / 1e6:.0f} MB)")


def unpack(layout: NodeLayout) -> None:
    """Unpack the zip once, keeping file modes (``zipfile`` alone drops them)."""
    if layout.dist_home.exists():
        return
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=layout.dist_dir))
    try:
        with zipfile.ZipFile(layout.dist_zip) as archive:
            for info in archive.infolist():
                target = Path(archive.extract(info, staging))
                mode = (info.external_attr >> 16) & 0o7777
                if mode:
                    target.chmod(mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        (staging / layout.dist_home.name).rename(layout.dist_home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
