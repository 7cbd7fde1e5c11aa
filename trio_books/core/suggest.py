"""Did you mean…? Corrections from Elasticsearch's term suggester.

Asked only when a free-text search finds few books. The phrase suggester needs
shingle filters that the core server lacks, so each word is corrected on its
own and the corrected words are put back in place of the misspelt ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from trio_books.errors import ResponseShapeError

SUGGEST_FIELDS = {"title": "title", "author": "authors.name"}
# The term suggester works word by word on two fields: the costliest thing an
# anonymous client can order. A typo'd search is short; only its first words
# are corrected, and a long text (a pasted paragraph, noise) gets none.
SUGGEST_WORDS = 5
SUGGEST_MAX_CHARS = 100


def suggestion_head(text: str) -> str | None:
    """The start of *text* worth correcting: up to its first ``SUGGEST_WORDS`` words.

    None when *text* is longer than ``SUGGEST_MAX_CHARS`` characters. The head
    is a prefix of *text*, so a correction of it is put back with the rest
    (:func:`with_tail`).
    """
    if len(text) > SUGGEST_MAX_CHARS:
        return None
    words = re.finditer(r"\S+", text)
    ends = [match.end() for _, match in zip(range(SUGGEST_WORDS), words, strict=False)]
    return text[: ends[-1]] if ends else None


def with_tail(corrections: list[str], head: str, text: str) -> list[str]:
    """Each correction of *head* followed by the rest of *text*."""
    tail = text[len(head) :]
    return [correction + tail for correction in corrections]


def suggest_body(text: str) -> dict[str, Any]:
    """A search that returns no hits, only term suggestions for *text* from titles and authors."""
    return {
        "size": 0,
        "track_total_hits": False,
        "suggest": {
            "text": text,
            **{
                name: {
                    "term": {
                        "field": field,
                        "suggest_mode": "missing",
                        "min_word_length": 3,
                        "size": 1,
                    }
                }
                for name, field in SUGGEST_FIELDS.items()
            },
        },
    }


def parse_suggestions(answer: Mapping[str, Any], text: str) -> list[str]:
    """Corrected versions of *text*, best first, without duplicates or the text itself."""
    try:
        suggesters = answer.get("suggest", {})
        found: list[str] = []
        for name in SUGGEST_FIELDS:
            corrected, changed = text, False
            # Replace from the end so earlier offsets stay valid.
            for entry in sorted(suggesters.get(name, []), key=lambda e: -int(e["offset"])):
                options = entry["options"]
                if options:
                    start, length = int(entry["offset"]), int(entry["length"])
                    corrected = (
                        corrected[:start] + str(options[0]["text"]) + corrected[start + length :]
                    )
                    changed = True
            if changed and corrected != text and corrected not in found:
                found.append(corrected)
        return found
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ResponseShapeError(f"unexpected suggester answer: {error!r:.200}") from error
