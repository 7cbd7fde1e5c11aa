"""The search's cross-parameter rules, applied to the requests schemathesis means as valid.

Each parameter's schema states its own rules. Three of the search's rules
involve two parameters, or the service's own word, which no parameter's schema
can state (the parameters' descriptions say them): page × size ≤ 10,000,
``year_from`` ≤ ``year_to``, and a cursor only as the service issued it, on
page 1. The fuzz drill has schemathesis load this module (``SCHEMATHESIS_HOOKS``):
each case generated as valid is brought within those rules, so that
``positive_data_acceptance`` holds the service to the rest (a valid request is
answered 2xx). Cases generated as invalid are sent as they are, to be refused.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import GenerationMode

from trio_books.core.query import MAX_RESULT_WINDOW


def _number(value: object) -> int | None:
    """*value* as an int, whether generated as one or already as its text (the coverage phase)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def within_cross_rules(query: dict[str, Any]) -> dict[str, Any]:
    """*query* with the search's cross-parameter rules kept (values already valid one by one)."""
    kept = {name: value for name, value in query.items() if name != "cursor"}
    size, page = _number(kept.get("size", 20)), _number(kept.get("page", 1))
    if size is not None and page is not None and size > 0 and page * size > MAX_RESULT_WINDOW:
        kept["page"] = max(1, MAX_RESULT_WINDOW // size)
    low, high = _number(kept.get("year_from")), _number(kept.get("year_to"))
    if low is not None and high is not None and low > high:
        kept["year_from"], kept["year_to"] = kept["year_to"], kept["year_from"]
    return kept


@schemathesis.hook
def map_case(
    context: schemathesis.HookContext, case: schemathesis.Case[Any]
) -> schemathesis.Case[Any]:
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
        return case
    if isinstance(case.query, dict) and case.path.endswith("/search/"):
        case.query = within_cross_rules(case.query)
    return case
