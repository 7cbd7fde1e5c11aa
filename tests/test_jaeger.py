"""A search's trace, as a real Jaeger stores it and its query API (and UI) shows it.

Runs in ``nox -s jaeger``, which builds Jaeger from ``tests/jaeger/go.mod`` and passes
``--jaeger BINARY``; without that option these tests are deselected (``nox -s tests``
checks the same export against the decoding receiver of ``test_otel_export.py``).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import trio
from jaeger_server import serve_jaeger
from servers import api_client

from trio_books.core.query import FACETS, HITS_BRANCH, facet_branch
from trio_books.settings import Settings

PARENT = "00f067aa0ba902b7"
BRANCHES = {f"es-{HITS_BRANCH}", *(f"es-{facet_branch(facet)}" for facet in FACETS)}

pytestmark = [pytest.mark.jaeger, pytest.mark.elasticsearch]


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def parents(span: dict[str, Any]) -> set[str]:
    return {ref["spanID"] for ref in span["references"] if ref["refType"] == "CHILD_OF"}


async def test_a_search_is_one_trace_in_jaeger_with_its_branches_overlapping(
    build: str,
    api_settings: Settings,
    es_url: str,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    jaeger_binary: str,
) -> None:
    jaeger = await nursery.start(serve_jaeger, jaeger_binary, tmp_path / "jaeger")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_SERVICE_NAME", f"trio_books-{build}")
    trace_id = secrets.token_hex(16)
    async with api_client(build, api_settings) as http:
        answer = await http.get(
            "/api/v1/search/",
            params={"q": "dune"},
            headers={"traceparent": f"00-{trace_id}-{PARENT}-01"},
        )
        assert answer.status_code == 200
        trace = await jaeger.trace(trace_id, 1 + len(BRANCHES))
    spans = trace["spans"]
    assert {trace["processes"][span["processID"]]["serviceName"] for span in spans} == {
        f"trio_books-{build}"
    }
    (server,) = [span for span in spans if tags(span).get("span.kind") == "server"]
    assert server["operationName"] == "GET /api/v1/search/"
    # Under the caller's span, which Jaeger never received (it is the caller's).
    assert parents(server) == {PARENT}
    assert tags(server)["http.response.status_code"] == 200
    tasks = {span["operationName"]: span for span in spans if span is not server}
    assert set(tasks) >= BRANCHES
    assert all(tags(span)["span.kind"] == "client" for span in tasks.values())
    assert {
        span["operationName"] for span in tasks.values() if parents(span) == {server["spanID"]}
    } >= BRANCHES
    assert {tags(span)["server.address"] for span in tasks.values()} == {es_url}
    # Jaeger's times are microseconds: each branch started before any of them ended.
    branches = [tasks[name] for name in BRANCHES]
    assert max(span["startTime"] for span in branches) < min(
        span["startTime"] + span["duration"] for span in branches
    )
    # And each task lies within the request (give or take the 2 µs that turning
    # nanosecond starts and durations into whole microseconds may cost).
    server_end = server["startTime"] + server["duration"] + 2
    assert all(
        server["startTime"] - 1 <= span["startTime"] <= span["startTime"] + span["duration"]
        and span["startTime"] + span["duration"] <= server_end
        for span in tasks.values()
    )
