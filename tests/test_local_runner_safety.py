"""The local engine runner runs as root: what it signals, chowns, chmods, unpacks and deletes.

As root it starts the server as a dedicated user, who can write the node's
folder (its pid file included). Each test here is a way that user, a careless
setting or a tampered download could turn root's next step against the
machine, and shows the runner refusing or staying inside its own files.
Tests that need another user run only as root (as the suite does in CI).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_books.errors import LocalElasticsearchError
from trio_books.es import distribution, local
from trio_books.es.server_user import Owner, hand_over, server_owner

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_books", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


# ---------------------------------------------------------------- whose pid the pid file names


def stand_in_server(layout: local.NodeLayout, *, as_node: bool) -> subprocess.Popen[bytes]:
    """A process named by the node's pid file: the node's own (its user, its HOME) or a stranger."""
    layout.node_dir.mkdir(parents=True, exist_ok=True)
    home = str(layout.node_dir) if as_node else str(layout.node_dir.parent)
    owner = server_owner()  # as root, the server's own user
    process = subprocess.Popen(
        ["sleep", "60"],
        env={**os.environ, "HOME": home},
        user=owner.uid if owner else None,
        group=owner.gid if owner else None,
    )
    layout.pid_file.write_text(f"{process.pid}\n")
    return process


async def test_a_pid_file_naming_another_process_is_not_the_node(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, port=9399)
    stranger = stand_in_server(layout, as_node=False)
    try:
        assert local.read_pid(layout) is None
        assert await local.stop(layout, say=lambda _: None) is False
        assert stranger.poll() is None  # not signalled
        assert not layout.pid_file.exists()
    finally:
        stranger.kill()
        stranger.wait()


async def test_the_nodes_own_process_is_stopped(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, port=9399)
    node = stand_in_server(layout, as_node=True)
    try:
        assert local.read_pid(layout) == node.pid
        assert await local.stop(layout, say=lambda _: None) is True
        assert node.poll() == -15  # SIGTERM
    finally:
        node.kill()
        node.wait()


def test_a_killed_server_not_yet_reaped_is_not_running(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, port=9399)
    node = stand_in_server(layout, as_node=True)
    node.kill()
    # Not reaped: the process stays a zombie until wait(), and signals still reach it.
    deadline = time.monotonic() + 10
    while Path(f"/proc/{node.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(node.pid, 0)
    assert local.read_pid(layout) is None
    node.wait()


@as_root
def test_a_process_of_another_user_is_not_the_node_even_with_its_home(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, port=9399)
    layout.node_dir.mkdir(parents=True)
    # Root's own, with the node's HOME: not the server, whose user the pid file's writer is.
    impostor = subprocess.Popen(["sleep", "60"], env={**os.environ, "HOME": str(layout.node_dir)})
    layout.pid_file.write_text(f"{impostor.pid}\n")
    try:
        assert local.read_pid(layout) is None
    finally:
        impostor.kill()
        impostor.wait()


# ---------------------------------------------------------------- what is downloaded and unpacked


@pytest.mark.parametrize("version", ["../../etc", "8.19", "8.19.21-SNAPSHOT", "8.19.21\n", ""])
def test_a_version_that_is_not_three_numbers_is_refused(tmp_path: Path, version: str) -> None:
    if version:
        with pytest.raises(LocalElasticsearchError, match="three numbers"):
            local.NodeLayout(tmp_path, version=version)
    done = run_cli(
        "es", "start", "--port", "9399", "--version", version or "x", env=cache_env(tmp_path)
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--version must be three numbers" in done.stderr
    assert not (tmp_path / "cache" / "dist").exists()


def cache_env(tmp_path: Path) -> dict[str, str]:
    return {"TRIO_BOOKS_CACHE_DIR": str(tmp_path / "cache")}


def write_zip(path: Path, entries: dict[str, int], top: str) -> None:
    """A zip of files under *top*/, each with the given Unix mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, mode in entries.items():
            info = zipfile.ZipInfo(f"{top}/{name}")
            info.external_attr = (stat.S_IFREG | mode) << 16
            archive.writestr(info, "#!/bin/sh\n")


def test_a_pinned_version_whose_zip_differs_is_deleted_not_unpacked(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, version="8.19.21")
    assert distribution.pinned_sha512(layout) is not None
    write_zip(layout.dist_zip, {"bin/elasticsearch": 0o755}, layout.dist_home.name)
    with pytest.raises(LocalElasticsearchError, match="SHA-512 differs"):
        distribution.unpack(layout)
    assert not layout.dist_zip.exists()
    assert not layout.dist_home.exists()


def test_only_an_unpinned_version_leans_on_maven_checksums(tmp_path: Path) -> None:
    pinned = distribution.maven_command(local.NodeLayout(tmp_path, version="8.19.21"), tmp_path)
    unpinned = distribution.maven_command(local.NodeLayout(tmp_path, version="8.19.20"), tmp_path)
    assert "--strict-checksums" in unpinned
    assert "--strict-checksums" not in pinned


def test_maven_as_the_servers_user_gets_none_of_the_services_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIO_BOOKS_ES_PASSWORD", "s3cret-for-the-service")
    run = distribution.maven_run(local.NodeLayout(tmp_path), Owner(4321, 4321, "someone"), None)
    options = distribution._as_owner(run)
    assert options["env"]["HOME"] == str(tmp_path / "maven")
    assert "PATH" in options["env"]
    assert not any(name.startswith("TRIO_BOOKS_") for name in options["env"])


def test_maven_runs_as_the_servers_user_unless_root_has_its_own_settings(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, version="8.19.21")
    stranger = Owner(4321, 4321, "someone")
    run = distribution.maven_run(layout, stranger, None)
    assert run.owner == stranger
    assert run.home == tmp_path / "maven"
    assert f"-Dmaven.repo.local={tmp_path / 'maven' / 'repository'}" in run.command
    assert f"-DoutputDirectory={tmp_path / 'maven' / 'download'}" in run.command
    assert run.command[-2].startswith("-Dartifact=org.elasticsearch.distribution.")
    for as_root in (
        distribution.maven_run(layout, stranger, tmp_path / "settings.xml"),
        distribution.maven_run(layout, None, None),
    ):
        assert as_root.owner is None
        assert f"-DoutputDirectory={layout.dist_dir}" in as_root.command
        assert not any(part.startswith("-Dmaven.repo.local") for part in as_root.command)


async def test_maven_really_runs_as_the_servers_user_in_a_home_of_its_own() -> None:
    # A cache folder of its own (inside the session's, which the server's user can
    # reach), so every file Maven writes is new: owned by whoever Maven ran as.
    cache = Path(tempfile.mkdtemp(dir=local.default_cache_dir()))
    try:
        layout = local.NodeLayout(cache, version="8.19.21")
        owner = server_owner()
        artifact = distribution.DEPENDENCY_PLUGIN + ":pom"
        run = distribution.maven_run(layout, owner, None, artifact=artifact)
        if owner is None:  # not root: Maven is ours already, as it always was
            assert run.owner is None
            return
        distribution.prepare_home(run)
        with tempfile.TemporaryDirectory() as cwd:
            result = await distribution.run_maven(run, cwd)
        assert result.returncode == 0, result.stdout.decode()[-2000:]
        assert (run.output / "maven-dependency-plugin-3.8.1.pom").stat().st_uid == owner.uid
        assert run.home is not None
        assert run.home.stat().st_uid == owner.uid
        assert stat.S_IMODE(run.home.stat().st_mode) == 0o700
        plugin = run.repository / "org/apache/maven/plugins/maven-dependency-plugin/3.8.1"
        assert plugin.stat().st_uid == owner.uid  # its own repository, not root's
    finally:
        shutil.rmtree(cache)


def test_unpacking_drops_setuid_setgid_and_sticky_bits(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, version="0.0.2")  # not pinned: no digest to match
    modes = {"bin/suid": 0o4755, "bin/sgid": 0o2755, "bin/sticky": 0o1755, "lib/plain": 0o644}
    write_zip(layout.dist_zip, modes, layout.dist_home.name)
    distribution.unpack(layout)
    for name, mode in modes.items():
        found = stat.S_IMODE((layout.dist_home / name).stat().st_mode)
        assert found == mode & 0o777, f"{name}: {oct(found)}"


# ---------------------------------------------------------------- the cache folder and the node's


@pytest.fixture
def owner() -> Owner:
    found = server_owner()
    assert found is not None
    return found


@as_root
def test_as_root_a_cache_folder_others_can_write_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o1777)  # like /tmp
    done = run_cli("es", "start", "--port", "9399", env={**cache_env(tmp_path), "PATH": "/none"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().endswith(
        "is writable by other users: as root, the local engine needs a cache folder "
        "only root can write (set TRIO_BOOKS_CACHE_DIR to one)"
    )
    assert stat.S_IMODE(cache.stat().st_mode) == 0o1777
    assert list(cache.iterdir()) == []


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder the server's user can walk into (pytest's own are closed to others)."""
    with tempfile.TemporaryDirectory(prefix="trio-books-test-") as name:
        Path(name).chmod(0o755)
        yield Path(name)


@as_root
def test_preparing_a_node_adds_only_the_bits_the_server_needs(open_tmp: Path, owner: Owner) -> None:
    layout = local.NodeLayout(open_tmp / "cache")
    (layout.dist_home / "config").mkdir(parents=True)
    (layout.dist_home / "config" / "jvm.options").write_text("-Xss1m\n")
    layout.cache_dir.chmod(0o1700)  # root's alone, with a bit of its own to keep
    local.prepare_node(layout, owner)
    assert stat.S_IMODE(layout.cache_dir.stat().st_mode) == 0o1755
    assert layout.node_dir.stat().st_uid == owner.uid


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder of root's that no node owns, with a file in it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret").write_text("root's\n")
    return folder


@as_root
def test_handing_over_never_follows_a_symbolic_link(
    tmp_path: Path, owner: Owner, outside: Path
) -> None:
    node = tmp_path / "node"
    (node / "data").mkdir(parents=True)
    (node / "data" / "into-outside").symlink_to(outside)
    (node / "logs").symlink_to(outside / "secret")
    hand_over(node, owner)
    assert (node / "data").stat().st_uid == owner.uid
    assert (node / "data" / "into-outside").lstat().st_uid == owner.uid  # the link itself
    assert (node / "logs").lstat().st_uid == owner.uid
    assert outside.stat().st_uid == 0
    assert (outside / "secret").stat().st_uid == 0
    # Nor at the top: a node folder swapped for a link hands nothing over.
    swapped = tmp_path / "swapped"
    swapped.symlink_to(outside)
    hand_over(swapped, owner)
    assert outside.stat().st_uid == 0
    assert (outside / "secret").stat().st_uid == 0


# ---------------------------------------------------------------- wiping


@as_root
def test_wipe_reports_what_it_could_not_delete_and_exits_1(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path / "cache", port=9399)
    (layout.data_dir / "indices").mkdir(parents=True)
    stuck = layout.data_dir / "indices" / "stuck"
    stuck.write_text("")
    subprocess.run(["chattr", "+i", str(stuck)], check=True)  # not even root may delete it
    try:
        done = run_cli("es", "wipe", "--port", "9399", env=cache_env(tmp_path))
        assert done.returncode == 1, done.stderr
        assert f"could not delete all of {layout.node_dir}: " in done.stderr
        assert f"{stuck}: Operation not permitted" in done.stderr
        assert "wiped" not in done.stdout
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    done = run_cli("es", "wipe", "--port", "9399", env=cache_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert not layout.node_dir.exists()
