"""An engine's distribution: downloaded once with Maven, unpacked once.

It is the zip each engine publishes to Maven Central for test clusters (its
coordinates: :mod:`trio_books.es.engines`); ``mvn`` with a pinned
``maven-dependency-plugin`` copies it into the cache folder.

As root, Maven runs as the server's user, with a home and a local repository of
its own in the cache folder (``maven/``): a download tool and the plugins it
fetches get no root rights. Root then copies the zip out (never through a
link) and checks it. Only when root has its own ``~/.m2/settings.xml`` (mirrors,
proxies, credentials: root's alone to read) does Maven run as root, and says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from trio_books.errors import LocalElasticsearchError
from trio_books.es.server_user import (
    Owner,
    check_reachable,
    open_for_traversal,
    server_owner,
)

if TYPE_CHECKING:
    from trio_books.es.layout import NodeLayout

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# A transfer that sends nothing for this long is retried; the whole download
# (about 100 MB, usually well under a minute) gives up after DOWNLOAD_TIMEOUT.
READ_TIMEOUT_MS = 60_000
DOWNLOAD_TIMEOUT = 900.0

# The SHA-512 of each zip the project runs by default or in its compatibility
# run (nox -s compat), recorded from their downloads. The repository serves a
# SHA-1 beside most zips (Maven checks it) but none beside some, such as
# Elasticsearch 9.5.0's: a version pinned here is held to its digest before it
# is unpacked; any other must come with the repository's checksum
# (``--strict-checksums``), or Maven refuses it.
PINNED_SHA512: dict[tuple[str, str], str] = {
    ("elasticsearch", "8.19.21"): (
        "cf6b0a93860d329937ae7f913ec5073b0c726c77639764b93fc83a304aa1dd9d"
        "4defcfa2849948eea3b0b47c2065f994908603939fc2a4774c9c4d868c5ec1dd"
    ),
    ("elasticsearch", "9.5.0"): (
        "c06bd4ef7691da91052cada7bb255b2d7c48a1422820a8db0e3e3a1ed0dde4e8"
        "d380cdbadeb7029cc56167b9ad3a6d89f6b8edbc48d4b8685d1ab24a7ab17dd5"
    ),
    ("opensearch", "2.19.6"): (
        "8adbfaa13162b8d42b388ece6b39bfb7f1a349ab9c128d4eced78ba1dd43b5a1"
        "0850b43b8aac19fa5ab11f4d5c355ddf6f6617514d6112b0936a1903005d1d36"
    ),
}


def pinned_sha512(layout: NodeLayout) -> str | None:
    return PINNED_SHA512.get((layout.engine.name, layout.version))


Say = Callable[[str], None]


def say_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class MavenRun:
    """How Maven is run for one download: its command, as whom, and where the zip lands."""

    command: list[str]
    owner: Owner | None
    home: Path | None
    repository: Path
    output: Path


def maven_run(
    layout: NodeLayout,
    owner: Owner | None,
    root_settings: Path | None,
    artifact: str | None = None,
) -> MavenRun:
    """Maven as *owner* (the server's user, when we are root) unless root has *root_settings*.

    *artifact* (``group:name:version:type``) is the layout's zip unless given.
    """
    if owner is None or root_settings is not None:
        repository = Path.home() / ".m2" / "repository"
        command = maven_command(layout, layout.dist_dir, artifact)
        return MavenRun(command, None, None, repository, layout.dist_dir)
    home = layout.cache_dir / "maven"
    repository = home / "repository"
    output = home / "download"
    command = maven_command(layout, output, artifact)
    command.insert(-3, f"-Dmaven.repo.local={repository}")
    return MavenRun(command, owner, home, repository, output)


def maven_command(layout: NodeLayout, output: Path, artifact: str | None = None) -> list[str]:
    """The ``mvn`` call that copies the distribution zip (or *artifact*) into *output*."""
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
        *(() if pinned_sha512(layout) else ("--strict-checksums",)),
        f"{DEPENDENCY_PLUGIN}:copy",
        f"-Dartifact={artifact or _coordinates(layout)}",
        f"-DoutputDirectory={output}",
    ]


def _coordinates(layout: NodeLayout) -> str:
    return f"{layout.engine.group_id}:{layout.engine.name}:{layout.version}:zip"


def _maven_repo_dir(layout: NodeLayout, repository: Path) -> Path:
    engine = layout.engine
    return repository / Path(*engine.group_id.split(".")) / engine.name / layout.version


def prepare_home(run: MavenRun) -> None:
    """Make Maven's home for the server's user (root makes it, and hands it over)."""
    assert run.home is not None
    assert run.owner is not None
    open_for_traversal(run.home.parent)
    check_reachable(run.home.parent)
    for folder in (run.home, run.repository, run.output):
        if folder.is_symlink():
            raise LocalElasticsearchError(f"{folder} is a symbolic link: remove it")
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chown(folder, run.owner.uid, run.owner.gid, follow_symlinks=False)


def _take_zip(run: MavenRun, layout: NodeLayout) -> None:
    """Copy the zip Maven wrote as the server's user into root's dist folder.

    That user owns the folder it is in: the zip is opened without following a
    link and must be a regular file of that user's, then it is removed there.
    """
    assert run.owner is not None
    source = run.output / layout.dist_zip.name
    try:
        descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        raise LocalElasticsearchError(
            f"download of {layout.title} left no zip to take: {error.strerror}"
        ) from None
    with os.fdopen(descriptor, "rb") as zipped:
        found = os.fstat(zipped.fileno())
        if not stat.S_ISREG(found.st_mode) or found.st_uid != run.owner.uid:
            raise LocalElasticsearchError(f"{source} is not the zip Maven wrote: remove it")
        partial = layout.dist_zip.with_suffix(".part")
        with partial.open("wb") as copy:
            shutil.copyfileobj(zipped, copy, 1 << 20)
        partial.replace(layout.dist_zip)
    source.unlink()


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
    settings = Path.home() / ".m2" / "settings.xml"
    root_settings = settings if os.geteuid() == 0 and settings.exists() else None
    run = maven_run(layout, server_owner(), root_settings)
    layout.dist_dir.mkdir(parents=True, exist_ok=True)
    say(f"downloading {layout.title} with Maven (about 100 MB, once)")
    if root_settings is not None:
        say(f"  as root: {root_settings} is root's own (its mirrors and credentials)")
    if run.owner is not None:
        # Before the nursery below: a refusal here is one line, not an exception group.
        prepare_home(run)
    repo_dir = _maven_repo_dir(layout, run.repository)

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
                result = await run_maven(run, empty_dir)
            finally:
                nursery.cancel_scope.cancel()
    if deadline.cancelled_caught:
        raise LocalElasticsearchError(
            f"download of {layout.title} did not finish in {DOWNLOAD_TIMEOUT:.0f} s: "
            "try again, or point TRIO_BOOKS_ES_URLS at an Elasticsearch you already run"
        )
    if result.returncode == 0 and run.owner is not None:
        _take_zip(run, layout)
    if result.returncode != 0 or not layout.dist_zip.exists():
        output = (result.stdout + result.stderr).decode(errors="replace")
        errors = [line for line in output.splitlines() if "[ERROR]" in line and line.strip()]
        reason = errors[0].split("[ERROR]", 1)[1].strip() if errors else "no output"
        raise LocalElasticsearchError(f"download of {layout.title} failed: {reason[:300]}")
    say(f"downloaded {layout.dist_zip.name} ({layout.dist_zip.stat().st_size / 1e6:.0f} MB)")


async def run_maven(run: MavenRun, cwd: str) -> subprocess.CompletedProcess[bytes]:
    """Run *run*'s Maven to its end, as its owner (:func:`prepare_home` first), output captured."""
    return await trio.run_process(
        run.command,
        cwd=cwd if run.home is None else run.home,
        stdin=subprocess.DEVNULL,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        **_as_owner(run),
    )


def _as_owner(run: MavenRun) -> dict[str, Any]:
    """``run_process`` options that run Maven as the server's user, at home in its folder."""
    if run.owner is None or run.home is None:
        return {}
    return {
        "user": run.owner.uid,
        "group": run.owner.gid,
        "extra_groups": [],
        # The service's own settings (passwords, API keys among them) are no
        # business of a download tool running as another user.
        "env": {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRIO_BOOKS_")},
            "HOME": str(run.home),
        },
    }


def check_digest(layout: NodeLayout) -> None:
    """Refuse (and delete) a zip whose SHA-512 is not the one pinned for its version."""
    expected = pinned_sha512(layout)
    if expected is None:
        return
    digest = hashlib.sha512()
    with layout.dist_zip.open("rb") as zipped:
        while chunk := zipped.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        layout.dist_zip.unlink()
        raise LocalElasticsearchError(
            f"{layout.dist_zip.name} is not the {layout.title} distribution this project pins "
            "(its SHA-512 differs): it was deleted, and the next es start downloads it again"
        )


def unpack(layout: NodeLayout) -> None:
    """Check the zip's digest, then unpack it once, keeping file modes (``zipfile`` drops them).

    Set-user-ID, set-group-ID and sticky bits are dropped: the files are root's
    when we are root, and nothing in a distribution needs them.
    """
    if layout.dist_home.exists():
        return
    check_digest(layout)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=layout.dist_dir))
    try:
        with zipfile.ZipFile(layout.dist_zip) as archive:
            for info in archive.infolist():
                target = Path(archive.extract(info, staging))
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    target.chmod(mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        (staging / layout.dist_home.name).rename(layout.dist_home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
