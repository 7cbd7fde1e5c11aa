"""The book index: its settings, its mapping, and the document a book becomes.

Only core Elasticsearch features are used (the standard analyser, keyword,
nested, numeric types): the local test distribution has no ``analysis-common``,
so there is no lowercase normaliser; the sort key for titles is computed here
instead (``title_sort``).
"""

from __future__ import annotations

import copy
from typing import Any

# Completion inputs past this many characters are cut; prefixes are capped to match.
COMPLETION_INPUT_LENGTH = 100
COMPLETION_FIELD: dict[str, Any] = {
    "type": "completion",
    # standard, not simple: "198" completes "1984" (simple keeps letters only).
    "analyzer": "standard",
    # "hungerga" completes "Hunger Games": spaces and punctuation do not count.
    "preserve_separators": False,
    "max_input_length": COMPLETION_INPUT_LENGTH,
}
# Fed by :mod:`trio_books.core.completion`, for indexing only: never read back.
COMPLETION_FIELDS = ("title_complete", "author_complete")

BOOK_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "book_id": {"type": "long"},
        "title": {"type": "text"},
        "original_title": {"type": "text"},
        "title_sort": {"type": "keyword"},
        "isbn": {"type": "keyword"},
        "isbn13": {"type": "keyword"},
        "authors": {
            "type": "nested",
            # raw: exact names, to count an author's books (completion).
            "properties": {"name": {"type": "text", "fields": {"raw": {"type": "keyword"}}}},
        },
        "tags": {
            "type": "nested",
            "properties": {
                "title": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                # Slugs are exact keywords: "between-film" never matches "film".
                "slug": {"type": "keyword"},
            },
        },
        "original_publication_year": {"type": "integer"},
        "language_code": {"type": "keyword"},
        "average_rating": {"type": "float"},
        "ratings_count": {"type": "long"},
        "small_image_url": {"type": "keyword", "index": False},
        **{field: COMPLETION_FIELD for field in COMPLETION_FIELDS},
    },
}


def replicas_for(data_nodes: object) -> int:
    """The replicas a books index gets on a cluster of *data_nodes* data nodes.

    One when there is more than one data node, so a node may fail and every
    shard still has a copy to search; none on a single node, where a replica
    could never be placed.
    """
    return 1 if isinstance(data_nodes, int) and data_nodes > 1 else 0


def index_body(*, shards: int = 1, replicas: int = 0) -> dict[str, Any]:
    """The body of ``PUT /<index>`` for a books index (a fresh copy: callers may change it)."""
    return {
        "settings": {"number_of_shards": shards, "number_of_replicas": replicas},
        "mappings": copy.deepcopy(BOOK_MAPPING),
    }


def title_sort_key(title: str) -> str:
    """A case- and space-insensitive sort key for a title."""
    return " ".join(title.casefold().split())[:256]
