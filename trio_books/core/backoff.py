"""How long to wait before sending pushed-back work again."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter.

    Args:
        first: the longest wait before the first retry, in seconds.
        cap: no wait is longer than this.
        max_retries: give up after this many retries of the same items.
    """

    first: float = 0.1
    cap: float = 10.0
    max_retries: int = 8

    def delay(self, attempt: int, fraction: float) -> float:
        """The wait before retry number *attempt* (from 1), given a random *fraction* in [0, 1).

        Half the wait is fixed and half random ("equal jitter"), so senders pushed
        back together do not all come back together.
        """
        ceiling = min(self.cap, self.first * 2.0 ** max(0, attempt - 1))
        return ceiling / 2 + ceiling / 2 * fraction
