"""The benchmark harness: its outputs exist and are well formed (a test of the harness, not of speed).

``bench --quick`` runs for real here: real servers, real wrk, the real
Elasticsearch of the test session, in an index named for the test.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from conftest import SECURE_ES_PORT

from trio_books.bench import churn
from trio_books.bench.latency_standin import canned_search_answer
from trio_books.bench.options import parse_upstream
from trio_books.bench.queries import Vocabulary, build_queries
from trio_books.bench.report import RECORD_FIELDS, scaling
from trio_books.bench.wrk import checked_percentiles, http_request, lua_string
from trio_books.cli import main
from trio_books.core.query import FACETS, HITS_BRANCH, facet_branch
from trio_books.core.results import parse_search
from trio_books.es import security

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def run_bench(
    tmp_path: Path, es_url: str, index: str, *args: str
) -> tuple[Path, dict[str, Any]]:
    """``bench --quick`` on a 300-book catalogue in *index*, with *args*."""
    out = tmp_path / "bench"
    quick = ["--quick", "--out", str(out), "--index", index, "--catalogue-size", "300"]
    result = await trio.run_process(
        [sys.executable, "-m", "trio_books", "bench", *quick, *args],
        env={**os.environ, "TRIO_BOOKS_ES_URLS": es_url},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    return out, results


@pytest.mark.needs("wrk")
async def test_quick_bench_writes_well_formed_outputs(
    tmp_path: Path, es_url: str, index_name: str
) -> None:
    out, results = await run_bench(tmp_path, es_url, index_name, "--concurrency", "1,4")
    assert {"cpu", "cores", "memory_gib", "python", "load_average"} <= set(results["machine"])
    assert results["versions"]["elasticsearch-server"]
    assert results["versions"]["wrk"].startswith("wrk")
    runs = results["runs"]
    # One record per target, concurrency and round, each with every field.
    expected = {
        (target, concurrency, round_number)
        for target in ("trio", "asyncio", "es-direct")
        for concurrency in (1, 4)
        for round_number in (1, 2)
    }
    assert {(r["target"], r["concurrency"], r["round"]) for r in runs} == expected
    assert len(runs) == len(expected)
    for run in runs:
        assert set(RECORD_FIELDS) <= set(run)
        assert run["workload"] == "search"
        # No target inherits request-cache entries another filled.
        assert run["es_request_cache_cleared"] is True
        assert run["rps"] > 0
        assert run["errors"] == 0
        # A percentile wrk got wrong is None (see wrk.checked_percentiles), never 0.
        percentiles = [
            run[k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms") if run[k] is not None
        ]
        assert percentiles == sorted(percentiles)
        assert percentiles[0] > 0
        if run["target"] == "es-direct":
            assert run["cpu_s_per_1k"] is None
            assert run["peak_rss_mb"] is None
        else:
            assert run["cpu_s_per_1k"] > 0
            assert run["peak_rss_mb"] > 10
    report = (out / "report.md").read_text()
    for heading in (
        "## Targets",
        "## search, 1 concurrent client",
        "## search, 4 concurrent clients",
    ):
        assert heading in report
    assert "req/s vs asyncio" in report
    assert "req/s vs es-direct" in report
    assert "httpx" in report  # the report names each target's HTTP client
    for plot in ("rps.png", "latency.png"):
        data = (out / plot).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 5_000


@pytest.mark.needs("wrk")
async def test_quick_bench_against_the_latency_standin(
    tmp_path: Path, es_url: str, index_name: str
) -> None:
    out, results = await run_bench(
        tmp_path,
        es_url,
        index_name,
        "--targets",
        "trio,trio-otel,es-direct",
        "--concurrency",
        "2",
        "--rounds",
        "1",
        "--upstream",
        "latency:5ms",
    )
    assert results["options"]["upstream"] == "latency:5ms"
    assert {r["upstream"] for r in results["runs"]} == {"latency:5ms"}
    assert all(r["errors"] == 0 and r["rps"] > 0 for r in results["runs"])
    report = (out / "report.md").read_text()
    assert "latency stand-in, not Elasticsearch" in report
    # The traced target's spans left it: the sink stand-in took them, and the
    # report reads its rate against the untraced build's.
    assert results["otlp_sink"]["exports"] > 0
    assert results["otlp_sink"]["bytes"] > 100 * results["otlp_sink"]["exports"]
    assert "| workload | clients | trio-otel / trio |" in report
    assert re.search(r"\| search \| 2 \| \d+\.\d\d× \|", report)


@pytest.mark.needs("wrk")
async def test_quick_bench_interleaves_workloads_and_reads_scaling_against_ping(
    tmp_path: Path, es_url: str, index_name: str
) -> None:
    out, results = await run_bench(
        tmp_path,
        es_url,
        index_name,
        "--targets",
        "trio,trio-stock,es-direct,h11-trio",
        "--workload",
        "facets,ping",
        "--concurrency",
        "1,4",
        "--rounds",
        "1",
    )
    assert results["options"]["workload"] == "facets,ping"
    measured = {(r["workload"], r["target"], r["concurrency"]) for r in results["runs"]}
    # es-direct has no bare route to stand for ping, and the h11 reference serves
    # nothing but ping; every other pair is measured.
    assert measured == {
        (workload, target, concurrency)
        for workload in ("facets", "ping")
        for target in ("trio", "trio-stock", "es-direct", "h11-trio")
        for concurrency in (1, 4)
        if (workload, target) not in {("ping", "es-direct"), ("facets", "h11-trio")}
    }
    assert all(r["errors"] == 0 and r["rps"] > 0 for r in results["runs"])
    # The order of measurement is interleaved: workloads take turns within the round.
    order = [r["workload"] for r in results["runs"]]
    assert order.index("ping") > order.index("facets")
    report = (out / "report.md").read_text()
    assert "## facets, 4 concurrent clients" in report
    assert "## ping, 4 concurrent clients" in report
    assert "## Scaling from 1 to 4 clients, against the bare route" in report
    assert "| trio / trio-stock |" in report
    # Each serving stack's ping as a share of the physical reference's.
    assert "| clients | h11-trio req/s | trio / h11-trio |" in report
    assert "httpx's stock transport" in report  # the report names trio-stock's client
    for plot in ("rps-facets.png", "latency-facets.png", "rps-ping.png", "latency-ping.png"):
        assert (out / plot).read_bytes().startswith(PNG_MAGIC)


@pytest.mark.needs("wrk")
async def test_quick_bench_over_tls_counts_connections_and_keeps_secrets_out(
    tmp_path: Path, es_url: str, index_name: str, secure_es: security.SecureInfo
) -> None:
    admin = secure_es.credentials("admin")
    try:
        out, results = await run_bench(
            tmp_path,
            es_url,
            index_name,
            "--targets",
            "trio,trio-tls,fastapi-tls",
            "--workload",
            "facets",
            "--concurrency",
            "2",
            "--rounds",
            "1",
            "--secure-es",
            str(SECURE_ES_PORT),
        )
    finally:
        with trio.CancelScope(shield=True):
            async with httpx.AsyncClient(
                base_url=secure_es.url,
                verify=secure_es.ssl_context(),
                auth=(admin.username, admin.password),
                timeout=30,
            ) as http:
                await http.delete(f"/{index_name}", params={"ignore_unavailable": "true"})
    assert results["options"]["secure_es"] == SECURE_ES_PORT
    assert {r["target"] for r in results["runs"]} == {"trio", "trio-tls", "fastapi-tls"}
    assert all(r["errors"] == 0 and r["rps"] > 0 for r in results["runs"])
    # The project's transport logs its counters as the server stops; the official client has none.
    connections = results["connections"]
    assert set(connections) == {"trio", "trio-tls"}
    for row in connections.values():
        assert row["es_connections_opened"] >= 1
        assert row["es_connections_reused"] >= 1
        assert row["searches"] > 0
        assert row["turns"] == 2  # a warm-up and one measurement
    report = (out / "report.md").read_text()
    assert "| facets | 2 | " in report.split("## TLS")[1]
    assert "## Connections to Elasticsearch" in report
    # No password reaches the outputs: reports, wrk scripts, server logs.
    secrets = [secure_es.reader.password.encode(), secure_es.loader.password.encode()]
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(secret in data for secret in secrets), path


def test_tls_targets_need_a_secured_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick", "--targets", "trio-tls"]) == 2
    assert "--secure-es PORT" in capsys.readouterr().err


def test_scaling_is_rps_at_the_high_level_over_the_low() -> None:
    summary = {
        ("facets", "trio", 8): {"rps": 400.0},
        ("facets", "trio", 64): {"rps": 380.0},
    }
    assert scaling(summary, "facets", "trio", 8, 64) == pytest.approx(0.95)
    assert scaling(summary, "ping", "trio", 8, 64) is None


def test_the_standin_answer_parses_as_every_branch() -> None:
    answer = orjson.loads(canned_search_answer())
    facets_only = orjson.loads(canned_search_answer(page=0))
    # Facet requests ask for no documents ("size":0) and get none, as from Elasticsearch.
    assert facets_only["hits"]["hits"] == []
    branches = {HITS_BRANCH: answer} | {facet_branch(f): facets_only for f in FACETS}
    response = parse_search(branches)
    assert len(response.results) == 20
    assert response.facets.tags
    assert response.facets.years
    assert response.facets.languages


def test_query_list_is_seeded_and_mirrors_the_service_requests() -> None:
    vocabulary = Vocabulary(["dune", "war", "peace"], ["fantasy", "war"], ["eng"], [1950])
    first = build_queries(vocabulary, "mixed", seed=3, index="i", facet_size=20, count=50)
    again = build_queries(vocabulary, "mixed", seed=3, index="i", facet_size=20, count=50)
    assert first == again
    assert all(q.path.startswith("/api/v1/search/?") for q in first)
    assert all(len(q.es_requests) == 4 for q in first)
    assert all(path == "/i/_search" for q in first for _, path, _ in q.es_requests)


def test_impossible_wrk_percentiles_are_dropped() -> None:
    sane = checked_percentiles({"p50": 1000, "p90": 2000, "p99": 3000, "max": 4000})
    assert sane == {"p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0}
    broken = checked_percentiles({"p50": 127801, "p90": 0, "p99": 0, "max": 299940})
    assert broken == {"p50_ms": 127.801, "p90_ms": None, "p99_ms": None}


def test_lua_strings_carry_any_bytes() -> None:
    raw = http_request("POST", "/i/_search", "127.0.0.1:9200", b'{"q":"\\u00e9 \xc3\xa9"}')
    literal = lua_string(raw)
    assert "\n" not in literal
    assert literal.startswith('"')
    rng = random.Random(1)
    assert lua_string(bytes(rng.randrange(256) for _ in range(64))).isascii()


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--targets", "trio,tornado"],
        ["bench", "--concurrency", "1,x"],
        ["bench", "--upstream", "latency:fast"],
        ["bench", "--rounds", "2"],
        ["bench", "--catalogue-size", "10"],
        ["bench", "--workers", "0"],
        ["bench", "--workload", "facets,sleep"],
        ["bench", "--quick", "--targets", "trio,h11-trio", "--workload", "search"],
    ],
)
def test_bad_bench_arguments_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m trio_books: error: ")
    assert error.count("\n") == 1


def test_upstream_labels() -> None:
    assert parse_upstream("real").label() == "real"
    assert parse_upstream("latency:20ms").label() == "latency:20ms"


def test_bench_churn_counts_fewer_connections_with_drains(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The latency stand-in answers after 150 ms; every search's deadline is 100 ms.
    runs = churn.measure(searches=200, concurrency=16, latency_ms=150, timeout_ms=100)
    assert [(run.build, run.drain_seconds) for run in runs] == [
        ("trio", 0.0),
        ("trio", 2.0),
        ("asyncio", 0.0),
        ("asyncio", 2.0),
    ]
    for off, on in zip(runs[::2], runs[1::2], strict=True):
        assert set(off.statuses) <= {503, 504}, off  # every search missed its deadline
        assert off.drained == 0
        assert on.drained > 0
        # Without drains each cut call closed its connection; with them, most were kept.
        assert on.opened * 2 < off.opened, (off, on)
    assert main(["bench-churn", "--latency-ms", "90"]) == 2
    assert "--latency-ms must be longer" in capsys.readouterr().err
