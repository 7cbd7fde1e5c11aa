"""What one benchmark run measures, parsed from the command line and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trio_books.bench import targets
from trio_books.errors import UsageError
from trio_books.es import local, security
from trio_books.es.connection import ConnectionConfig, connection_config, parse_node
from trio_books.settings import invalid_settings, load_settings

TARGETS = (
    "trio",
    "trio-hypercorn",
    "trio-otel",
    "trio-stock",
    "trio-sharded",
    "asyncio",
    "asyncio-uvloop",
    "fastapi",
    "es-direct",
    "h11-trio",
    "trio-tls",
    "fastapi-tls",
)
# ``ping`` is the bare ``GET /`` route, no Elasticsearch call: the serving stack's
# own curve, against which the fan-out workloads' curves are read.
# ``complete`` is search as you type: a prefix completed into titles and authors.
WORKLOADS = ("search", "facets", "mixed", "complete", "ping")
DEFAULT_TARGETS = "trio,asyncio,asyncio-uvloop,fastapi,es-direct"
DEFAULT_CONCURRENCY = "1,8,32,64,128"
MIN_ROUNDS = 3
MIN_CATALOGUE = 100_000


@dataclass(frozen=True)
class Upstream:
    """Where the targets' Elasticsearch requests go: the real one, or the latency stand-in."""

    latency_ms: float | None = None

    @property
    def is_standin(self) -> bool:
        return self.latency_ms is not None

    def label(self) -> str:
        return "real" if self.latency_ms is None else f"latency:{self.latency_ms:g}ms"


@dataclass(frozen=True)
class BenchOptions:
    targets: tuple[str, ...]
    concurrency: tuple[int, ...]
    duration: float
    workers: int
    workloads: tuple[str, ...]
    upstream: Upstream
    out: Path
    rounds: int
    warmup: float
    index: str
    catalogue_size: int
    seed: int
    quick: bool
    # The port of a local secured node (``es start --secure``) for the ``-tls`` targets.
    secure_es: int | None = None


def _names(text: str, option: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated names, each once, in order; every one of them in *allowed*."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise UsageError(
            f"{option}: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}"
        )
    return names


def parse_targets(text: str) -> tuple[str, ...]:
    return _names(text, "--targets", TARGETS)


def parse_workloads(text: str) -> tuple[str, ...]:
    return _names(text, "--workload", WORKLOADS)


def parse_concurrency(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise UsageError(
            f"--concurrency must be whole numbers separated by commas, not {text!r}"
        ) from None
    if not levels or levels[0] < 1 or levels[-1] > 1024:
        raise UsageError("--concurrency levels must be between 1 and 1024")
    return levels


def parse_upstream(text: str) -> Upstream:
    if text == "real":
        return Upstream()
    match = re.fullmatch(r"latency:(\d+(?:\.\d+)?)ms", text)
    if match is None:
        raise UsageError(
            f"--upstream must be 'real' or 'latency:<N>ms' (e.g. latency:20ms), not {text!r}"
        )
    latency = float(match.group(1))
    if not 0 <= latency <= 10_000:
        raise UsageError("--upstream latency must be 0-10000 ms")
    return Upstream(latency_ms=latency)


def check(options: BenchOptions) -> BenchOptions:
    """Refuse settings that would give numbers nobody should trust."""
    if options.duration <= 0 or options.warmup < 0:
        raise UsageError("--duration must be positive and --warmup not negative")
    if options.workers < 1:
        raise UsageError("--workers must be at least 1")
    if not options.quick and options.rounds < MIN_ROUNDS:
        raise UsageError(f"--rounds must be at least {MIN_ROUNDS} (fewer only with --quick)")
    if options.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    if not options.quick and options.catalogue_size < MIN_CATALOGUE:
        raise UsageError(
            f"--catalogue-size must be at least {MIN_CATALOGUE:,} (smaller only with --quick)"
        )
    secured = [name for name in options.targets if targets.TARGETS[name].secure]
    if secured and options.secure_es is None:
        raise UsageError(
            f"--targets {','.join(secured)} need --secure-es PORT (a node of 'es start --secure')"
        )
    if secured and options.upstream.is_standin:
        raise UsageError(f"--targets {','.join(secured)} need the real upstream, not a stand-in")
    idle = [
        name
        for name in options.targets
        if not any(targets.TARGETS[name].takes(w) for w in options.workloads)
    ]
    if idle:
        raise UsageError(
            f"--targets {','.join(idle)} take no part in --workload {','.join(options.workloads)}"
        )
    if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", options.index):
        raise UsageError(f"--index {options.index!r} is not a valid index name")
    return options


def connection_from(urls: str | None) -> ConnectionConfig:
    """The settings' connection configuration; its nodes *urls* (comma-separated) if given.

    For the benchmark tools' ``--es``: TLS and credentials still come from the
    ``TRIO_BOOKS_ES_*`` settings (never from the URLs).

    Raises:
        UsageError: the settings, or *urls*, are invalid.
    """
    try:
        config = connection_config(load_settings())
        if urls is None:
            return config
        nodes = tuple(parse_node(url.strip()) for url in urls.split(",") if url.strip())
    except ValueError as error:
        raise invalid_settings(error) from None
    if not nodes:
        raise UsageError("--es needs at least one URL")
    return config.replace(nodes=nodes)


def secure_connection(port: int, user: security.User) -> ConnectionConfig:
    """The local secured node on *port* (``es start --secure``): https, its CA file, *user*'s password.

    Read from the node's ``secure.json``; the rest of the configuration (timeouts,
    pools) still comes from the settings.

    Raises:
        UsageError: that node was never started with ``--secure``, or its file is unreadable.
    """
    layout = local.NodeLayout(local.default_cache_dir(), port=port, secure=True)
    info = security.read_secure_info(layout)
    if info is None:
        raise UsageError(
            f"--secure-es {port}: no readable {security.secure_file(layout)}; "
            f"start the node with 'python -m trio_books es start --secure --port {port}'"
        )
    who = info.credentials(user)
    try:
        # Every other kind of credentials cleared: the environment's must not mix in.
        settings = load_settings(
            es_urls=[info.url],
            es_cloud_id=None,
            es_ca_certs=str(info.ca_certs),
            es_verify_certs=True,
            es_ssl_assert_fingerprint=None,
            es_username=who.username,
            es_password=who.password,
            es_api_key=None,
            es_bearer_auth=None,
        )
        return connection_config(settings)
    except ValueError as error:
        raise invalid_settings(error) from None
