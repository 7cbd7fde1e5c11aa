"""The local Elasticsearch the project provisions: its pieces, and its CLI's errors."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from trio_books.errors import LocalElasticsearchError
from trio_books.es import distribution, java, local


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_books", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def fake_jdk(root: Path, version: str) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "java").write_text("#!/bin/sh\n")
    (root / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return root


def test_java_major_reads_the_release_file(tmp_path: Path) -> None:
    assert java.java_major(fake_jdk(tmp_path / "jdk", "21.0.2")) == 21
    assert java.java_major(tmp_path / "nothing-here") is None


def test_java_choice_prefers_a_supported_lts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIO_BOOKS_ES_JAVA_HOME", raising=False)
    jdks = [
        fake_jdk(tmp_path / "j11", "11.0.1"),
        fake_jdk(tmp_path / "j25", "25.0.3"),
        fake_jdk(tmp_path / "j17", "17.0.15"),
    ]
    assert java.find_java_home(jdks) == (tmp_path / "j17").resolve()
    assert java.find_java_home(jdks[:2]) == (tmp_path / "j25").resolve()


def test_no_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIO_BOOKS_ES_JAVA_HOME", raising=False)
    with pytest.raises(LocalElasticsearchError, match="no Java found"):
        java.find_java_home([fake_jdk(tmp_path / "j11", "11.0.1")])


def test_unpack_keeps_executable_bits(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, version="0.0.0")
    layout.dist_dir.mkdir(parents=True)
    with zipfile.ZipFile(layout.dist_zip, "w") as archive:
        info = zipfile.ZipInfo("elasticsearch-0.0.0/bin/elasticsearch")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        archive.writestr(info, "#!/bin/sh\n")
        archive.writestr("elasticsearch-0.0.0/config/jvm.options", "-Xss1m\n")
    distribution.unpack(layout)
    launcher = layout.dist_home / "bin" / "elasticsearch"
    assert launcher.stat().st_mode & 0o111 == 0o111
    assert (layout.dist_home / "config" / "jvm.options").read_text() == "-Xss1m\n"
    assert not [p for p in layout.dist_dir.iterdir() if p.name.startswith(".unpack-")]


def test_server_command_binds_loopback_single_node(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, port=9333)
    command = local.server_command(layout)
    for setting in (
        "-Ediscovery.type=single-node",
        "-Enetwork.host=127.0.0.1",
        "-Ehttp.port=9333",
        "-Expack.security.enabled=false",
        "-Ecluster.routing.allocation.disk.threshold_enabled=false",
        f"-Epath.data={layout.data_dir}",
    ):
        assert setting in command
    env = local.server_environment(layout, Path("/opt/jdk"))
    assert env["ES_JAVA_OPTS"] == "-Xms512m -Xmx512m"
    assert env["ES_JAVA_HOME"] == "/opt/jdk"


def test_cli_missing_java_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run_cli(
        "es",
        "start",
        "--port",
        "9399",
        env={"TRIO_BOOKS_ES_JAVA_HOME": str(tmp_path), "TRIO_BOOKS_CACHE_DIR": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "is not a JDK" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_cli_missing_maven_exits_2(tmp_path: Path) -> None:
    java_home = java.find_java_home()
    done = run_cli(
        "es",
        "start",
        "--port",
        "9399",
        env={
            "TRIO_BOOKS_ES_JAVA_HOME": str(java_home),
            "TRIO_BOOKS_CACHE_DIR": str(tmp_path / "cache"),
            "PATH": str(tmp_path),  # no mvn here
        },
    )
    assert done.returncode == 2
    assert "Maven (mvn) is needed" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A folder the server's user can reach (Maven runs as that user when we are root)."""
    folder = Path(tempfile.mkdtemp(dir=local.default_cache_dir()))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def start_a_version_that_does_not_exist(cache: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "es",
        "start",
        "--port",
        "9399",
        "--version",
        "0.0.1",
        env={"TRIO_BOOKS_CACHE_DIR": str(cache)},
        timeout=300,
    )


def test_cli_failed_download_exits_2(reachable: Path) -> None:
    done = start_a_version_that_does_not_exist(reachable / "cache")
    assert done.returncode == 2
    assert "download of Elasticsearch 0.0.1 failed" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (reachable / "cache" / "dist" / "elasticsearch-0.0.1").exists()


def test_an_unreachable_cache_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    # pytest's own folder is closed to other users: as root, Maven (run as the
    # server's user) could not write there, and the command says so before it starts.
    done = start_a_version_that_does_not_exist(tmp_path / "cache")
    if os.geteuid() != 0:  # Maven runs as ourselves: no other user needs to reach it
        assert "download of Elasticsearch 0.0.1 failed" in done.stderr
        return
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert "is closed to other users" in line
    assert "Traceback" not in done.stderr


async def test_a_stalled_download_gives_up_at_its_deadline(
    reachable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for Maven whose transfer never ends; it may run as the server's user.
    bin_dir = reachable / "bin"
    bin_dir.mkdir(mode=0o777)
    bin_dir.chmod(0o777)  # its pid file is written by whoever runs it
    (bin_dir / "mvn").write_text('#!/bin/sh\necho $$ > "$0.pid"\nexec sleep 600\n')
    (bin_dir / "mvn").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(distribution, "DOWNLOAD_TIMEOUT", 1.0)
    layout = local.NodeLayout(reachable / "cache", port=9399)
    started = trio.current_time()
    with pytest.raises(LocalElasticsearchError, match="did not finish in 1 s"):
        await distribution.download(layout, say=lambda _: None)
    assert trio.current_time() - started < 10
    stalled = int((bin_dir / "mvn.pid").read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left behind
        os.kill(stalled, 0)


async def serve_not_elasticsearch(
    *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """A tiny HTTP server that is not Elasticsearch: it answers every request with a page."""

    async def answer(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            body = b"<html>hello</html>"
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, answer, listeners)
        task_status.started(port)


async def test_cli_port_taken_by_something_else_exits_2(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    port = await nursery.start(serve_not_elasticsearch)
    assert await local.probe(f"http://127.0.0.1:{port}") is local.PortState.OTHER
    done = await trio.run_process(
        [sys.executable, "-m", "trio_books", "es", "start", "--port", str(port)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, "TRIO_BOOKS_CACHE_DIR": str(tmp_path)},
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2
    assert f"port {port} is taken by something that is not Elasticsearch" in stderr
    assert "Traceback" not in stderr


async def test_probe_tells_free_from_elasticsearch(es_url: str) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    assert await local.probe(f"http://127.0.0.1:{free_port}") is local.PortState.FREE
    assert await local.probe(es_url) is local.PortState.ELASTICSEARCH


def test_cli_start_is_a_no_op_when_elasticsearch_answers(es_url: str) -> None:
    port = httpx.URL(es_url).port
    assert port is not None
    done = run_cli("es", "start", "--port", str(port))
    assert done.returncode == 0, done.stderr
    assert "already answers" in done.stderr
    assert done.stdout.strip() == es_url


def test_cli_status_reports_version_and_health(es_url: str) -> None:
    port = httpx.URL(es_url).port
    assert port is not None
    done = run_cli("es", "status", "--port", str(port))
    assert done.returncode == 0, done.stderr
    assert "version: 8.19." in done.stdout
    assert any(f"health: {state}" in done.stdout for state in ("green", "yellow"))
