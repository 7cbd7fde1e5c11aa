"""What one benchmark run measures, parsed from the command line and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trio_books.errors import UsageError
from trio_books.es.connection import ConnectionConfig, connection_config, parse_node
from trio_books.settings import load_settings

TARGETS = (
    "trio",
    "trio-stock",
    "trio-sharded",
    "asyncio",
    "asyncio-uvloop",
    "fastapi",
    "es-direct",
)
# ``ping`` is the bare ``GET /`` route, no Elasticsearch call: the serving stack's
# own curve, against which the fan-out workloads' curves are read.
WORKLOADS = ("search", "facets", "mixed", "ping")
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
        raise UsageError(f"invalid settings: {str(error).splitlines()[0]}") from None
    if not nodes:
        raise UsageError("--es needs at least one URL")
    return config.replace(nodes=nodes)
