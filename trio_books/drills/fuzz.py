"""Fuzz: schemathesis generates requests from the service's own OpenAPI document.

Against a real server and a real Elasticsearch holding the drill catalogue,
every operation gets valid and invalid inputs; the checks are that no answer
is a 5xx, every status is documented, every body and header matches its
documented schema and content type, valid requests are accepted and invalid
ones refused (schemathesis' ``--checks all``). ``nox -s fuzz`` runs it in
full (at least 2,000 requests); ``--quick`` runs about 200.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import trio

from trio_books.drills.catalogue import drill_index
from trio_books.drills.process import running_server
from trio_books.drills.report import DrillOptions, Report

# Every check schemathesis has: among them, valid requests must be accepted (2xx)
# and invalid ones refused (4xx), so the document states exactly what the service takes.
CHECKS = "all"
# Brings the cases meant as valid within the search's cross-parameter rules.
RULES_MODULE = "trio_books.drills.fuzz_rules"


async def drill(options: DrillOptions) -> Report:
    report = Report("fuzz")
    examples = 100 if options.quick else 1000
    # Shedding would answer 503 (documented) to a fuzzer's bursts; the fuzz is about input.
    env = {"TRIO_BOOKS_MAX_IN_FLIGHT": "1000", "TRIO_BOOKS_MAX_QUEUED": "1000"}
    with tempfile.TemporaryDirectory(prefix="trio_books-fuzz-") as folder:
        events = Path(folder) / "events.ndjson"
        async with (
            drill_index(options.es, "fuzz") as index,
            running_server(options.es, index, build=options.build, env=env) as server,
        ):
            command = [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                CHECKS,
                "--max-examples",
                str(examples),
                "--phases",
                "examples,coverage,fuzzing",
                "--seed",
                "1",
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(events),
                "--workers",
                "1",
            ]
            report.say(f"schemathesis, up to {examples} examples per operation, checks {CHECKS}")
            # Run in the temporary folder: schemathesis keeps a cache where it runs.
            result = await trio.run_process(
                command,
                check=False,
                capture_stdout=True,
                capture_stderr=True,
                cwd=folder,
                env={**os.environ, "SCHEMATHESIS_HOOKS": RULES_MODULE},
            )
        output = result.stdout.decode(errors="replace")
        statuses, failures = tally(events)
    print(output[-3000:])
    requests = sum(statuses.values())
    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    report.figures = {
        "requests": requests,
        "statuses": dict(sorted(statuses.items())),
        "5xx": server_errors,
        "failed_checks": failures,
        "exit_code": result.returncode,
    }
    report.say(
        f"{requests} requests; statuses {dict(sorted(statuses.items()))}; failed checks {failures}"
    )
    report.check(result.returncode == 0, f"schemathesis exited {result.returncode}")
    report.check(server_errors == 0, f"{server_errors} answers were 5xx")
    report.check(not failures, f"failed checks: {failures}")
    report.check(
        requests >= (150 if options.quick else 2000), f"only {requests} requests were made"
    )
    report.close()
    return report


def tally(events: Path) -> tuple[Counter[int], dict[str, int]]:
    """Response statuses and failed checks, from schemathesis' NDJSON event report."""
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    if not events.exists():
        return statuses, {}
    for line in events.read_text().splitlines():
        for status, check in _walk(json.loads(line)):
            if status is not None:
                statuses[status] += 1
            if check is not None:
                failures[check] += 1
    return statuses, dict(failures)


def _walk(node: object) -> list[tuple[int | None, str | None]]:
    """(status, failed check name) pairs found anywhere in one event."""
    found: list[tuple[int | None, str | None]] = []
    if isinstance(node, dict):
        response = node.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            found.append((response["status_code"], None))
        # A check's result: {"name", "status": "failure", "failure": {...}} (the
        # status as schemathesis writes it, lower case).
        failed = str(node.get("status")).lower() == "failure" and "failure" in node
        if failed and isinstance(node.get("name"), str):
            found.append((None, node["name"]))
        for key, value in node.items():
            if key != "response":
                found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found
