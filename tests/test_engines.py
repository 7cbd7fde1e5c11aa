"""The engines the runner provisions and the service recognises: plain data, and a peer."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
import trio
from test_local_elasticsearch import fake_jdk, run_cli

from trio_books.api.routes import SERVICE_KEY
from trio_books.api.service import SearchService
from trio_books.errors import LocalElasticsearchError
from trio_books.es import java, local
from trio_books.es.engines import ELASTICSEARCH, OPENSEARCH, EngineInfo, identify, major_version
from trio_books.settings import Settings
from trio_books.trio.app import create_app

# Answers as each engine gives them (trimmed to what identify reads).
OPENSEARCH_ROOT = {
    "name": "node-1",
    "version": {"distribution": "opensearch", "number": "2.19.6", "build_type": "zip"},
    "tagline": "The OpenSearch Project: https://opensearch.org/",
}
ELASTICSEARCH_ROOT = {
    "name": "node-1",
    "version": {"number": "9.5.0", "build_flavor": "default"},
    "tagline": "You Know, for Search",
}


def nodes(*versions: str) -> dict[str, object]:
    return {"nodes": {f"id{i}": {"version": v} for i, v in enumerate(versions)}}


def test_opensearch_is_told_by_its_distribution() -> None:
    assert identify(OPENSEARCH_ROOT, nodes("2.19.6")) == EngineInfo("opensearch", "2.19.6")


def test_elasticsearch_with_and_without_a_root_route() -> None:
    assert identify(ELASTICSEARCH_ROOT, nodes("9.5.0")) == EngineInfo("elasticsearch", "9.5.0")
    # The test distribution of 8.9 and later answers GET / with 405: _nodes alone.
    assert identify(None, nodes("8.19.21")) == EngineInfo("elasticsearch", "8.19.21")
    # A cluster in the middle of an upgrade: the oldest node sets what it accepts.
    assert identify(None, nodes("9.5.0", "8.19.21")) == EngineInfo("elasticsearch", "8.19.21")


def test_answers_without_a_version_name_no_engine() -> None:
    assert identify(None, {}) is None
    assert identify({"version": {}}, {"nodes": {"x": {"name": "n"}}}) is None
    assert identify("not json", None) is None


def test_engine_info_reads_as_the_engine_and_version() -> None:
    assert str(EngineInfo("opensearch", "2.19.6")) == "OpenSearch 2.19.6"
    assert major_version("9.5.0") == 9
    assert major_version("") == 0


@pytest.mark.parametrize(
    ("engine", "version", "first", "never"),
    [
        (ELASTICSEARCH, "8.19.21", 21, ()),
        (ELASTICSEARCH, "9.5.0", 21, (17, 18, 19, 20)),
        (OPENSEARCH, "2.19.6", 21, (22, 23, 24, 25)),
        (OPENSEARCH, "3.3.0", 21, (17, 18, 19, 20)),
    ],
)
def test_java_fits_the_engine_and_version(
    engine: object, version: str, first: int, never: tuple[int, ...]
) -> None:
    assert isinstance(engine, type(ELASTICSEARCH))
    majors = engine.java_majors(version)
    assert majors[0] == first
    assert not set(majors) & set(never)


def test_the_runner_picks_a_jdk_for_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIO_BOOKS_ES_JAVA_HOME", raising=False)
    # This machine's pair: the default Java 17, and a Temurin 25 beside it.
    jdks = [fake_jdk(tmp_path / "j17", "17.0.15"), fake_jdk(tmp_path / "j25", "25.0.1")]
    es9 = local.NodeLayout(tmp_path, version="9.5.0")
    os2 = local.NodeLayout(tmp_path, version="2.19.6", engine=OPENSEARCH)
    assert java.find_java_home(jdks, majors=es9.java_majors) == (tmp_path / "j25").resolve()
    assert java.find_java_home(jdks, majors=os2.java_majors) == (tmp_path / "j17").resolve()
    with pytest.raises(
        LocalElasticsearchError,
        match=r"no Java found for Elasticsearch 9\.5\.0: install a JDK 21-25",
    ):
        java.find_java_home(jdks[:1], majors=es9.java_majors, needed_by=es9.title)
    monkeypatch.setenv("TRIO_BOOKS_ES_JAVA_HOME", str(jdks[0]))
    with pytest.raises(LocalElasticsearchError, match=r"is Java 17; Elasticsearch 9\.5\.0 needs"):
        java.find_java_home(majors=es9.java_majors, needed_by=es9.title)


def test_opensearch_runs_its_own_launcher_without_security_settings(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, version="2.19.6", port=9333, engine=OPENSEARCH)
    command = local.server_command(layout)
    assert command[0] == str(tmp_path / "dist" / "opensearch-2.19.6" / "bin" / "opensearch")
    assert not [arg for arg in command if "xpack" in arg]
    assert "-Ehttp.port=9333" in command
    env = local.server_environment(layout, Path("/opt/jdk"))
    assert env["OPENSEARCH_JAVA_HOME"] == "/opt/jdk"
    assert env["OPENSEARCH_PATH_CONF"] == str(layout.config_dir)
    assert not [key for key in env if key.startswith("ES_")]
    assert layout.dist_zip.name == "opensearch-2.19.6.zip"


def test_jvm_options_write_into_the_nodes_own_folders(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, port=9333, engine=OPENSEARCH, version="2.19.6")
    options = (
        "-XX:HeapDumpPath=data\n-XX:ErrorFile=logs/hs_err_pid%p.log\n"
        "9-:-Xlog:gc*,gc+age=trace,safepoint:file=logs/gc.log:utctime,pid,tags\n"
    )
    rewritten = local.node_jvm_options(options, layout)
    assert f"-XX:HeapDumpPath={layout.data_dir}\n" in rewritten
    assert f"-XX:ErrorFile={layout.logs_dir}/hs_err_pid%p.log" in rewritten
    assert f"file={layout.logs_dir}/gc.log:" in rewritten


def test_a_node_folder_keeps_to_its_engine(tmp_path: Path) -> None:
    opensearch = local.NodeLayout(tmp_path, port=9333, engine=OPENSEARCH, version="2.19.6")
    (opensearch.dist_home / "config").mkdir(parents=True)
    (opensearch.dist_home / "config" / "jvm.options").write_text("-Xss1m\n")
    local.prepare_node(opensearch, None)
    local.prepare_node(opensearch, None)  # the same engine again: fine
    elasticsearch = local.NodeLayout(tmp_path, port=9333, version="9.5.0")
    with pytest.raises(LocalElasticsearchError, match=r"holds the data of OpenSearch 2\.19\.6"):
        local.prepare_node(elasticsearch, None)
    local.wipe(opensearch)
    (elasticsearch.dist_home / "config").mkdir(parents=True)
    (elasticsearch.dist_home / "config" / "jvm.options").write_text("-Xss1m\n")
    local.prepare_node(elasticsearch, None)


def test_a_folder_from_before_engines_were_recorded_is_elasticsearch_8s(tmp_path: Path) -> None:
    old = local.NodeLayout(tmp_path, port=9333)
    old.config_dir.mkdir(parents=True)  # config, data and logs; no engine.txt
    local.check_node_folder(old)
    with pytest.raises(LocalElasticsearchError, match="holds the data of Elasticsearch 8"):
        local.check_node_folder(local.NodeLayout(tmp_path, port=9333, engine=OPENSEARCH))
    with pytest.raises(LocalElasticsearchError, match="holds the data of Elasticsearch 8"):
        local.check_node_folder(local.NodeLayout(tmp_path, port=9333, version="9.5.0"))


def test_cli_refuses_another_engines_folder_in_one_line_before_downloading(
    tmp_path: Path,
) -> None:
    old = local.NodeLayout(tmp_path, port=9393)
    old.config_dir.mkdir(parents=True)
    for nodes in ("1", "2"):
        done = run_cli(
            "es",
            "start",
            "--engine",
            "opensearch",
            "--nodes",
            nodes,
            "--port",
            "9393",
            env={"TRIO_BOOKS_CACHE_DIR": str(tmp_path), "PATH": "/nonexistent"},
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().endswith(
            "the node folder of port 9393 holds the data of Elasticsearch 8: "
            "es wipe --port 9393 first, or use another port"
        )
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "dist").exists()


def test_secure_opensearch_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(LocalElasticsearchError, match="Elasticsearch only, not OpenSearch"):
        local.cluster_layouts(tmp_path, nodes=1, secure=True, engine=OPENSEARCH)
    layouts = local.cluster_layouts(tmp_path, nodes=2, port=9333, engine=OPENSEARCH)
    assert [layout.version for layout in layouts] == ["2.19.6", "2.19.6"]
    assert [layout.cluster_ports for layout in layouts] == [(9333, 9334)] * 2


# ---------------------------------------------------------------- asking a peer that is no engine


async def html_peer(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A fault-injecting peer: every request gets a 200 HTML page (a proxy's login page)."""

    async def answer(stream: trio.SocketStream) -> None:
        page = b"<html>sign in</html>"
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while await stream.receive_some(65536):
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(page), page)
                )

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(answer, listeners)


async def test_an_engine_that_cannot_be_told_leaves_the_service_running(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_books.service")
    port = await nursery.start(html_peer)
    app = create_app(Settings(es_urls=[f"http://127.0.0.1:{port}"], index="books"))
    async with app.test_app():  # starts: the start-up's question did not stop it
        service: SearchService = app.extensions[SERVICE_KEY]
        assert service.engine is None
        assert await service.identify_engine() is None
    said = [r for r in caplog.records if "could not tell which engine" in r.getMessage()]
    # Once as a warning at start-up; the question asked again is quiet.
    assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG]
