"""A real Elasticsearch on this machine, provisioned by the project itself.

The distribution is the one Elastic publishes to Maven Central for test
clusters (``org.elasticsearch.distribution.integ-test-zip:elasticsearch``),
fetched once with ``mvn`` into a cache folder, unpacked once, and started bound
to 127.0.0.1 with single-node discovery, a 512 MB heap and security off.

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
import pwd
import shutil
import signal
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from trio_books.errors import LocalElasticsearchError
from trio_books.es import security
from trio_books.es.distribution import ARTIFACT_ID, Say, download, say_to_stderr, unpack
from trio_books.es.java import find_java_home
from trio_books.es.probing import PortState as PortState
from trio_books.es.probing import cluster_health as cluster_health
from trio_books.es.probing import looks_like_elasticsearch as looks_like_elasticsearch
from trio_books.es.probing import node_access as node_access
from trio_books.es.probing import probe as probe
from trio_books.es.probing import probe_node as probe_node
from trio_books.es.probing import server_version as server_version

DEFAULT_VERSION = "8.19.21"
DEFAULT_PORT = 9200
TRANSPORT_PORT_OFFSET = 100
ES_USER = "trio-books-es"
HEAP = "512m"
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0


def default_cache_dir() -> Path:
    """``TRIO_BOOKS_CACHE_DIR``, else the user's cache directory.

    For root that is ``/var/cache/trio_books``: root's home is closed to other
    users, and the server runs as its own user.
    """
    if configured := os.environ.get("TRIO_BOOKS_CACHE_DIR"):
        return Path(configured).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/cache/trio_books")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trio_books"


@dataclass(frozen=True)
class NodeLayout:
    """Where one local node's distribution, data, logs and pid file live."""

    cache_dir: Path
    version: str = DEFAULT_VERSION
    port: int = DEFAULT_PORT
    # The HTTP ports of every node of this node's cluster; () for a single node.
    cluster_ports: tuple[int, ...] = ()
    # TLS and users (es start --secure); see trio_books.es.security.
    secure: bool = False

    @property
    def transport_port(self) -> int:
        return self.port + TRANSPORT_PORT_OFFSET

    @property
    def dist_dir(self) -> Path:
        return self.cache_dir / "dist"

    @property
    def dist_zip(self) -> Path:
        return self.dist_dir / f"{ARTIFACT_ID}-{self.version}.zip"

    @property
    def dist_home(self) -> Path:
        return self.dist_dir / f"{ARTIFACT_ID}-{self.version}"

    @property
    def node_dir(self) -> Path:
        return self.cache_dir / "nodes" / str(self.port)

    @property
    def data_dir(self) -> Path:
        return self.node_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.node_dir / "logs"

    @property
    def config_dir(self) -> Path:
        return self.node_dir / "config"

    @property
    def pid_file(self) -> Path:
        return self.node_dir / "elasticsearch.pid"

    @property
    def url(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def server_log(self) -> Path:
        return self.logs_dir / "trio-books.log"


# ---------------------------------------------------------------- the server's user


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int
    name: str


def server_owner() -> Owner | None:
    """The user the server runs as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(ES_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        done = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                ES_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise LocalElasticsearchError(
                f"cannot create the system user {ES_USER} to run Elasticsearch: {done.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(ES_USER)
    return Owner(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _check_reachable(path: Path) -> None:
    """The server's user must be able to walk down to *path*."""
    for parent in [*reversed(path.parents), path]:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            raise LocalElasticsearchError(
                f"{parent} is closed to other users, so Elasticsearch (user {ES_USER}) cannot "
                "reach its files: set TRIO_BOOKS_CACHE_DIR to a folder outside it"
            )


def _chown_tree(root: Path, owner: Owner) -> None:
    for folder, dirs, files in os.walk(root):
        os.chown(folder, owner.uid, owner.gid)
        for name in dirs + files:
            if folder == str(root) and name == security.SECURE_FILE:
                continue  # the passwords stay the invoking user's alone
            os.chown(os.path.join(folder, name), owner.uid, owner.gid, follow_symlinks=False)


def prepare_node(layout: NodeLayout, owner: Owner | None) -> None:
    """Create the node's folders and its own copy of the configuration."""
    for folder in (layout.data_dir, layout.logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if not layout.config_dir.exists():
        shutil.copytree(layout.dist_home / "config", layout.config_dir)
    if owner is not None:
        for folder in (layout.cache_dir, layout.dist_dir, layout.node_dir.parent):
            folder.chmod(0o755)
        _check_reachable(layout.dist_home)
        _chown_tree(layout.node_dir, owner)


# ---------------------------------------------------------------- the node's process


def read_pid(layout: NodeLayout) -> int | None:
    """The pid in the node's pid file, if that process still runs."""
    try:
        pid = int(layout.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


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
    version: str = DEFAULT_VERSION,
    secure: bool = False,
) -> list[NodeLayout]:
    """The layouts of *nodes* local nodes on consecutive HTTP ports from *port*."""
    if nodes < 1:
        raise LocalElasticsearchError("a cluster needs at least one node")
    if nodes == 1:
        return [NodeLayout(cache_dir, version=version, port=port, secure=secure)]
    ports = tuple(range(port, port + nodes))
    return [
        NodeLayout(cache_dir, version=version, port=p, cluster_ports=ports, secure=secure)
        for p in ports
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
        "xpack.security.enabled": "false",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "path.data": str(layout.data_dir),
        "path.logs": str(layout.logs_dir),
        **(security.server_settings(layout) if layout.secure else {}),
        **(extra_settings or {}),
    }
    return [
        str(layout.dist_home / "bin" / "elasticsearch"),
        "-d",
        "-p",
        str(layout.pid_file),
        *(f"-E{key}={value}" for key, value in settings.items()),
    ]


def server_environment(layout: NodeLayout, java_home: Path) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if key in {"PATH", "LANG", "LC_ALL", "TZ"}
    }
    env.update(
        ES_JAVA_HOME=str(java_home),
        ES_PATH_CONF=str(layout.config_dir),
        ES_JAVA_OPTS=f"-Xms{HEAP} -Xmx{HEAP}",
        HOME=str(layout.node_dir),
    )
    return env


async def _wait_healthy(layout: NodeLayout, pid_required: bool) -> None:
    secure = node_access(layout)
    while True:
        if pid_required and read_pid(layout) is None and layout.pid_file.exists():
            raise LocalElasticsearchError(
                f"Elasticsearch on port {layout.port} exited while starting; last log lines:\n"
                + log_tail(layout)
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
        say(f"Elasticsearch already answers at {layout.url}")
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
    java_home = find_java_home()
    await download(layout, say)
    await trio.to_thread.run_sync(unpack, layout)
    owner = server_owner()
    prepare_node(layout, owner)
    if (running := read_pid(layout)) is not None:
        # Another start of the same node is under way (its server is not healthy yet).
        raise LocalElasticsearchError(
            f"Elasticsearch on port {layout.port} is already starting (pid {running})"
        )
    if layout.secure:
        await security.provision(
            layout, env=server_environment(layout, java_home), owner=owner, say=say
        )
    else:
        security.forget(layout)
    layout.pid_file.unlink(missing_ok=True)
    say(f"starting Elasticsearch {layout.version} on {layout.url} (Java: {java_home})")
    started = trio.current_time()
    with trio.move_on_after(health_wait) as scope:
        # The launcher (-d) returns once the node has started, leaving the
        # server running on its own; then we wait for the cluster to be usable.
        launched = await trio.run_process(
            server_command(layout, extra_settings),
            env=server_environment(layout, java_home),
            cwd=str(layout.node_dir),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            user=owner.uid if owner else None,
            group=owner.gid if owner else None,
            extra_groups=[] if owner else None,
        )
        if launched.returncode != 0:
            output = (launched.stdout + launched.stderr).decode(errors="replace").strip()
            raise LocalElasticsearchError(
                f"Elasticsearch on port {layout.port} failed to start (exit {launched.returncode}); "
                "last lines:\n" + ("\n".join(output.splitlines()[-20:]) or log_tail(layout))
            )
        await _wait_healthy(layout, pid_required=True)
    if scope.cancelled_caught:
        raise LocalElasticsearchError(
            f"Elasticsearch on port {layout.port} was not healthy after {health_wait:.0f} s; "
            "last log lines:\n" + log_tail(layout)
        )
    say(f"Elasticsearch is up at {layout.url} after {trio.current_time() - started:.1f} s")
    return layout.url


def _check_mode(layout: NodeLayout) -> None:
    """Refuse a plain start (and so a plaintext probe) where our secure node runs."""
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
    await download(layouts[0], say)
    await trio.to_thread.run_sync(unpack, layouts[0])
    if layouts[0].secure:
        # Made once before the concurrent starts, which then only copy them.
        env = server_environment(layouts[0], find_java_home())
        await security.prepare_shared(layouts[0], env=env, say=say)
    async with trio.open_nursery() as nursery:
        for layout in layouts:
            nursery.start_soon(functools.partial(start, layout, say=say, health_wait=health_wait))
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
    say(f"stopping Elasticsearch on port {layout.port} (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    with trio.move_on_after(STOP_TIMEOUT):
        await _wait_exit(pid)
    if _alive(pid):
        say(f"Elasticsearch (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT:.0f} s; killing it")
        os.kill(pid, signal.SIGKILL)
        await _wait_exit(pid)
    layout.pid_file.unlink(missing_ok=True)
    return True


async def _wait_exit(pid: int) -> None:
    # The server is not our child (its launcher daemonised it), so there is no
    # exit event to wait on: poll, under the caller's deadline.
    while _alive(pid):  # noqa: ASYNC110
        await trio.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wipe(layout: NodeLayout) -> None:
    """Delete the node's data and logs; refuses while it runs."""
    if read_pid(layout) is not None:
        raise LocalElasticsearchError(
            f"Elasticsearch on port {layout.port} is running: stop it first (es stop)"
        )
    shutil.rmtree(layout.node_dir, ignore_errors=True)


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
