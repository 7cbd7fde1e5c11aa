"""The ``Server-Timing`` header: one entry per Elasticsearch branch, plus the total.

Browsers' devtools draw these entries, so a reader sees the fan-out's branches
side by side with the request's total. ``dur`` alone cannot show that branches
overlapped, so each branch entry also says when it started, in milliseconds
after the request began, in the standard ``desc`` parameter:
``es-hits;dur=12.3;desc="start=0.4"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_TOKEN = re.compile(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]")
_START = re.compile(r"start=(-?[0-9.]+)")


@dataclass(frozen=True)
class Span:
    """When one branch ran: ``start`` is a ``time.perf_counter()`` reading, both in seconds."""

    start: float
    duration: float


@dataclass(frozen=True)
class TimingEntry:
    """One parsed ``Server-Timing`` entry, in milliseconds; ``start`` is ``None`` if not given."""

    duration: float
    start: float | None = None


def server_timing(
    branches: Mapping[str, Span | float],
    total: float,
    *,
    origin: float | None = None,
    prefix: str = "es-",
) -> str:
    """Format ``Server-Timing``, e.g. ``es-hits;dur=3.1;desc="start=0.2", total;dur=4.0``.

    Args:
        branches: each branch's :class:`Span`, or just its duration in seconds.
        total: the request's duration in seconds.
        origin: the ``time.perf_counter()`` reading when the request began;
            spans get a start offset only when it is given.
    """
    entries = []
    for name, timing in branches.items():
        duration = timing.duration if isinstance(timing, Span) else timing
        entry = f"{_TOKEN.sub('-', prefix + name)};dur={duration * 1000:.1f}"
        if isinstance(timing, Span) and origin is not None:
            entry += f';desc="start={max(0.0, timing.start - origin) * 1000:.1f}"'
        entries.append(entry)
    entries.append(f"total;dur={total * 1000:.1f}")
    return ", ".join(entries)


def parse_server_timing_entries(header: str) -> dict[str, TimingEntry]:
    """Duration and start offset (milliseconds) by entry name."""
    found: dict[str, TimingEntry] = {}
    for entry in header.split(","):
        name, _, params = entry.strip().partition(";")
        duration: float | None = None
        start: float | None = None
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur":
                duration = float(value)
            elif key == "desc" and (match := _START.fullmatch(value.strip().strip('"'))):
                start = float(match.group(1))
        if duration is not None:
            found[name] = TimingEntry(duration, start)
    return found


def parse_server_timing(header: str) -> dict[str, float]:
    """Durations in milliseconds by entry name (the inverse of :func:`server_timing`)."""
    return {name: entry.duration for name, entry in parse_server_timing_entries(header).items()}
