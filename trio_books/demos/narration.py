"""Narration for the demos: what each task is doing, as it happens, then a text timeline.

Every line is stamped with the milliseconds since the demo began and the name of
the task speaking, in the style of Trio's tutorial scripts::

       12.4 ms  [es-hits] sending…
       12.6 ms  [parent] waiting at the end of `async with` for 4 children

Bars are recorded as tasks run (:meth:`Narration.track`) and drawn at the end on
one shared time axis, so what overlapped is plain to see.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import trio

OUTCOME_CELLS = {"ok": "█", "cancelled": "░", "error": "▓"}
LEGEND = "█ answered   ░ cancelled   ▓ failed   ▲ event"
WIDTH = 56


@dataclass(frozen=True)
class Bar:
    """One task's run: ``start`` and ``end`` are ``time.perf_counter()`` readings."""

    lane: str
    start: float
    end: float
    outcome: str  # "ok", "cancelled" or "error"

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass(frozen=True)
class Mark:
    """A moment worth pointing at on the timeline, e.g. when the caller saw the error."""

    lane: str
    at: float
    label: str


def is_cancellation(error: BaseException) -> bool:
    """Whether *error* is Trio's or asyncio's cancellation (the demos run on both)."""
    return isinstance(error, trio.Cancelled | asyncio.CancelledError)


class Narration:
    """Prints what tasks do, stamped with time, and keeps the bars for the timeline."""

    def __init__(self) -> None:
        self.origin = time.perf_counter()
        self.bars: list[Bar] = []
        self.marks: list[Mark] = []

    def ms(self, at: float | None = None) -> float:
        """Milliseconds from the demo's start to *at* (default: now)."""
        return ((time.perf_counter() if at is None else at) - self.origin) * 1000

    def say(self, who: str, what: str) -> None:
        print(f"{self.ms():9.1f} ms  [{who}] {what}", flush=True)

    def section(self, title: str) -> None:
        print(f"\n=== {title}", flush=True)

    def explain(self, text: str) -> None:
        """A few sentences for the reader, wrapped and indented."""
        print(
            textwrap.fill(
                " ".join(text.split()), 88, initial_indent="    ", subsequent_indent="    "
            )
        )

    def bar(self, lane: str, start: float, end: float, outcome: str) -> None:
        self.bars.append(Bar(lane, start, end, outcome))

    def mark(self, lane: str, label: str, at: float | None = None) -> None:
        self.marks.append(Mark(lane, time.perf_counter() if at is None else at, label))

    @contextmanager
    def track(self, lane: str) -> Iterator[None]:
        """Record the enclosed ``await`` as a bar on *lane*, with how it ended."""
        start = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        except (trio.Cancelled, asyncio.CancelledError):
            outcome = "cancelled"
            raise
        finally:
            self.bar(lane, start, time.perf_counter(), outcome)

    def timeline(self, title: str) -> None:
        """Print the bars and marks recorded since the last timeline, then forget them."""
        print(f"\n--- timeline: {title}")
        for line in render_timeline(self.bars, self.marks):
            print(line)
        print(flush=True)
        self.bars, self.marks = [], []


def render_timeline(bars: list[Bar], marks: list[Mark], width: int = WIDTH) -> list[str]:
    """Rows of characters, one per bar or mark, on one time axis from the earliest start."""
    times = [b.start for b in bars] + [b.end for b in bars] + [m.at for m in marks]
    if not times:
        return ["  (nothing ran)"]
    origin, end = min(times), max(times)
    scale = width / max(end - origin, 1e-9)
    lane_width = max(len(lane) for lane in [*(b.lane for b in bars), *(m.lane for m in marks)])

    def column(at: float) -> int:
        return min(width - 1, int((at - origin) * scale))

    rows: list[tuple[float, str]] = []
    for bar in bars:
        first, last = column(bar.start), max(column(bar.start), column(bar.end))
        cells = " " * first + OUTCOME_CELLS[bar.outcome] * (last - first + 1)
        text = f"  {bar.lane:<{lane_width}} │{cells:<{width}}│ {bar.ms:8.1f} ms  {bar.outcome}"
        rows.append((bar.start, text))
    for mark in marks:
        cells = " " * column(mark.at) + "▲"
        at = (mark.at - origin) * 1000
        rows.append(
            (
                mark.at,
                f"  {mark.lane:<{lane_width}} │{cells:<{width}}│ at {at:.1f} ms: {mark.label}",
            )
        )
    rows.sort(key=lambda row: row[0])
    total = (end - origin) * 1000
    axis = f"  {'':<{lane_width}}  0 ms{f'{total:.1f} ms':>{width - 4}}"
    return [*(text for _, text in rows), axis, f"  {'':<{lane_width}}  {LEGEND}"]
