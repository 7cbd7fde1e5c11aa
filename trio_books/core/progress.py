"""A load's counters, and how they are shown: a bar on a terminal, plain lines in a log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field


@dataclass
class LoadStats:
    """Counters of one load, updated as it goes.

    ``rejected`` counts invalid input records (reported, not a failure);
    ``duplicates`` records whose book id came earlier in the catalogue (the
    first is kept); ``failed`` documents Elasticsearch refused (a failure);
    ``not_utf8`` byte sequences of the input that were not UTF-8 (each read as
    U+FFFD), with the first places in ``not_utf8_at``; ``fields`` what happened
    to fields given but unusable, by field: ``{"isbn13": {"dropped": 176}}``.
    """

    read: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    indexed: int = 0
    failed: int = 0
    retried: int = 0
    fraction_read: float = 0.0
    total: int | None = None
    seconds: float = 0.0
    not_utf8: int = 0
    not_utf8_at: list[str] = field(default_factory=list)
    fields: dict[str, dict[str, int]] = field(default_factory=dict)

    def count_field_changes(self, changes: Mapping[tuple[str, str], int]) -> None:
        for (name, what), count in changes.items():
            by_what = self.fields.setdefault(name, {})
            by_what[what] = by_what.get(what, 0) + count

    @property
    def books_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def fraction_done(self) -> float | None:
        """How much of the load is done, when it can be told."""
        if self.total:
            return min(1.0, self.indexed / self.total)
        if self.fraction_read > 0 and self.accepted:
            expected = self.accepted / self.fraction_read
            return min(1.0, self.indexed / expected)
        return None

    def eta(self) -> float | None:
        """Seconds left, from the rate so far."""
        fraction = self.fraction_done()
        if not fraction or self.seconds <= 0:
            return None
        return self.seconds * (1 - fraction) / fraction

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "books_per_second": round(self.books_per_second, 1)}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"


def progress_bar(stats: LoadStats, width: int = 28) -> str:
    """One line for a terminal, redrawn in place."""
    fraction = stats.fraction_done()
    if fraction is None:
        bar, percent = "?" * width, "  ?%"
    else:
        filled = int(width * fraction)
        bar, percent = "#" * filled + "." * (width - filled), f"{fraction * 100:3.0f}%"
    return (
        f"[{bar}] {percent} {stats.indexed:,} books  "
        f"{stats.books_per_second:,.0f} books/s  ETA {_duration(stats.eta())}"
    )


def progress_line(stats: LoadStats) -> str:
    """One line for a log."""
    fraction = stats.fraction_done()
    percent = f" ({fraction * 100:.0f}%)" if fraction is not None else ""
    return (
        f"progress: read {stats.read:,}, indexed {stats.indexed:,}{percent}, "
        f"rejected {stats.rejected:,}, {stats.books_per_second:,.0f} books/s, "
        f"ETA {_duration(stats.eta())}"
    )


def summary(stats: LoadStats) -> str:
    """The closing lines of a load."""
    return (
        f"read {stats.read:,}, accepted {stats.accepted:,}, rejected {stats.rejected:,} "
        f"(invalid input), duplicates {stats.duplicates:,} (first kept)\n"
        f"indexed {stats.indexed:,}, failed {stats.failed:,} (refused by Elasticsearch), "
        f"retried {stats.retried:,}\n"
        f"{stats.seconds:.1f} s, {stats.books_per_second:,.0f} books/s"
        + "".join(
            f"\n{name}: "
            + ", ".join(f"{count:,} {what}" for what, count in sorted(by_what.items()))
            for name, by_what in sorted(stats.fields.items())
        )
        + (
            f"\n{stats.not_utf8:,} byte sequences were not UTF-8 (read as U+FFFD), "
            f"first at {', '.join(stats.not_utf8_at) or 'an unknown line'}"
            if stats.not_utf8
            else ""
        )
    )
