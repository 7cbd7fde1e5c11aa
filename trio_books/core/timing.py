"""The ``Server-Timing`` header: one entry per Elasticsearch branch, plus the total.

Browsers' devtools draw these entries, so a reader sees the fan-out's branches
side by side with the request's total.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]")


def server_timing(branches: Mapping[str, float], total: float, *, prefix: str = "es-") -> str:
    """Format ``Server-Timing`` from durations in seconds, e.g. ``es-hits;dur=3.1, total;dur=4.0``."""
    entries = [
        f"{_TOKEN.sub('-', prefix + name)};dur={seconds * 1000:.1f}"
        for name, seconds in branches.items()
    ]
    entries.append(f"total;dur={total * 1000:.1f}")
    return ", ".join(entries)


def parse_server_timing(header: str) -> dict[str, float]:
    """Durations in milliseconds by entry name (the inverse of :func:`server_timing`)."""
    found: dict[str, float] = {}
    for entry in header.split(","):
        name, _, params = entry.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur":
                found[name] = float(value)
    return found
