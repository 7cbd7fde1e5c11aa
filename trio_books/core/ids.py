"""A compact set of book ids, to spot repeated ids in a catalogue of any size."""

from __future__ import annotations

PAGE_BITS = 16
PAGE_MASK = (1 << PAGE_BITS) - 1


class IdSet:
    """Non-negative integer ids as a sparse bitmap: one 8 KiB page per 65,536 ids in use.

    A million dense ids take 128 KiB, where a ``set`` of ints takes about 60 MiB.
    """

    def __init__(self) -> None:
        self._pages: dict[int, bytearray] = {}
        self.count = 0

    def add(self, identifier: int) -> bool:
        """Add *identifier*; return False when it was already there."""
        page = self._pages.get(identifier >> PAGE_BITS)
        if page is None:
            page = self._pages[identifier >> PAGE_BITS] = bytearray(1 << (PAGE_BITS - 3))
        offset = identifier & PAGE_MASK
        byte, bit = offset >> 3, 1 << (offset & 7)
        if page[byte] & bit:
            return False
        page[byte] |= bit
        self.count += 1
        return True

    def __contains__(self, identifier: object) -> bool:
        if not isinstance(identifier, int) or identifier < 0:
            return False
        page = self._pages.get(identifier >> PAGE_BITS)
        offset = identifier & PAGE_MASK
        return page is not None and bool(page[offset >> 3] & (1 << (offset & 7)))

    def __len__(self) -> int:
        return self.count
