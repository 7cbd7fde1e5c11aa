"""A real Elasticsearch (or OpenSearch) on this machine, provisioned by the project itself.

The distribution is the one each engine publishes to Maven Central for test
clusters (``org.elasticsearch.distribution.integ-test-zip:elasticsearch``, and
``org.opensearch.distribution.integ-test-zip:opensearch`` for ``--engine
opensearch``; see :mod:`trio_books.es.engines`), fetched once with ``mvn`` into
a cache folder, unpacked once, and started with a fitting Java bound to
127.0.0.1 with single-node discovery, a 512 MB heap and security off.

Several nodes form one cluster (:func:`start_cluster`): consecutive HTTP ports
from the first, each node's transport port 100 above its HTTP port, every node
master-eligible and seeded with the others, one data folder per node.

That distribution carries only the core server (no ``analysis-common``, no
painless, no reindex, no ``GET /`` route on 8.9+), so readiness is read from
``/_cluster/health`` and the book mapping uses only core features.

``secure=True`` layouts run with security on: TLS on HTTP, file-realm users
and a service token, provisioned by :mod:`trio_books.es.security`. The runner
reaches such a node over TLS only (verified against its own CA, as the admin
user); it never sends it a plaintext request.

Elasticsearch refuses to run as root: when we are root, the server runs as a
dedicated system user, created once.

The server outlives the command that starts it (``es start`` returns, the node
keeps serving), so it is started with the launcher's own ``-d``; everything that
waits on it (the download, the launcher, health polling) is awaited inside
Trio with a deadline.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import trio

from trio_books.errors import LocalElasticsearchError
from trio_books.es import security
from trio_books.es.distribution import Say, download, say_to_stderr, unpack
from trio_books.es.engines import ELASTICSEARCH, ENGINES, Engine, major_version
from trio_books.es.java import find_java_home
from trio_books.es.layout import DEFAULT_PORT as DEFAULT_PORT
from trio_books.es.layout import TRANSPORT_PORT_OFFSET
from trio_books.es.layout import NodeLayout as NodeLayout
from trio_books.es.layout import default_cache_dir as default_cache_dir
from trio_books.es.probing import PortState as PortState
from trio_books.es.probing import cluster_health as cluster_health
from trio_books.es.probing import looks_like_elasticsearch as looks_like_elasticsearch
from trio_books.es.probing import node_access as node_access
from trio_books.es.probing import probe as probe
from trio_books.es.probing import probe_node as probe_node
from trio_books.es.probing import server_info as server_info
from trio_books.es.server_user import (
    Owner,
    check_cache_folder,
    check_reachable,
    hand_over,
    open_for_traversal,
    server_owner,
    server_uid,
)

DEFAULT_VERSION = ELASTICSEARCH.default_version

HEAP = "512m"
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0


ENGINE_FILE = "engine.txt"


def node_jvm_options(text: str, layout: NodeLayout) -> str:
    """The distribution's ``jvm.options`` with its relative paths made the node's own.

    OpenSearch's launcher runs Java from the distribution's folder, where
    ``logs/gc.log`` and ``data`` would be the distribution's (not writable by
    the server's user, and shared by every node).
    """
    return (
        text.replace("=logs/", f"={layout.logs_dir}/")
        .replace(":logs/", f":{layout.logs_dir}/")
        .replace("HeapDumpPath=data", f"HeapDumpPath={layout.data_dir}")
    )


def check_node_folder(layout: NodeLayout) -> None:
    """Refuse a node folder whose data another engine or major version wrote.

    A folder from before engines were recorded (a configuration, no marker) is
    the default engine's: Elasticsearch 8.
    """
    marker = layout.node_dir / ENGINE_FILE
    if marker.exists():
        name, _, version = marker.read_text().strip().partition(" ")
    elif layout.config_dir.exists():
        name, version = ELASTICSEARCH.name, "8"
    else:
        return
    if name != layout.engine.name or major_version(version) != major_version(layout.version):
        title = ENGINES[name].title if name in ENGINES else name
        raise LocalElasticsearchError(
            f"the node folder of port {layout.port} holds the data of {title} {version}: "
            f"es wipe --port {layout.port} first, or use another port"
        )


def _claim_node_folder(layout: NodeLayout) -> None:
    check_node_folder(layout)
    (layout.node_dir / ENGINE_FILE).write_text(f"{layout.engine.name} {layout.version}\n")


def prepare_node(layout: NodeLayout, owner: Owner | None) -> None:
    """Create the node's folders and its own copy of the configuration."""
    for folder in (layout.data_dir, layout.logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    _claim_node_folder(layout)
    if not layout.config_dir.exists():
        shutil.copytree(layout.dist_home / "config", layout.config_dir)
        options = layout.config_dir / "jvm.options"
        options.write_text(node_jvm_options(options.read_text(), layout))
    if owner is not None:
        for folder in (layout.cache_dir, layout.dist_dir, layout.node_dir.parent):
            open_for_traversal(folder)
        check_reachable(layout.dist_home)
        hand_over(layout.node_dir, owner)


# ---------------------------------------------------------------- the node's process


def read_pid(layout: NodeLayout) -> int | None:
    """The pid in the node's pid file, if that process still runs and is this node's server.

    A pid file outlives a killed server, and its number may since belong to
    another process (the test run itself, say); and the server's user can write
    that file. Signalling whatever it names would stop or kill the wrong thing,
    as root. So the process must run as the server's user and carry
    ``HOME=<node folder>`` in its environment (:func:`server_environment`).
    """
    try:
        pid = int(layout.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not process_alive(pid) or _runs_node(pid, layout) is False:
        return None
    return pid


def _runs_node(pid: int, layout: NodeLayout) -> bool | None:
    """Whether process *pid* is *layout*'s server; None where that cannot be read.

    Unreadable means another user's process seen without root, or no ``/proc``.
    """
    proc = Path("/proc")
    if not (proc / "self").exists():
        return None
    try:
        if (proc / str(pid)).stat().st_uid != server_uid():
            return False
        environ = (proc / str(pid) / "environ").read_bytes()
    except PermissionError:
        return None
    except OSError:
        return False
    return f"HOME={layout.node_dir}".encode() in environ.split(b"\0")


def log_tail(layout: NodeLayout, lines: int = 20) -> str:
    for path in (layout.server_log(), layout.logs_dir / "console.log"):
        if path.exists():
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no server log was written)"


# ---------------------------------------------------------------- start and stop


def cluster_layouts(
    cache_dir: Path,
    *,
    nodes: int,
    port: int = DEFAULT_PORT,
    version: str | None = None,
    secure: bool = False,
    engine: Engine = ELASTICSEARCH,
) -> list[NodeLayout]:
    """The layouts of *nodes* local nodes on consecutive HTTP ports from *port*.

    *version* defaults to the engine's default version.
    """
    if nodes < 1:
        raise LocalElasticsearchError("a cluster needs at least one node")
    if secure:
        _check_secure_supported(engine)
    version = version or engine.default_version
    ports = tuple(range(port, port + nodes)) if nodes > 1 else ()
    return [
        NodeLayout(
            cache_dir, version=version, port=p, cluster_ports=ports, secure=secure, engine=engine
        )
        for p in (ports or (port,))
    ]


def _discovery(layout: NodeLayout) -> dict[str, str]:
    if len(layout.cluster_ports) < 2:
        return {"cluster.name": "trio-books", "discovery.type": "single-node"}
    seeds = [f"127.0.0.1:{p + TRANSPORT_PORT_OFFSET}" for p in layout.cluster_ports]
    return {
        # Named for its first port, so two local clusters never join each other.
        "cluster.name": f"trio-books-{layout.cluster_ports[0]}",
        "transport.port": str(layout.transport_port),
        "discovery.seed_hosts": ",".join(seeds),
        "cluster.initial_master_nodes": ",".join(f"trio-books-{p}" for p in layout.cluster_ports),
    }


def server_command(
    layout: NodeLayout, extra_settings: Mapping[str, str] | None = None
) -> list[str]:
    """The launcher's command line; *extra_settings* become more ``-E`` options."""
    settings = {
        **_discovery(layout),
        "node.name": f"trio-books-{layout.port}",
        "network.host": "127.0.0.1",
        "http.port": str(layout.port),
        **layout.engine.security_off(),
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "path.data": str(layout.data_dir),
        "path.logs": str(layout.logs_dir),
        **(security.server_settings(layout) if layout.secure else {}),
        **(extra_settings or {}),
    }
    return [
        str(layout.dist_home / "bin" / layout.engine.name),
        "-d",
        "-p",
        str(layout.pid_file),
        *(f"-E{key}={value}" for key, value in settings.items()),
    ]


def server_environment(layout: NodeLayout, java_home: Path) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if key in {"PATH", "LANG", "LC_ALL", "TZ"}
    }
    prefix = layout.engine.env_prefix
    env.update(
        {
            f"{prefix}_JAVA_HOME": str(java_home),
            f"{prefix}_PATH_CONF": str(layout.config_dir),
            f"{prefix}_JAVA_OPTS": f"-Xms{HEAP} -Xmx{HEAP}",
            "HOME": str(layout.node_dir),
        }
    )
    return env


def java_for(layout: NodeLayout) -> Path:
    """A JDK that runs the layout's engine and version."""
    return find_java_home(majors=layout.java_majors, needed_by=layout.title)


async def _wait_healthy(layout: NodeLayout, pid_required: bool) -> None:
    secure = node_access(layout)
    while True:
        if pid_required and read_pid(layout) is None and layout.pid_file.exists():
            raise LocalElasticsearchError(
                f"{layout.engine.title} on port {layout.port} exited while starting; "
                "last log lines:\n" + log_tail(layout)
            )
        try:
            health = await cluster_health(layout.url, secure=secure)
        except httpx.HTTPError:
            health = {}
        if health.get("status") in {"yellow", "green"}:
            return
        await trio.sleep(0.5)


async def start(
    layout: NodeLayout,
    *,
    say: Say = say_to_stderr,
    health_wait: float = START_TIMEOUT,
    extra_settings: Mapping[str, str] | None = None,
) -> str:
    """Make sure an Elasticsearch answers at ``layout.url``; return that URL.

    Downloads and unpacks the distribution on first use. Returns at once when an
    Elasticsearch already answers there. *extra_settings* (for example
    ``{"thread_pool.write.queue_size": "1"}``) are passed as ``-E`` options to a
    node this call starts. A secure layout is provisioned first (once; see
    :func:`trio_books.es.security.provision`), and its ``secure.json`` then says
    how to reach it.

    Raises:
        LocalElasticsearchError: Java or Maven missing, port taken by something
            else, download failed, or the server did not become healthy in time.
    """
    _check_mode(layout)
    state = await probe_node(layout)
    if state is PortState.ELASTICSEARCH:
        try:
            found = await server_info(layout.url, secure=node_access(layout))
        except (httpx.HTTPError, ValueError):
            found = None  # it answers health, but not who it is: take it as it is
        if found is not None and (found.name, found.version) != (
            layout.engine.name,
            layout.version,
        ):
            hint = (
                f"stop it first (es stop --port {layout.port})"
                if read_pid(layout) is not None
                else "it was not started by trio_books: choose another --port"
            )
            raise LocalElasticsearchError(
                f"port {layout.port} runs {found}, not {layout.title}: {hint}"
            )
        say(f"{layout.title} already answers at {layout.url}")
        return layout.url
    if state is PortState.OTHER:
        if layout.secure and read_pid(layout) is not None:
            why = (
                f"does not answer over TLS as {security.secure_file(layout)} says"
                if security.secure_file(layout).exists()
                else "runs without security"
            )
            raise LocalElasticsearchError(
                f"Elasticsearch on port {layout.port} {why}: "
                f"stop it first (es stop --port {layout.port})"
            )
        raise LocalElasticsearchError(
            f"port {layout.port} is taken by something that is not Elasticsearch"
        )
    # Everything that can refuse, before a download of 100 MB.
    check_cache_folder(layout.cache_dir)
    check_node_folder(layout)
    java_home = java_for(layout)
    await download(layout, say)
    await trio.to_thread.run_sync(unpack, layout)
    owner = server_owner()
    prepare_node(layout, owner)
    if (running := read_pid(layout)) is not None:
        # Another start of the same node is under way (its server is not healthy yet).
        raise LocalElasticsearchError(
            f"{layout.engine.title} on port {layout.port} is already starting (pid {running})"
        )
    if layout.secure:
        await security.provision(
            layout, env=server_environment(layout, java_home), owner=owner, say=say
        )
    else:
        security.forget(layout)
    layout.pid_file.unlink(missing_ok=True)
    say(f"starting {layout.title} on {layout.url} (Java: {java_home})")
    started = trio.current_time()
    launcher_log = layout.logs_dir / "launcher.log"
    with trio.move_on_after(health_wait) as scope:
        # The launcher (-d) returns once the node has started, leaving the
        # server running on its own; then we wait for the cluster to be usable.
        # Its output goes to a file, not a pipe: OpenSearch's daemon keeps the
        # launcher's stdout open, so a pipe would never reach end-of-file.
        with launcher_log.open("wb") as output_file:
            launched = await trio.run_process(
                server_command(layout, extra_settings),
                env=server_environment(layout, java_home),
                cwd=str(layout.node_dir),
                # Nothing to read: a launcher (or the daemon it leaves) never
                # waits on whatever stdin the caller happens to hold open.
                stdin=subprocess.DEVNULL,
                stdout=output_file,
                stderr=output_file,
                check=False,
                # A session of its own: the Ctrl-C that stops `nox -s serve` (sent to the
                # terminal's whole process group) leaves the node running, as it says.
                start_new_session=True,
                user=owner.uid if owner else None,
                group=owner.gid if owner else None,
                extra_groups=[] if owner else None,
            )
        if launched.returncode != 0:
            output = launcher_log.read_text(errors="replace").strip()
            raise LocalElasticsearchError(
                f"{layout.title} on port {layout.port} failed to start "
                f"(exit {launched.returncode}); "
                "last lines:\n" + ("\n".join(output.splitlines()[-20:]) or log_tail(layout))
            )
        await _wait_healthy(layout, pid_required=True)
    if scope.cancelled_caught:
        raise LocalElasticsearchError(
            f"{layout.title} on port {layout.port} was not healthy after {health_wait:.0f} s; "
            "last log lines:\n" + log_tail(layout)
        )
    say(f"{layout.title} is up at {layout.url} after {trio.current_time() - started:.1f} s")
    return layout.url


def _check_secure_supported(engine: Engine) -> None:
    if not engine.supports_secure:
        raise LocalElasticsearchError(
            f"es start --secure provisions Elasticsearch only, not {engine.title}: "
            "its security is a separate plugin that trio_books does not set up"
        )


def _check_mode(layout: NodeLayout) -> None:
    """Refuse a plain start (and so a plaintext probe) where our secure node runs."""
    if layout.secure:
        _check_secure_supported(layout.engine)
    if (
        not layout.secure
        and security.secure_file(layout).exists()
        and (pid := read_pid(layout)) is not None
    ):
        raise LocalElasticsearchError(
            f"Elasticsearch on port {layout.port} (pid {pid}) runs with security: "
            "use es start --secure, or es stop it first"
        )


async def start_cluster(
    layouts: list[NodeLayout], *, say: Say = say_to_stderr, health_wait: float = START_TIMEOUT
) -> list[str]:
    """Start every node of a local cluster together; return their URLs once all have joined.

    The nodes start concurrently: none is healthy until enough master-eligible
    nodes run to elect a master, so one at a time would wait on itself.
    """
    # Everything that can refuse, before the download and the concurrent starts.
    for layout in layouts:
        check_cache_folder(layout.cache_dir)
        check_node_folder(layout)
    java_home = java_for(layouts[0])
    await download(layouts[0], say)
    await trio.to_thread.run_sync(unpack, layouts[0])
    if layouts[0].secure:
        # Made once before the concurrent starts, which then only copy them.
        env = server_environment(layouts[0], java_home)
        await security.prepare_shared(layouts[0], env=env, say=say)
    try:
        async with trio.open_nursery() as nursery:
            for layout in layouts:
                nursery.start_soon(
                    functools.partial(start, layout, say=say, health_wait=health_wait)
                )
    except BaseExceptionGroup as group:
        # A node that could not start says why in one line, as a single start does.
        refused, _rest = group.split(LocalElasticsearchError)
        if refused is None:
            raise
        first = refused.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    secure = node_access(layouts[0])
    with trio.move_on_after(health_wait) as scope:
        while True:
            try:
                health = await cluster_health(layouts[0].url, secure=secure)
            except httpx.HTTPError:
                health = {}
            if health.get("number_of_nodes") == len(layouts):
                break
            await trio.sleep(0.5)
    if scope.cancelled_caught:
        raise LocalElasticsearchError(
            f"the {len(layouts)} local nodes did not form one cluster in {health_wait:.0f} s"
        )
    return [layout.url for layout in layouts]


async def stop(layout: NodeLayout, *, say: Say = say_to_stderr) -> bool:
    """Stop the node this project started on ``layout.port`` and wait for it to exit.

    Returns False when no such node was running.
    """
    pid = read_pid(layout)
    if pid is None:
        layout.pid_file.unlink(missing_ok=True)
        return False
    say(f"stopping the node on port {layout.port} (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    with trio.move_on_after(STOP_TIMEOUT):
        await _wait_exit(pid)
    if process_alive(pid):
        say(f"the node (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT:.0f} s; killing it")
        os.kill(pid, signal.SIGKILL)
        with trio.move_on_after(STOP_TIMEOUT):
            await _wait_exit(pid)
        if process_alive(pid):
            raise LocalElasticsearchError(
                f"the node on port {layout.port} (pid {pid}) still runs after SIGKILL"
            )
    layout.pid_file.unlink(missing_ok=True)
    return True


async def _wait_exit(pid: int) -> None:
    # The server is not our child (its launcher daemonised it), so there is no
    # exit event to wait on: poll, under the caller's deadline.
    while process_alive(pid):  # noqa: ASYNC110
        await trio.sleep(0.1)


def process_alive(pid: int) -> bool:
    """Whether *pid* runs; a zombie (killed, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return Path("/proc/self").exists() is False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def wipe(layout: NodeLayout) -> list[str]:
    """Delete the node's data and logs; refuses while it runs.

    Returns what could not be deleted (path and reason), empty when all went.
    """
    if read_pid(layout) is not None:
        raise LocalElasticsearchError(
            f"the node on port {layout.port} is running: stop it first (es stop)"
        )
    left: list[str] = []

    def note(_function: object, path: str, error: BaseException) -> None:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        left.append(f"{path}: {reason}")

    if not (layout.node_dir.exists() or layout.node_dir.is_symlink()):
        return left
    if sys.version_info >= (3, 12):
        shutil.rmtree(layout.node_dir, onexc=note)
    else:
        shutil.rmtree(layout.node_dir, onerror=lambda f, path, info: note(f, path, info[1]))
    return left


async def serve_local_elasticsearch(
    layout: NodeLayout,
    *,
    say: Say = say_to_stderr,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a local node for as long as this task lives; report its URL once healthy.

    Start it with ``url = await nursery.start(serve_local_elasticsearch, layout)``.
    A node that was already running is left running on exit; one we started is
    stopped, even when the surrounding nursery is being cancelled.
    """
    already = await probe_node(layout) is PortState.ELASTICSEARCH
    url = await start(layout, say=say)
    try:
        task_status.started(url)
        await trio.sleep_forever()
    finally:
        if not already:
            with trio.CancelScope(shield=True):
                await stop(layout, say=say)
