"""A compact set of book ids, to spot repeated ids in a catalogue of any size."""

from __future__ import annotations

import bisect
import heapq
import itertools
from array import array

PAGE_BITS = 16
PAGE_MASK = (1 << PAGE_BITS) - 1
# A page's ids become a bitmap once this many are known: a bitmap costs 8 KiB, as
# do about a thousand ids in the sorted array, or 128 ints in a set.
PROMOTE_AT = 128
# Recent ids are merged into the sorted array once there are this many, or a
# quarter of the array's size if more: each id is merged about four times over a
# load, and recent ids (plain ints in a set, ~70 bytes each) stay a fifth of all.
FIRST_MERGE = 16_384
MERGE_FRACTION = 4


class IdSet:
    """Non-negative integer ids below 2**64, stored by how they are spread.

    A page is 65,536 consecutive ids; once :data:`PROMOTE_AT` ids of a page are
    known, the page is a bitmap of 8 KiB. Ids of sparse pages sit in a sorted
    array of 8 bytes each, with the most recent ones in a plain set until they
    are merged in. A million dense ids take 128 KiB; a million random 64-bit
    ids about 8 MiB plus the recent set, where a page each would take 8 GiB.
    """

    def __init__(self) -> None:
        self._pages: dict[int, bytearray] = {}
        # Neither holds an id of a page in _pages.
        self._sorted: array[int] = array("Q")
        self._recent: set[int] = set()
        self.count = 0

    def add(self, identifier: int) -> bool:
        """Add *identifier*; return False when it was already there."""
        page = self._pages.get(identifier >> PAGE_BITS)
        if page is None:
            if identifier in self._recent or self._in_sorted(identifier):
                return False
            self._recent.add(identifier)
            self.count += 1
            if len(self._recent) >= max(FIRST_MERGE, len(self._sorted) // MERGE_FRACTION):
                self._merge()
            return True
        offset = identifier & PAGE_MASK
        byte, bit = offset >> 3, 1 << (offset & 7)
        if page[byte] & bit:
            return False
        page[byte] |= bit
        self.count += 1
        return True

    def _in_sorted(self, identifier: int) -> bool:
        at = bisect.bisect_left(self._sorted, identifier)
        return at < len(self._sorted) and self._sorted[at] == identifier

    def _merge(self) -> None:
        """Promote the pages that now hold enough ids; merge the other recent ids in."""
        kept: list[int] = []
        dropped: list[tuple[int, int]] = []
        for number, group in itertools.groupby(sorted(self._recent), lambda i: i >> PAGE_BITS):
            recent = list(group)
            low = bisect.bisect_left(self._sorted, number << PAGE_BITS)
            high = bisect.bisect_left(self._sorted, (number + 1) << PAGE_BITS, low)
            if len(recent) + high - low < PROMOTE_AT:
                kept += recent
                continue
            page = self._pages[number] = bytearray(1 << (PAGE_BITS - 3))
            for identifier in itertools.chain(self._sorted[low:high], recent):
                offset = identifier & PAGE_MASK
                page[offset >> 3] |= 1 << (offset & 7)
            dropped.append((low, high))
        self._recent = set()
        rest = self._sorted
        if dropped:
            rest = array("Q")
            start = 0
            for low, high in dropped:
                rest += self._sorted[start:low]
                start = high
            rest += self._sorted[start:]
        # Two sorted runs merged without a list of all the ids as Python ints.
        self._sorted = array("Q", heapq.merge(rest, kept))

    def __contains__(self, identifier: object) -> bool:
        if not isinstance(identifier, int) or identifier < 0:
            return False
        page = self._pages.get(identifier >> PAGE_BITS)
        if page is None:
            return identifier in self._recent or self._in_sorted(identifier)
        offset = identifier & PAGE_MASK
        return bool(page[offset >> 3] & (1 << (offset & 7)))

    def __len__(self) -> int:
        return self.count

    @property
    def pages(self) -> int:
        """How many bitmap pages are in use (8 KiB each)."""
        return len(self._pages)
