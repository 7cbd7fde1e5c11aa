"""Traces exported over OTLP/HTTP, received and decoded by a stand-in receiver (``otlp_receiver.py``).

A search sent with a ``traceparent`` must arrive as one server span under the
caller's span and one client span per Elasticsearch task under it, the four branches
overlapping in time; its log lines carry the same trace id. ``nox -s jaeger`` sends
the same to a real Jaeger.
"""

from __future__ import annotations

import logging

import pytest
import trio
from log_lines import Lines
from otlp_receiver import ReceivedSpan, Receiver, serve_otlp
from servers import api_client

from trio_books.api.otel import wanted
from trio_books.api.service import SUGGEST_BRANCH
from trio_books.core.query import FACETS, HITS_BRANCH, facet_branch
from trio_books.settings import Settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
BRANCHES = {f"es-{HITS_BRANCH}", *(f"es-{facet_branch(facet)}" for facet in FACETS)}
SERVER, CLIENT = 2, 3  # OTLP's SpanKind values


def test_export_is_wanted_only_with_an_endpoint_and_the_sdk_enabled() -> None:
    assert not wanted({})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not wanted(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}
    )


async def arrived(receiver: Receiver, trace_id: str, count: int) -> list[ReceivedSpan]:
    with trio.fail_after(30):
        while len(found := receiver.of_trace(trace_id)) < count:
            await trio.sleep(0.05)
    return found


@pytest.mark.elasticsearch
async def test_a_search_arrives_as_a_server_span_over_its_overlapping_branches(
    build: str,
    api_settings: Settings,
    es_url: str,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    log_lines: Lines,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_books.access")
    receiver = await nursery.start(serve_otlp)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "trio_books-test")
    async with api_client(build, api_settings) as http:
        answer = await http.get(
            "/api/v1/search/",
            params={"q": "dune"},
            headers={"traceparent": f"00-{TRACE}-{PARENT}-01"},
        )
        assert answer.status_code == 200
        spans = await arrived(receiver, TRACE, 1 + len(BRANCHES))
        # Not sampled by the caller: nothing is exported for it.
        unsampled = "0af7651916cd43dd8448eb211c80319c"
        await http.get(
            "/api/v1/search/",
            params={"q": "dune"},
            headers={"traceparent": f"00-{unsampled}-{PARENT}-00"},
        )
    # Serving has ended: the processor was flushed, so whatever was sent has arrived.
    assert receiver.of_trace(unsampled) == []
    (server,) = [span for span in spans if span.kind == SERVER]
    assert server.name == "GET /api/v1/search/"
    assert server.parent_id == PARENT
    assert server.service == "trio_books-test"
    assert server.attributes["http.response.status_code"] == 200
    tasks = {span.name: span for span in spans if span.kind == CLIENT}
    # The four branches (a short answer adds the suggestions, a follower).
    assert BRANCHES <= set(tasks) <= BRANCHES | {f"es-{SUGGEST_BRANCH}"}
    assert {tasks[name].parent_id for name in BRANCHES} == {server.span_id}
    assert {span.attributes["server.address"] for span in tasks.values()} == {es_url}
    # The branches ran together: each started before any of them ended.
    branches = [tasks[name] for name in BRANCHES]
    assert max(span.start_ns for span in branches) < min(span.end_ns for span in branches)
    assert all(
        server.start_ns <= span.start_ns <= span.end_ns <= server.end_ns for span in tasks.values()
    )
    # The request's log lines name the same trace.
    traced = [line for line in log_lines.lines if line.get("trace.id") == TRACE]
    assert any(line.get("logger") == "trio_books.access" for line in traced)
