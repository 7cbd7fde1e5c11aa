"""The benchmark's goals as ratios between targets: TLS's and tracing's prices, the Trio build's two shells."""

from __future__ import annotations

from typing import Any

from trio_books.bench.options import BenchOptions

# (workload, target, clients): one cell of the run's summary.
Key = tuple[str, str, int]


def ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}×"


def tls_goals(options: BenchOptions, summary: dict[Key, dict[str, Any]]) -> list[str]:
    """TLS's price: ``trio-tls`` over ``trio`` (plaintext) and over ``fastapi-tls``, per level."""
    pairs = [
        (a, b)
        for a, b in (("trio-tls", "trio"), ("trio-tls", "fastapi-tls"))
        if b in options.targets
    ]
    fan_outs = [w for w in options.workloads if w != "ping"]
    if "trio-tls" not in options.targets or not pairs or not fan_outs:
        return []
    lines = [
        "",
        "## TLS",
        "",
        "requests/s of `trio-tls` (the secured node, over TLS with basic auth) over each "
        "other target's (medians over rounds). Goals at the highest concurrency: "
        "trio-tls / trio ≥ 0.85×, trio-tls / fastapi-tls ≥ 1.0×.",
        "",
        "| workload | clients | " + " | ".join(f"{a} / {b}" for a, b in pairs) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in pairs) + " |",
    ]
    for workload in fan_outs:
        for level in options.concurrency:
            cells = [
                ratio(
                    summary.get((workload, a, level), {}).get("rps"),
                    summary.get((workload, b, level), {}).get("rps"),
                )
                for a, b in pairs
            ]
            lines.append(f"| {workload} | {level} | " + " | ".join(cells) + " |")
    return lines


# Tracing's price is read at this many clients.
OTEL_CLIENTS = 64


def otel_goals(
    options: BenchOptions, summary: dict[Key, dict[str, Any]], exported: dict[str, int]
) -> list[str]:
    """Tracing's price: ``trio-otel`` (every request's spans exported) over ``trio``, per level.

    *exported*: what the sink stand-in took over the run (``exports``, ``bytes``).
    """
    if not {"trio", "trio-otel"} <= set(options.targets):
        return []
    took = (
        f"The sink took {exported['exports']:,} exports ({exported['bytes'] / 2**20:,.1f} MiB "
        "of protobuf) over the run."
        if {"exports", "bytes"} <= set(exported)
        else "The sink did not say what it took."
    )
    lines = [
        "",
        "## Tracing",
        "",
        "requests/s of `trio-otel` (every request's spans exported over OTLP/HTTP to a sink "
        "stand-in) over `trio`'s (medians over rounds). "
        f"Goal: ≥ 0.9× on search at {OTEL_CLIENTS} clients. {took}",
        "",
        "| workload | clients | trio-otel / trio |",
        "| --- | ---: | ---: |",
    ]
    for workload in options.workloads:
        for level in options.concurrency:
            traced = summary.get((workload, "trio-otel", level), {}).get("rps")
            plain = summary.get((workload, "trio", level), {}).get("rps")
            lines.append(f"| {workload} | {level} | {ratio(traced, plain)} |")
    return lines


def shell_goals(options: BenchOptions, summary: dict[Key, dict[str, Any]]) -> list[str]:
    """The lean shell's gain: ``trio`` over ``trio-hypercorn`` (same build, Hypercorn's shell)."""
    if not {"trio", "trio-hypercorn"} <= set(options.targets):
        return reference_share(options, summary)
    lines = [
        "",
        "## The Trio build's connection shell",
        "",
        "requests/s of `trio` (the lean shell, `SERVER_SHELL=lean`) over `trio-hypercorn` "
        "(Hypercorn's own trio shell), and each over `asyncio` where it ran (medians over "
        "rounds). Goal: ping lean / Hypercorn's ≥ 1.4× at 8 and at 64 clients.",
        "",
        "| workload | clients | trio / trio-hypercorn | trio / asyncio | trio-hypercorn / asyncio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for workload in options.workloads:
        for level in options.concurrency:
            rps = {
                target: summary.get((workload, target, level), {}).get("rps")
                for target in ("trio", "trio-hypercorn", "asyncio")
            }
            lines.append(
                f"| {workload} | {level} | {ratio(rps['trio'], rps['trio-hypercorn'])} | "
                f"{ratio(rps['trio'], rps['asyncio'])} | "
                f"{ratio(rps['trio-hypercorn'], rps['asyncio'])} |"
            )
    return lines + reference_share(options, summary)


def reference_share(options: BenchOptions, summary: dict[Key, dict[str, Any]]) -> list[str]:
    """Each serving stack's ping rate as a share of the physical reference's (``h11-trio``)."""
    if "h11-trio" not in options.targets or "ping" not in options.workloads:
        return []
    stacks = [
        t for t in ("trio", "trio-hypercorn", "asyncio", "asyncio-uvloop") if t in options.targets
    ]
    lines = [
        "",
        "ping requests/s of each serving stack over the physical reference's, `h11-trio` "
        "(a minimal h11-on-Trio server: no ASGI, no framework, one process):",
        "",
        "| clients | h11-trio req/s | " + " | ".join(f"{t} / h11-trio" for t in stacks) + " |",
        "| ---: | ---: | " + " | ".join("---:" for _ in stacks) + " |",
    ]
    for level in options.concurrency:
        reference = summary.get(("ping", "h11-trio", level), {}).get("rps")
        cells = [ratio(summary.get(("ping", t, level), {}).get("rps"), reference) for t in stacks]
        shown = "–" if reference is None else f"{reference:,.0f}"
        lines.append(f"| {level} | {shown} | " + " | ".join(cells) + " |")
    return lines


# Completion's goal is read at this many clients (or the nearest level measured).
COMPLETE_CLIENTS = 8


def complete_goals(options: BenchOptions, summary: dict[Key, dict[str, Any]]) -> list[str]:
    """Search as you type against search: p50 of ``complete`` over p50 of ``search``, per target."""
    if not {"complete", "search"} <= set(options.workloads):
        return []
    level = min(options.concurrency, key=lambda clients: abs(clients - COMPLETE_CLIENTS))
    lines = [
        "",
        "## Search as you type",
        "",
        f"Median latency of a completion over a search's, at {level} clients (medians over "
        "rounds). Goal: ≤ 0.25×.",
        "",
        "| target | complete p50 ms | search p50 ms | complete / search |",
        "| --- | ---: | ---: | ---: |",
    ]
    for target in options.targets:
        complete = summary.get(("complete", target, level), {}).get("p50_ms")
        search = summary.get(("search", target, level), {}).get("p50_ms")
        if complete is None or search is None:
            continue
        lines.append(f"| {target} | {complete:.2f} | {search:.2f} | {ratio(complete, search)} |")
    return lines
