"""Traces exported over OTLP/HTTP, received and decoded by a stand-in receiver (``otlp_receiver.py``).

A search sent with a ``traceparent`` must arrive as one server span under the
caller's span and one client span per Elasticsearch task under it, the four branches
overlapping in time; its log lines carry the same trace id. ``nox -s jaeger`` sends
the same to a real Jaeger.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys

import httpx
import pytest
import trio
from log_lines import Lines
from otlp_receiver import ReceivedSpan, Receiver, serve_otlp
from processes import ANNOUNCED, WORKER_RUNNING, Output
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
    unsampled = "0af7651916cd43dd8448eb211c80319c"
    async with api_client(build, api_settings) as http:
        # Not sampled by the caller: nothing is exported for it. Asked first: the
        # processor sends in order, so once the second search's spans have arrived,
        # any of the first's would have too.
        await http.get(
            "/api/v1/search/",
            params={"q": "dune"},
            headers={"traceparent": f"00-{unsampled}-{PARENT}-00"},
        )
        answer = await http.get(
            "/api/v1/search/",
            params={"q": "dune"},
            headers={"traceparent": f"00-{TRACE}-{PARENT}-01"},
        )
        assert answer.status_code == 200
        spans = await arrived(receiver, TRACE, 1 + len(BRANCHES))
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


@pytest.mark.elasticsearch
async def test_spans_still_queued_when_serving_stops_are_sent_before_it_exits(
    build: str, es_url: str, catalogue_index: str, nursery: trio.Nursery
) -> None:
    """``python -m trio_books serve``, stopped by SIGTERM with a search's spans still queued."""
    receiver = await nursery.start(serve_otlp)
    env = {
        **os.environ,
        "TRIO_BOOKS_ES_URLS": es_url,
        "TRIO_BOOKS_INDEX": catalogue_index,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        # Nothing leaves on the processor's schedule: only the flush at the stop sends.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
    }
    command = [sys.executable, "-m", "trio_books", "serve", "--build", build, "--port", "0"]
    process = await trio.lowlevel.open_process(
        command, env=env, stderr=subprocess.STDOUT, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    output = Output()
    trace_id = secrets.token_hex(16)
    try:
        async with trio.open_nursery() as reading:
            reading.start_soon(output.read, process.stdout)
            with trio.fail_after(60):
                url = (await output.wait_for(ANNOUNCED)).group(1).decode()
                await output.wait_for(WORKER_RUNNING)
            async with httpx.AsyncClient(base_url=url) as http:
                answer = await http.get(
                    "/api/v1/search/",
                    params={"q": "dune"},
                    headers={"traceparent": f"00-{trace_id}-{PARENT}-01"},
                )
            assert answer.status_code == 200
            await trio.sleep(0.5)
            assert receiver.of_trace(trace_id) == []  # still in the processor's queue
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(60):
                assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    names = {span.name for span in receiver.of_trace(trace_id)}
    assert names >= {"GET /api/v1/search/", *BRANCHES}, output.seen[-2000:]
