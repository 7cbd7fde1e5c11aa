"""Versioned indices behind a live alias: their names, and the requests that swap them.

Each load writes ``<alias>-<UTC timestamp to the microsecond>``; names sort in
the order they were made. The alias moves to a new version in one
``_aliases`` request, which Elasticsearch applies atomically, so a search sees
either the old version or the new one, never neither.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

KEEP_VERSIONS = 2
_STAMP = "%Y%m%d%H%M%S%f"


def version_name(alias: str, when: datetime) -> str:
    """The name of the version of *alias* made at *when*."""
    return f"{alias}-{when.astimezone(UTC).strftime(_STAMP)}"


def is_version_of(alias: str, name: str) -> bool:
    """Whether *name* is a version of *alias* (not merely an index starting with its name)."""
    return re.fullmatch(re.escape(alias) + r"-\d{20}", name) is not None


def versions_to_delete(
    alias: str, names: Iterable[str], *, live: str, keep: int = KEEP_VERSIONS
) -> list[str]:
    """Versions older than the newest *keep* (the *live* one always kept), oldest first."""
    versions = sorted(name for name in names if is_version_of(alias, name))
    kept = set(versions[-keep:]) | {live}
    return [name for name in versions if name not in kept]


def swap_actions(
    alias: str, new_index: str, *, current: Iterable[str], concrete: bool
) -> dict[str, Any]:
    """The ``_aliases`` body that points *alias* at *new_index* alone.

    Args:
        alias: the live alias.
        new_index: the version to make live.
        current: the indices *alias* points at now.
        concrete: an index (not an alias) is named *alias*, for example one made
            before versioned loads: it is deleted in the same atomic request,
            since an alias cannot share a name with an index.
    """
    actions: list[dict[str, Any]] = [
        {"remove": {"index": index, "alias": alias}} for index in sorted(current)
    ]
    if concrete:
        actions.append({"remove_index": {"index": alias}})
    actions.append({"add": {"index": new_index, "alias": alias}})
    return {"actions": actions}
