"""The benchmark's outputs: ``results.json``, ``report.md`` and PNG plots (matplotlib).

``results.json`` holds the machine, the versions, the options and a list
``runs``, one record per target, concurrency and round; the report and the plots
are made from those records alone (medians over rounds, spread = min-max).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from trio_books.bench.goals import (
    Key,
    complete_goals,
    otel_goals,
    ratio,
    shell_goals,
    tls_goals,
)
from trio_books.bench.options import BenchOptions
from trio_books.bench.targets import TARGETS

PACKAGES = (
    "trio",
    "quart",
    "quart-trio",
    "quart-schema",
    "hypercorn",
    "httpx",
    "httpcore",
    "anyio",
    "pydantic",
    "orjson",
    "uvloop",
    "fastapi",
    "starlette",
    "uvicorn",
    "httptools",
    "elasticsearch",
    "elastic-transport",
    "aiohttp",
    "matplotlib",
)
RECORD_FIELDS = (
    "target",
    "workload",
    "concurrency",
    "round",
    "rps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "errors",
    "cpu_s_per_1k",
    "peak_rss_mb",
    "es_request_cache_cleared",
)


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy it was."""
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def versions(wrk_path: str, es_version: str | None) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    banner = subprocess.run([wrk_path, "--version"], capture_output=True, text=True, check=False)
    found["wrk"] = (banner.stdout or banner.stderr).split("[")[0].strip() or None
    found["elasticsearch-server"] = es_version
    return found


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


"""(workload, target, concurrency)."""


def summarise(runs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Per (workload, target, concurrency): medians over rounds, min and max of the figures."""
    groups: dict[Key, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["workload"], run["target"], run["concurrency"]), []).append(run)
    summary: dict[Key, dict[str, Any]] = {}
    for key, rounds in groups.items():
        row: dict[str, Any] = {"rounds": len(rounds), "errors": sum(r["errors"] for r in rounds)}
        for name in (
            "rps",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "max_ms",
            "cpu_s_per_1k",
            "peak_rss_mb",
            "es_cpu_s_per_1k",
            "loadgen_cpu_share",
            "loadgen_cpu_s_per_1k",
        ):
            values = [r[name] for r in rounds if r.get(name) is not None]
            row[name] = median(values) if values else None
            row[f"{name}_min"] = min(values) if values else None
            row[f"{name}_max"] = max(values) if values else None
        summary[key] = row
    return summary


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def write_outputs(
    out: Path, options: BenchOptions, results: dict[str, Any], command: str
) -> list[Path]:
    """Write ``results.json``, ``report.md`` and the plots into *out*; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    summary = summarise(results["runs"])
    written = [json_path, out / "report.md"]
    (out / "report.md").write_text(markdown(options, results, summary, command))
    written += plots(out, options, summary)
    return written


def markdown(
    options: BenchOptions,
    results: dict[str, Any],
    summary: dict[Key, dict[str, Any]],
    command: str,
) -> str:
    host = results["machine"]
    upstream = (
        f"real Elasticsearch {results['versions'].get('elasticsearch-server')}"
        if not options.upstream.is_standin
        else f"**latency stand-in, not Elasticsearch** ({options.upstream.label()}: a canned answer after the delay)"
    )
    lines = [
        "# trio_books benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"- Workload{'s' if len(options.workloads) > 1 else ''} "
        f"{', '.join(f'`{w}`' for w in options.workloads)}; upstream: {upstream}; catalogue `{results['catalogue']['index']}` "
        f"of {results['catalogue']['books']:,} books; {results['catalogue']['queries']:,} seeded queries.",
        f"- {options.rounds} interleaved rounds (every workload, concurrency and target in turn) of "
        f"{options.duration:g} s each after a {options.warmup:g} s warm-up; {options.workers} worker "
        "process(es) per server; load by wrk (one thread)"
        + (
            "; Elasticsearch's request cache for the index emptied before each measurement, so "
            "no target inherits entries another filled."
            if not options.upstream.is_standin
            else "."
        ),
        f"- Machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, {host['system']}, "
        f"Python {host['python']}; load average {host['load_average'][0]:.2f} at the start and "
        f"{results['load_average_end'][0]:.2f} at the end. The load generator, the servers and "
        "Elasticsearch share these cores.",
        "",
        "Figures are medians over rounds; `a–b` is the spread (min–max over rounds). Requests are "
        "searches: for `es-direct` one request is the service's four Elasticsearch requests, "
        "pipelined; `ping` is the bare `GET /` route, no Elasticsearch call. CPU is the server processes' user+system time per 1,000 searches; RSS is "
        "their peak resident memory during the run.",
        "",
        "## Targets",
        "",
        "| target | server | HTTP client to Elasticsearch |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {t} | {TARGETS[t].server} | {TARGETS[t].es_client} |" for t in options.targets]
    for workload in options.workloads:
        for concurrency in options.concurrency:
            lines += _table(options, summary, workload, concurrency)
    lines += _transport_goals(options, summary)
    lines += tls_goals(options, summary)
    lines += otel_goals(options, summary, results.get("otlp_sink", {}))
    lines += shell_goals(options, summary)
    lines += complete_goals(options, summary)
    lines += _connections(results.get("connections", {}))
    lines += [
        "",
        "## The load generator is not the bottleneck",
        "",
        "wrk's own CPU time during each run, against the server's (medians over rounds). "
        "A load generator that is the bottleneck would sit near 1.0 core.",
        "",
        "| workload | target | clients | wrk cores busy | wrk CPU s/1k | server CPU s/1k "
        "| Elasticsearch CPU s/1k |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for workload, target, concurrency in _keys(options):
        row = summary.get((workload, target, concurrency))
        if row is not None:
            lines.append(
                f"| {workload} | {target} | {concurrency} | {_num(row['loadgen_cpu_share'], 2)} "
                f"| {_num(row['loadgen_cpu_s_per_1k'], 3)} | {_num(row['cpu_s_per_1k'], 3)} "
                f"| {_num(row['es_cpu_s_per_1k'], 3)} |"
            )
    lines += ["", "## Plots", ""]
    for workload in options.workloads:
        rps, latency = _plot_names(options, workload)
        lines += [f"![requests/s, {workload}]({rps})", "", f"![latency, {workload}]({latency})", ""]
    return "\n".join(lines)


def _keys(options: BenchOptions) -> list[Key]:
    return [
        (workload, target, concurrency)
        for workload in options.workloads
        for concurrency in options.concurrency
        for target in options.targets
    ]


def _table(
    options: BenchOptions, summary: dict[Key, dict[str, Any]], workload: str, concurrency: int
) -> list[str]:
    lines = [
        "",
        f"## {workload}, {concurrency} concurrent client{'s' if concurrency > 1 else ''}",
        "",
        "| target | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | CPU s/1k | peak RSS MB "
        "| req/s vs asyncio | p99 vs asyncio | req/s vs es-direct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = summary.get((workload, "asyncio", concurrency), {})
    ceiling = summary.get((workload, "es-direct", concurrency), {})
    for target in options.targets:
        row = summary.get((workload, target, concurrency))
        if row is None:
            continue
        lines.append(
            f"| {target} | {_num(row['rps'])} ({_num(row['rps_min'], 0)}–{_num(row['rps_max'], 0)}) "
            f"| {_num(row['p50_ms'])} | {_num(row['p90_ms'])} "
            f"| {_num(row['p99_ms'])} ({_num(row['p99_ms_min'])}–{_num(row['p99_ms_max'])}) "
            f"| {_num(row['max_ms'])} | {row['errors']} | {_num(row['cpu_s_per_1k'], 3)} "
            f"| {_num(row['peak_rss_mb'])} | {ratio(row['rps'], base.get('rps'))} "
            f"| {ratio(row['p99_ms'], base.get('p99_ms'))} | {ratio(row['rps'], ceiling.get('rps'))} |"
        )
    return lines


def scaling(
    summary: dict[Key, dict[str, Any]], workload: str, target: str, low: int, high: int
) -> float | None:
    """rps(*high* clients) / rps(*low* clients): below 1.0, throughput fell as clients rose."""
    a = summary.get((workload, target, low), {}).get("rps")
    b = summary.get((workload, target, high), {}).get("rps")
    return None if not a or b is None else float(b) / float(a)


def _transport_goals(options: BenchOptions, summary: dict[Key, dict[str, Any]]) -> list[str]:
    """The transport's figures, where the run measured what they need.

    - scaling: rps(64)/rps(8) of each fan-out workload against the same for ``ping``;
    - the Trio build against itself on httpx's stock transport, and against the
      FastAPI peer, at the highest concurrency.
    """
    lines: list[str] = []
    fan_outs = [w for w in options.workloads if w != "ping"]
    low, high = min(options.concurrency), max(options.concurrency)
    if "ping" in options.workloads and fan_outs and low < high:
        lines += [
            "",
            f"## Scaling from {low} to {high} clients, against the bare route",
            "",
            f"rps({high}) / rps({low}) of each workload, and that ratio over the same for `ping` "
            "(1.0: the fan-out scales exactly as the serving stack does; the transport's goal "
            "is ≥ 0.95).",
            "",
            "| target | ping | " + " | ".join(f"{w} | {w} / ping" for w in fan_outs) + " |",
            "| --- | ---: | " + " | ".join("---: | ---:" for _ in fan_outs) + " |",
        ]
        for target in options.targets:
            ping = scaling(summary, "ping", target, low, high)
            if ping is None:
                continue
            cells = []
            for workload in fan_outs:
                own = scaling(summary, workload, target, low, high)
                cells.append(f"{_num(own, 2)} | {ratio(own, ping)}")
            lines.append(f"| {target} | {_num(ping, 2)} | " + " | ".join(cells) + " |")
    peers = [
        p for p in ("trio-stock", "trio-sharded", "fastapi", "asyncio") if p in options.targets
    ]
    if "trio" in options.targets and peers and fan_outs:
        lines += [
            "",
            f"## The Trio build against its peers at {high} clients",
            "",
            "requests/s of `trio` over each peer's (medians over rounds).",
            "",
            "| workload | " + " | ".join(f"trio / {p}" for p in peers) + " |",
            "| --- | " + " | ".join("---:" for _ in peers) + " |",
        ]
        for workload in fan_outs:
            trio_rps = summary.get((workload, "trio", high), {}).get("rps")
            cells = [
                ratio(trio_rps, summary.get((workload, peer, high), {}).get("rps"))
                for peer in peers
            ]
            lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    return lines


def _connections(found: dict[str, dict[str, Any]]) -> list[str]:
    """Connections each target's transport opened to Elasticsearch over the whole run."""
    if not found:
        return []
    lines = [
        "",
        "## Connections to Elasticsearch",
        "",
        "Over the whole run, warm-up included, from each server's last log line (the project's "
        "transport only). Each search is four Elasticsearch requests. The goal with TLS is "
        "< 1 opened per 1,000 searches: TLS costs encryption, not handshakes. A turn (one wrk "
        "run) may begin by filling the pool, whose idle connections expired while other "
        "targets had their turns, and ends with exchanges cut when wrk hangs up (discarded); "
        "the last column counts only what was opened beyond one full pool per turn.",
        "",
        "| target | turns | pool | searches | opened | reused | discarded | stale retries "
        "| opened per 1,000 searches | beyond one pool per turn, per 1,000 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target, row in found.items():
        lines.append(
            f"| {target} | {row['turns']} | {row['pool_size']} | {row['searches']:,} "
            f"| {row['es_connections_opened']:,} | {row['es_connections_reused']:,} "
            f"| {row['es_connections_discarded']:,} | {row['es_stale_retries']:,} "
            f"| {row['opened_per_1k_searches']:.3f} "
            f"| {row['opened_beyond_fills_per_1k_searches']:.3f} |"
        )
    return lines


def _plot_names(options: BenchOptions, workload: str) -> tuple[str, str]:
    if len(options.workloads) == 1:
        return "rps.png", "latency.png"
    return f"rps-{workload}.png", f"latency-{workload}.png"


def plots(out: Path, options: BenchOptions, summary: dict[Key, dict[str, Any]]) -> list[Path]:
    """Per workload: requests/s against concurrency; p50 and p99 latency against concurrency."""
    written: list[Path] = []
    for workload in options.workloads:
        written += _plot_workload(out, options, summary, workload)
    return written


def _plot_workload(
    out: Path, options: BenchOptions, summary: dict[Key, dict[str, Any]], workload: str
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot
    from matplotlib.axes import Axes
    from matplotlib.ticker import NullLocator, ScalarFormatter

    def concurrency_axis(axes: Axes) -> None:
        # Ticks at the measured levels only, as plain numbers on the log scale.
        axes.set_xticks(levels, [str(c) for c in levels])
        axes.xaxis.set_minor_locator(NullLocator())
        axes.yaxis.set_major_formatter(ScalarFormatter())
        axes.grid(alpha=0.3)

    title = f"trio_books: {workload} workload, upstream {options.upstream.label()}"
    levels = list(options.concurrency)
    rps_name, latency_name = _plot_names(options, workload)
    figure, axes = pyplot.subplots(figsize=(8, 5))
    for target in options.targets:
        rows = [summary.get((workload, target, c)) for c in levels]
        xs = [c for c, r in zip(levels, rows, strict=True) if r]
        ys = [r["rps"] for r in rows if r]
        low = [r["rps"] - r["rps_min"] for r in rows if r]
        high = [r["rps_max"] - r["rps"] for r in rows if r]
        if xs:
            axes.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=target)
    axes.set(xscale="log", xlabel="concurrent clients", ylabel="requests per second", title=title)
    concurrency_axis(axes)
    axes.legend()
    rps_path = out / rps_name
    figure.tight_layout()
    figure.savefig(rps_path, dpi=110)
    pyplot.close(figure)

    figure, (p50_axes, p99_axes) = pyplot.subplots(1, 2, figsize=(11, 4.5), sharex=True)
    for field, axes in (("p50_ms", p50_axes), ("p99_ms", p99_axes)):
        for target in options.targets:
            rows = [summary.get((workload, target, c)) for c in levels]
            xs = [c for c, r in zip(levels, rows, strict=True) if r]
            if xs:
                axes.plot(xs, [r[field] for r in rows if r], marker="o", label=target)
        axes.set(
            xscale="log",
            yscale="log",
            xlabel="concurrent clients",
            ylabel=f"{field[:3]} latency (ms)",
            title=f"{field[:3]} latency",
        )
        concurrency_axis(axes)
    p99_axes.legend()
    figure.suptitle(title)
    latency_path = out / latency_name
    figure.tight_layout()
    figure.savefig(latency_path, dpi=110)
    pyplot.close(figure)
    return [rps_path, latency_path]
