"""Safe defaults: security headers, the production preset, request ids and structured logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import trio
from quart.typing import TestClientProtocol as Client

from trio_books.api.admission import GateLimits
from trio_books.api.security import SELF_POLICY, add_content_security_policy
from trio_books.core.timeline import Span
from trio_books.core.timing import server_timing
from trio_books.errors import Overloaded
from trio_books.logs import JsonFormatter, bounded, request_id
from trio_books.settings import Settings, load_settings
from trio_books.trio.admission import TrioGate
from trio_books.trio.app import create_app

SEARCH = "/api/v1/search/"


async def test_json_answers_carry_security_headers(client: Client) -> None:
    for url in ("/", f"{SEARCH}?q=dune", f"{SEARCH}?size=0", "/nowhere"):
        response = await client.get(url)
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


async def test_docs_policy_allows_only_its_cdn_and_its_inline_script(client: Client) -> None:
    response = await client.get("/docs")
    policy = response.headers["Content-Security-Policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    sources = script_src.split()[1:]
    assert sources[0] == "https://cdnjs.cloudflare.com"
    assert len(sources) == 2
    assert sources[1].startswith("'sha256-")
    assert "'unsafe-inline'" not in script_src


async def test_a_page_can_register_its_own_policy(api_settings: Settings) -> None:
    app = create_app(api_settings)
    add_content_security_policy(app, "/ui", SELF_POLICY)

    @app.get("/ui/")
    async def page() -> str:
        return "<html></html>"

    async with app.test_app() as test_app:
        client = test_app.test_client()
        ui = await client.get("/ui/")
        ping = await client.get("/")
    assert ui.headers["Content-Security-Policy"] == SELF_POLICY
    assert ping.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_an_answers_own_security_headers_are_kept_and_not_doubled(client: Client) -> None:
    page = await client.get("/ui")
    assert page.status_code == 200
    # The page sets its own Cache-Control and policy; the defaults only fill the gaps.
    assert page.headers.get_list("Cache-Control") == ["no-cache"]
    assert len(page.headers.get_list("Content-Security-Policy")) == 1
    assert page.headers.get_list("X-Frame-Options") == ["DENY"]


def test_production_preset_turns_docs_and_trace_off_unless_set() -> None:
    production = load_settings(preset="production")
    assert (production.docs, production.allow_trace, production.openapi) == (False, False, True)
    explicit = load_settings(preset="production", docs=True)
    assert (explicit.docs, explicit.allow_trace) == (True, False)
    assert load_settings().docs
    assert load_settings().allow_trace


def test_production_preset_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_BOOKS_PRESET", "production")
    monkeypatch.setenv("TRIO_BOOKS_ALLOW_TRACE", "true")
    settings = load_settings()
    assert (settings.docs, settings.allow_trace) == (False, True)


@pytest.fixture
async def production_client(api_settings: Settings) -> AsyncIterator[Client]:
    settings = Settings(
        **{**api_settings.model_dump(exclude={"docs", "allow_trace"}), "preset": "production"}
    )
    async with create_app(settings).test_app() as test_app:
        yield test_app.test_client()


async def test_production_serves_no_docs_and_no_trace(production_client: Client) -> None:
    assert (await production_client.get("/docs")).status_code == 404
    assert (await production_client.get("/openapi.json")).status_code == 200
    traced = await production_client.get(f"{SEARCH}?q=dune&trace=1")
    assert traced.status_code == 422
    assert (await traced.get_json())["details"][0]["rule"] == "disabled"


def test_server_timing_without_tracing_names_branches_and_durations_only() -> None:
    spans = [
        Span("hits", 0.001, 0.020, outcome="ok"),
        Span("hits#first", 0.001, 0.015, outcome="lost a hedge"),
        Span("hits#hedge", 0.006, 0.020, outcome="ok"),
        Span("facet-tags", 0.001, 0.030, outcome="timed out"),
    ]
    detailed = server_timing(spans, 0.031)
    assert "es-hits#hedge;" in detailed
    assert "outcome=lost-a-hedge" in detailed
    assert server_timing(spans, 0.031, detailed=False) == (
        "es-hits;dur=19.0, es-facet-tags;dur=29.0, total;dur=31.0"
    )


async def test_production_server_timing_carries_no_attempts_or_outcomes(
    production_client: Client, client: Client
) -> None:
    production = (await production_client.get(f"{SEARCH}?q=dune")).headers["Server-Timing"]
    assert "es-hits;dur=" in production
    assert "desc=" not in production
    development = (await client.get(f"{SEARCH}?q=dune")).headers["Server-Timing"]
    assert 'desc="start=' in development


@pytest.mark.parametrize(
    ("host", "preset", "warned"),
    [
        ("0.0.0.0", "development", True),
        ("::", "development", True),
        ("0.0.0.0", "production", False),
        ("127.0.0.1", "development", False),
        ("::1", "development", False),
    ],
)
def test_serve_warns_when_the_development_preset_is_reachable_from_elsewhere(
    host: str, preset: str, warned: bool
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRIO_BOOKS_")},
        "TRIO_BOOKS_PRESET": preset,
        "TRIO_BOOKS_LOG_FORMAT": "text",
        "TRIO_BOOKS_ES_URLS": "http://127.0.0.1:9",
    }
    said: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "trio_books", "serve", "--host", host, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as server:
        assert server.stderr is not None
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = server.stderr.readline()
                if not line:
                    break
                said.append(line)
                if "starting trio_books" in line:
                    break
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert any("starting trio_books" in line for line in said), said
    warning = [line for line in said if "in the development preset" in line]
    assert bool(warning) is warned, said
    if warned:
        assert "WARNING" in warning[0]
        assert "TRIO_BOOKS_PRESET=production" in warning[0]


async def test_request_id_is_echoed_when_plain_and_made_otherwise(client: Client) -> None:
    given = await client.get("/", headers={"X-Request-Id": "lb-1234.abc"})
    assert given.headers["X-Request-Id"] == "lb-1234.abc"
    for hostile in ("x" * 65, "a b", '"},{"level":"error'):
        made = await client.get("/", headers={"X-Request-Id": hostile})
        assert made.headers["X-Request-Id"] != hostile
        assert len(made.headers["X-Request-Id"]) == 32
    assert request_id(None) != request_id(None)


async def test_access_log_is_json_with_request_id_and_bounded_input(
    api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api_settings.model_copy(update={"log_input_prefix": 20})
    caplog.set_level(logging.INFO, logger="trio_books.access")
    async with create_app(settings).test_app() as test_app:
        response = await test_app.test_client().get(
            SEARCH, query_string={"q": "harry " * 50}, headers={"X-Request-Id": "r-1"}
        )
    assert response.status_code == 200
    records = [r for r in caplog.records if r.name == "trio_books.access"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["status"] == 200
    assert entry["method"] == "GET"
    assert entry["path"] == SEARCH
    assert len(entry["query"]) <= 21
    assert entry["query"].endswith("…")
    assert entry["duration_ms"] > 0
    assert "harry harry harry harry" not in line


def test_bounded_cuts_and_marks() -> None:
    assert bounded("short", 10) == "short"
    assert bounded("x" * 100, 10) == "x" * 10 + "…"


def test_json_formatter_keeps_one_line_per_record() -> None:
    record = logging.makeLogRecord(
        {"name": "t", "levelname": "INFO", "msg": "line one\nline two", "path": "/a\n/b"}
    )
    line = JsonFormatter().format(record)
    assert line.count("\n") == 0
    assert json.loads(line)["path"] == "/a\n/b"


# ---------------------------------------------------------------- the admission gate


LIMITS = GateLimits(max_in_flight=2, max_queued=1, queue_wait=0.5, retry_after=3)


async def test_gate_admits_up_to_capacity_then_a_bounded_wait_then_sheds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = TrioGate(LIMITS)
    outcomes: dict[str, str] = {}
    release = trio.Event()

    async def request(name: str) -> None:
        try:
            async with gate.admit():
                outcomes[name] = f"admitted at {trio.current_time():.1f}"
                await release.wait()
        except Overloaded as error:
            outcomes[name] = (
                f"shed at {trio.current_time():.1f} retry {error.headers()['Retry-After']}"
            )

    async with trio.open_nursery() as nursery:
        for name in ("a", "b", "c", "d"):
            nursery.start_soon(request, name)
            await trio.sleep(0.01)
        await trio.sleep(1)
        release.set()
    # a and b hold the slots; c waits its 0.5 s and is shed; d finds the queue full.
    assert outcomes["a"].startswith("admitted")
    assert outcomes["b"].startswith("admitted")
    assert outcomes["c"] == "shed at 0.5 retry 3"
    assert outcomes["d"] == "shed at 0.0 retry 3"
    assert gate.counters.shed == 2
    assert gate.counters.peak_in_flight == 2
    assert gate.in_flight == 0


async def test_a_waiter_gets_a_freed_slot(autojump_clock: trio.testing.MockClock) -> None:
    gate = TrioGate(LIMITS)
    admitted: list[str] = []

    async def hold(name: str, seconds: float) -> None:
        async with gate.admit():
            admitted.append(name)
            await trio.sleep(seconds)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, "a", 0.2)
        nursery.start_soon(hold, "b", 5)
        await trio.sleep(0.01)
        nursery.start_soon(hold, "c", 0)
    # Trio may start a and b in either order; c waits for a's slot.
    assert sorted(admitted[:2]) == ["a", "b"]
    assert admitted[2] == "c"
    assert gate.counters.shed == 0


async def test_overloaded_search_is_503_with_retry_after(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"max_in_flight": 1, "max_queued": 0})
    app = create_app(settings)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        from trio_books.api.routes import SERVICE_KEY

        gate = app.extensions[SERVICE_KEY].gate
        async with gate.admit():
            shed = await client.get(f"{SEARCH}?q=dune")
            health = await client.get("/healthz")
        after = await client.get(f"{SEARCH}?q=dune")
    assert shed.status_code == 503
    assert shed.headers["Retry-After"] == "1"
    assert (await shed.get_json())["error"] == "overloaded"
    assert health.status_code == 200
    assert after.status_code == 200
