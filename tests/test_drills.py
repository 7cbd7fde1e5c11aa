"""The quick version of every drill, against a real server subprocess and the test Elasticsearch.

Assertions are on counts and outcomes (nothing failed, everything cut off,
exit code 0, memory bounded), never on speed: CI machines vary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trio_books.drills import run_drill
from trio_books.drills.fuzz import tally as fuzz_tally
from trio_books.drills.report import DrillOptions, Report
from trio_books.es.connection import plain_config

pytestmark = pytest.mark.elasticsearch

# The asyncio build has one shell, Hypercorn's own: it is drilled once, in the
# run whose Trio build serves on the lean shell (the default), not again in the
# run that changes only the Trio build's shell.
SHELL = os.environ.get("TRIO_BOOKS_SERVER_SHELL", "lean")
BUILDS = ["trio", "asyncio"] if SHELL == "lean" else ["trio"]


async def quick(name: str, es_url: str, build: str = "trio") -> Report:
    options = DrillOptions(es=plain_config([es_url]), quick=True, build=build)
    report = await run_drill(name, options)
    assert report.passed, report.problems
    return report


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.needs("wrk")
async def test_overload_is_shed_with_503_and_recovers(es_url: str, build: str) -> None:
    figures = (await quick("overload", es_url, build)).figures
    flood = figures["flood"]["wrk"]
    assert flood["shed"] > 0
    assert flood["bare_503"] == 0  # every 503 says when to come back
    # The flood: only 200 and 503, no socket error; the light load alone: all 200.
    assert (flood["late"], flood["other"], flood["socket_errors"]) == (0, 0, 0)
    assert figures["flood"]["probe_504"] == figures["flood"]["probe_other"] == 0
    assert figures["flood"]["probe_ok"] > 0  # the probe still got answers
    for phase in ("baseline", "recovery"):
        seen = figures[phase]
        assert seen["probe_requests"] > 0
        assert seen["probe_ok"] == seen["probe_requests"], (phase, seen)
    assert figures["peak_rss_mib"] < 3 * figures["rss_start_mib"]


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.needs("wrk")
async def test_slow_clients_are_cut_off(es_url: str, build: str) -> None:
    figures = (await quick("slow-clients", es_url, build)).figures
    for kind in ("trickling", "non-reading", "idle"):
        assert figures[kind]["cut_off"] == figures[kind]["clients"]


@pytest.mark.parametrize("build", BUILDS)
async def test_sigterm_loses_no_in_flight_request(es_url: str, build: str) -> None:
    figures = (await quick("shutdown", es_url, build)).figures
    # One worker; two, signalled through the parent; two, the whole process group signalled.
    for key, workers in (("workers_1", 1), ("workers_2", 2), ("workers_2_group", 2)):
        run = figures[key]
        assert run["failed_in_flight"] == 0
        assert run["in_flight_at_signal"] > 0
        assert run["exit_code"] == 0
        assert run["es_clients_closed"] == workers


async def test_soak_keeps_resources_level(es_url: str) -> None:
    figures = (await quick("soak", es_url)).figures
    assert figures["failures"] == 0
    assert figures["end"]["fds"] <= figures["start"]["fds"] + 5


def test_the_fuzz_tally_reads_failed_checks_as_schemathesis_writes_them(tmp_path: Path) -> None:
    # One event as schemathesis' NDJSON report has it: check results nested in the
    # scenario, statuses in lower case, a failed one with its failure.
    event = {
        "ScenarioFinished": {
            "status": "failure",
            "recorder": {
                "interactions": {"a1": {"response": {"status_code": 422}}},
                "checks": {
                    "a1": [
                        {"name": "not_a_server_error", "status": "success"},
                        {
                            "name": "positive_data_acceptance",
                            "status": "failure",
                            "failure": {"title": "Schema-valid request rejected"},
                        },
                    ]
                },
            },
        }
    }
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(event) + "\n")
    statuses, failures = fuzz_tally(events)
    assert statuses == {422: 1}
    assert failures == {"positive_data_acceptance": 1}


async def test_fuzz_finds_no_server_error_and_no_schema_breach(es_url: str) -> None:
    figures = (await quick("fuzz", es_url)).figures
    assert figures["5xx"] == 0
    assert figures["failed_checks"] == {}
