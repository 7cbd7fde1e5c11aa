"""The live alias and its versioned indices, over the loop-neutral client.

A load writes a new version (``<alias>-<timestamp>``), checks it, then points
the alias at it in one atomic ``_aliases`` request and deletes versions older
than the last two. Searches go through the alias, so they see the old
version or the new one, never an empty or half-built index.

A load writes through a write alias of its own (``<version>-write``), made
with the version and deleted with it, and sends every ``_bulk`` request with
``require_alias``: a request Elasticsearch takes up only after a cancelled
load deleted its version is refused, where writing to the version by name
would create that index again (``action.auto_create_index``).

If an index (not an alias) already has the alias's name, for example one made
before versioned loads, the first swap deletes it in the same atomic request,
and only when the caller says so (``replace_index``): that delete cannot be undone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from trio_books.core.mapping import index_body
from trio_books.core.versions import swap_actions, version_name, versions_to_delete
from trio_books.errors import IndexInTheWay
from trio_books.es.client import Elasticsearch


@dataclass(frozen=True)
class AliasState:
    """What *name* is now: an alias (``targets``), an index (``concrete``), or nothing."""

    concrete: bool
    targets: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.concrete or bool(self.targets)


@dataclass(frozen=True)
class Swap:
    """What making a version live changed."""

    alias: str
    index: str
    previous: list[str]
    replaced_concrete: bool


async def alias_state(es: Elasticsearch, name: str) -> AliasState:
    """Whether *name* is an alias (and of what), an index, or unknown."""
    found = await es.request(
        "GET", f"/_resolve/index/{name}", params={"expand_wildcards": "all"}, allow_404=True
    )
    found = found or {}
    concrete = any(entry.get("name") == name for entry in found.get("indices", []))
    targets = [
        index
        for alias in found.get("aliases", [])
        if alias.get("name") == name
        for index in alias.get("indices", [])
    ]
    return AliasState(concrete, sorted(targets))


def write_alias(index: str) -> str:
    """The alias a load writes the version *index* through."""
    return f"{index}-write"


async def create_version(es: Elasticsearch, alias: str, *, now: datetime | None = None) -> str:
    """Create an empty new version of *alias* for loading, with its write alias; return its name.

    It is made with refresh off (nothing searches it until it is live, and
    refreshing while bulk loading costs indexing speed); :func:`count_version`
    turns refresh back on.
    """
    name = version_name(alias, now or datetime.now(UTC))
    body = index_body()
    body["settings"] = {**body["settings"], "refresh_interval": "-1"}
    body["aliases"] = {write_alias(name): {}}
    await es.create_index(name, body)
    return name


async def count_version(es: Elasticsearch, index: str, *, replicas: int | None = None) -> int:
    """Close a loaded version to writes, restore refresh (and give it *replicas*), count it.

    Its write alias goes first, so what is counted is final: a ``_bulk`` request
    sent with ``require_alias`` can no longer change it. A version is loaded
    without replicas: copying each document as it is indexed would only slow
    the load. They are added here, before it goes live.
    """
    await es.request("DELETE", f"/{index}/_alias/{write_alias(index)}", allow_404=True)
    changes: dict[str, Any] = {"refresh_interval": None}
    if replicas is not None:
        changes["number_of_replicas"] = replicas
    await es.request("PUT", f"/{index}/_settings", body={"index": changes})
    await es.refresh(index)
    answer: dict[str, Any] = await es.request("GET", f"/{index}/_count")
    return int(answer["count"])


async def check_replaceable(es: Elasticsearch, alias: str, *, replace_index: bool) -> None:
    """Raise :class:`IndexInTheWay` when an index named *alias* exists and may not be deleted."""
    if not replace_index and (await alias_state(es, alias)).concrete:
        raise IndexInTheWay(alias)


async def swap_alias(
    es: Elasticsearch, alias: str, index: str, *, replace_index: bool = False
) -> Swap:
    """Point *alias* at *index* alone, in one atomic request.

    Callers on Trio shield this call from cancellation: once the request is sent,
    whether the alias moved is known only from the answer.

    Raises:
        IndexInTheWay: an index is named *alias*, and *replace_index* is False.
    """
    state = await alias_state(es, alias)
    if state.concrete and not replace_index:
        raise IndexInTheWay(alias)
    body = swap_actions(alias, index, current=state.targets, concrete=state.concrete)
    await es.request("POST", "/_aliases", body=body)
    return Swap(alias, index, state.targets, state.concrete)


async def prune_versions(es: Elasticsearch, alias: str, live: str) -> list[str]:
    """Delete versions of *alias* older than the last two (never *live*); return their names."""
    found = await es.request(
        "GET", f"/_resolve/index/{alias}-*", params={"expand_wildcards": "all"}
    )
    names = [entry["name"] for entry in (found or {}).get("indices", [])]
    deleted = versions_to_delete(alias, names, live=live)
    for name in deleted:
        await es.delete_index(name)
    return deleted


async def discard_version(es: Elasticsearch, index: str) -> None:
    """Delete a version that will not go live (a failed or cancelled load), and its write alias."""
    await es.delete_index(index)
