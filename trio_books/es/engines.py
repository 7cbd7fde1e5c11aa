"""The search engines trio_books runs on: Elasticsearch 8 and 9, and OpenSearch 2.

Two halves, both plain data:

* :class:`Engine`: how the local runner provisions each engine's test
  distribution from Maven Central (its Maven coordinates, its launcher, the
  environment variables it reads, the Java versions it runs on).
* :class:`EngineInfo` and :func:`identify`: which engine and version a running
  node is, read from its answers. The service asks once at start-up and shows
  the answer on ``/readyz``. The API the service uses (``_search`` with
  ``track_total_hits``, nested terms aggregations, the term suggester,
  ``_bulk``, ``_aliases``, ``_cluster/health``) is the same on every engine
  listed here, so nothing else needs to know; where an engine differs, the
  difference is named here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

EngineName = Literal["elasticsearch", "opensearch"]


def major_version(version: str) -> int:
    """The major of a version string (``"9.5.0"`` → 9); 0 when it has none."""
    match = re.match(r"\s*(\d+)", version)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class Engine:
    """One engine's test distribution and how to run it.

    Attributes:
        name: as given to ``es start --engine``; also the distribution's Maven
            artifact, its launcher under ``bin/`` and its folder's prefix.
        title: how messages name it.
        group_id: the Maven group of its integ-test zip.
        default_version: what ``es start --engine NAME`` runs without ``--version``.
        env_prefix: its launcher reads ``<prefix>_JAVA_HOME``, ``_PATH_CONF``, ``_JAVA_OPTS``.
    """

    name: EngineName
    title: str
    group_id: str
    default_version: str
    env_prefix: str

    def java_majors(self, version: str) -> tuple[int, ...]:
        """The JDK majors *version* runs on, the preferred first.

        Elasticsearch 9 and OpenSearch 3 need Java 21 or newer (OpenSearch 3
        is not tested here; its range is the one its project states). OpenSearch 2
        still installs Java's security manager, which Java 24 removed, so it
        stops at 21. Elasticsearch 8.19 runs on 17 to 25; 21 and 17 come first,
        the versions it was released against.
        """
        newer = (25, 24, 23, 22)
        if major_version(version) >= (9 if self.name == "elasticsearch" else 3):
            return (21, *newer)
        if self.name == "opensearch":
            return (21, 17, 20, 19, 18)
        return (21, 17, *newer, 20, 19, 18)

    def security_off(self) -> dict[str, str]:
        """The settings that run its test distribution without security.

        Elasticsearch's carries x-pack security, on by default; OpenSearch's has
        no security plugin, and would refuse a setting for one.
        """
        return {"xpack.security.enabled": "false"} if self.name == "elasticsearch" else {}

    @property
    def supports_secure(self) -> bool:
        """Whether ``es start --secure`` can provision it (TLS and file-realm users).

        Only Elasticsearch's distribution carries its security tools.
        OpenSearch's security is a separate plugin with its own provisioning,
        which the runner does not do.
        """
        return self.name == "elasticsearch"


ELASTICSEARCH = Engine(
    name="elasticsearch",
    title="Elasticsearch",
    group_id="org.elasticsearch.distribution.integ-test-zip",
    default_version="8.19.21",
    env_prefix="ES",
)
OPENSEARCH = Engine(
    name="opensearch",
    title="OpenSearch",
    group_id="org.opensearch.distribution.integ-test-zip",
    default_version="2.19.6",
    env_prefix="OPENSEARCH",
)
ENGINES: dict[str, Engine] = {engine.name: engine for engine in (ELASTICSEARCH, OPENSEARCH)}


@dataclass(frozen=True)
class EngineInfo:
    """Which engine a running node is, and its version."""

    name: EngineName
    version: str

    @property
    def title(self) -> str:
        return ENGINES[self.name].title

    def __str__(self) -> str:
        return f"{self.title} {self.version}"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def identify(root: Any, nodes: Any) -> EngineInfo | None:
    """The engine behind a node's answers; ``None`` when they name no version.

    Args:
        root: the decoded answer to ``GET /``, or ``None`` when that failed (the
            test distribution of Elasticsearch 8.9 and later has no such route).
            OpenSearch always answers it, naming itself in ``version.distribution``.
        nodes: the decoded answer to ``GET /_nodes?filter_path=nodes.*.version``
            (``None`` when not asked); several nodes: the oldest version, which
            sets what the cluster accepts.

    Only OpenSearch names a distribution, so every other answer is Elasticsearch's
    (its ``X-Elastic-Product`` header says the same, but proxies may drop headers).
    An OpenSearch whose ``GET /`` is refused would read as Elasticsearch: the
    service only shows the engine, it does not depend on it.
    """
    version = None
    distribution = None
    if isinstance(root, dict) and isinstance(root.get("version"), dict):
        version = root["version"].get("number")
        distribution = root["version"].get("distribution")
    if not isinstance(version, str) and isinstance(nodes, dict):
        found = nodes.get("nodes")
        if isinstance(found, dict):
            versions = sorted(
                {
                    str(n["version"])
                    for n in found.values()
                    if isinstance(n, dict) and "version" in n
                }
            )
            version = versions[0] if versions else None
    if not isinstance(version, str):
        return None
    return EngineInfo("opensearch" if distribution == "opensearch" else "elasticsearch", version)
