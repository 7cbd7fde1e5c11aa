"""A compact set of book ids, to spot repeated ids in a catalogue of any size."""

from __future__ import annotations

PAGE_BITS = 16
PAGE_MASK = (1 << PAGE_BITS) - 1
# A page's ids become a bitmap once this many are known: a bitmap costs 8 KiB, and
# so do about 128 ints in a set. Fewer, and the plain set is the smaller.
PROMOTE_AT = 128
# The loose set is looked over for pages to promote when it reaches this size,
# then each time it has doubled (so the reviews cost O(1) per id over a load).
FIRST_REVIEW = 4096


class IdSet:
    """Non-negative integer ids: dense runs as bitmap pages, sparse ids in a plain set.

    A page is 65,536 consecutive ids, kept as 8 KiB of bits once it holds
    :data:`PROMOTE_AT` ids. A million dense ids take 128 KiB, where a ``set`` of
    ints takes about 60 MiB; a million random 64-bit ids stay in the set (about
    70 MiB), where a page each would take 8 GiB.
    """

    def __init__(self) -> None:
        self._pages: dict[int, bytearray] = {}
        # Ids whose page has no bitmap (yet): never one of a page in _pages.
        self._loose: set[int] = set()
        self._next_review = FIRST_REVIEW
        self.count = 0

    def add(self, identifier: int) -> bool:
        """Add *identifier*; return False when it was already there."""
        page = self._pages.get(identifier >> PAGE_BITS)
        if page is None:
            if identifier in self._loose:
                return False
            self._loose.add(identifier)
            self.count += 1
            if len(self._loose) >= self._next_review:
                self._promote()
            return True
        offset = identifier & PAGE_MASK
        byte, bit = offset >> 3, 1 << (offset & 7)
        if page[byte] & bit:
            return False
        page[byte] |= bit
        self.count += 1
        return True

    def _promote(self) -> None:
        """Move the ids of every page with :data:`PROMOTE_AT` or more loose ids to a bitmap."""
        # Sorted, a page's ids sit together: counting them needs no dict of pages.
        ordered = sorted(self._loose)
        start = 0
        while start < len(ordered):
            number = ordered[start] >> PAGE_BITS
            end = start
            while end < len(ordered) and ordered[end] >> PAGE_BITS == number:
                end += 1
            if end - start >= PROMOTE_AT:
                page = self._pages[number] = bytearray(1 << (PAGE_BITS - 3))
                for identifier in ordered[start:end]:
                    offset = identifier & PAGE_MASK
                    page[offset >> 3] |= 1 << (offset & 7)
                self._loose.difference_update(ordered[start:end])
            start = end
        self._next_review = max(FIRST_REVIEW, 2 * len(self._loose))

    def __contains__(self, identifier: object) -> bool:
        if not isinstance(identifier, int) or identifier < 0:
            return False
        page = self._pages.get(identifier >> PAGE_BITS)
        if page is None:
            return identifier in self._loose
        offset = identifier & PAGE_MASK
        return bool(page[offset >> 3] & (1 << (offset & 7)))

    def __len__(self) -> int:
        return self.count

    @property
    def pages(self) -> int:
        """How many bitmap pages are in use (8 KiB each)."""
        return len(self._pages)
