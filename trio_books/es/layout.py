"""Where a local node's distribution, data, logs and pid file live, for each engine.

The cache folder holds every downloaded distribution (``dist/<engine>-<version>``)
and one folder per node, named for its HTTP port (``nodes/<port>``): a node's
data, logs, configuration copy and pid file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from trio_books.errors import LocalElasticsearchError
from trio_books.es.engines import ELASTICSEARCH, Engine

DEFAULT_PORT = 9200
TRANSPORT_PORT_OFFSET = 100
VERSION = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}")


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
    # "" means the engine's default version.
    version: str = ""
    port: int = DEFAULT_PORT
    # The HTTP ports of every node of this node's cluster; () for a single node.
    cluster_ports: tuple[int, ...] = ()
    # TLS and users (es start --secure); see trio_books.es.security.
    secure: bool = False
    # Which engine's distribution runs there (es start --engine).
    engine: Engine = ELASTICSEARCH

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", self.engine.default_version)
        # The version names folders and a Maven coordinate: three numbers and nothing else.
        if not VERSION.fullmatch(self.version):
            raise LocalElasticsearchError(
                f"--version must be three numbers such as {self.engine.default_version}, "
                f"not {self.version[:40]!r}"
            )

    @property
    def transport_port(self) -> int:
        return self.port + TRANSPORT_PORT_OFFSET

    @property
    def dist_dir(self) -> Path:
        return self.cache_dir / "dist"

    @property
    def dist_zip(self) -> Path:
        return self.dist_dir / f"{self.engine.name}-{self.version}.zip"

    @property
    def dist_home(self) -> Path:
        return self.dist_dir / f"{self.engine.name}-{self.version}"

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

    @property
    def java_majors(self) -> tuple[int, ...]:
        return self.engine.java_majors(self.version)

    @property
    def title(self) -> str:
        """The engine and version, for messages: "OpenSearch 2.19.6"."""
        return f"{self.engine.title} {self.version}"

    def server_log(self) -> Path:
        return self.logs_dir / "trio-books.log"
