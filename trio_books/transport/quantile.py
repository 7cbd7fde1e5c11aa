"""A rolling quantile over the last few hundred samples: the default hedging delay."""

from __future__ import annotations

from collections import deque


class RollingQuantile:
    """The *q* quantile of the last *window* samples, recomputed every *every* samples.

    Sorting a few hundred floats every few dozen samples costs microseconds per
    search; an exact window keeps the figure explainable ("the p95 of the last
    256 hits calls").
    """

    def __init__(
        self, q: float = 0.95, *, window: int = 256, every: int = 16, min_samples: int = 20
    ) -> None:
        if not 0 < q < 1:
            raise ValueError("q must lie between 0 and 1")
        self.q = q
        self.min_samples = min_samples
        self.every = every
        self._samples: deque[float] = deque(maxlen=window)
        self._since = 0
        self._value: float | None = None

    def add(self, sample: float) -> None:
        self._samples.append(sample)
        self._since += 1
        if self._since >= self.every or self._value is None:
            self._since = 0
            self._value = self._compute()

    def _compute(self) -> float | None:
        if len(self._samples) < self.min_samples:
            return None
        ordered = sorted(self._samples)
        return ordered[min(len(ordered) - 1, int(self.q * len(ordered)))]

    @property
    def value(self) -> float | None:
        """The quantile, or ``None`` before *min_samples* samples."""
        return self._value

    def __len__(self) -> int:
        return len(self._samples)
