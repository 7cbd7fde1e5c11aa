"""The ``Server-Timing`` header: one entry per Elasticsearch branch, plus the total.

Browsers' devtools draw these entries. Each branch entry also carries its start
offset (``desc="start=1.2"``, milliseconds from the request's start), so a page
can draw the branches on a shared time axis and show that they overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from trio_books.core.timeline import Span

_TOKEN = re.compile(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]")


def server_timing(
    spans: Iterable[Span], total: float, *, prefix: str = "es-", detailed: bool = True
) -> str:
    """Format ``Server-Timing`` from spans (seconds), e.g. ``es-hits;dur=3.1;desc="start=0.2", total;dur=4.0``.

    Not *detailed* (where tracing is not allowed): each branch's name and
    duration only, without its attempts (``hits#try2``, ``hits#hedge``), start
    or outcome, which describe the cluster behind the service.
    """
    entries = []
    for span in spans:
        if not detailed:
            if "#" not in span.name:
                entries.append(
                    f"{_TOKEN.sub('-', prefix + span.name)};dur={span.duration * 1000:.1f}"
                )
            continue
        desc = f"start={span.start * 1000:.1f}"
        if span.outcome not in ("ok", "running"):
            desc += f" outcome={span.outcome.replace(' ', '-')}"
        entries.append(
            f'{_TOKEN.sub("-", prefix + span.name)};dur={span.duration * 1000:.1f};desc="{desc}"'
        )
    entries.append(f"total;dur={total * 1000:.1f}")
    return ", ".join(entries)


@dataclass(frozen=True)
class TimingEntry:
    name: str
    duration_ms: float
    start_ms: float | None = None
    outcome: str | None = None


def parse_timing_entries(header: str) -> list[TimingEntry]:
    """The entries of a ``Server-Timing`` header written by :func:`server_timing`."""
    found = []
    for entry in header.split(","):
        name, _, params = entry.strip().partition(";")
        duration, start, outcome = 0.0, None, None
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur":
                duration = float(value)
            elif key == "desc":
                for word in value.strip('"').split():
                    item, _, amount = word.partition("=")
                    if item == "start":
                        start = float(amount)
                    elif item == "outcome":
                        outcome = amount.replace("-", " ")
        found.append(TimingEntry(name, duration, start, outcome))
    return found


def parse_server_timing(header: str) -> dict[str, float]:
    """Durations in milliseconds by entry name."""
    return {entry.name: entry.duration_ms for entry in parse_timing_entries(header)}
