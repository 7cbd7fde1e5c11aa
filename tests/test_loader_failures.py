"""The loader when things go wrong for real: Elasticsearch pushing back, Ctrl-C, bad command lines.

Push-back comes from a second real node, started for this module with a write
thread pool of one thread and a queue of one, so concurrent ``_bulk`` requests
are refused with 429 exactly as a saturated production node refuses them. The
same node takes requests of 16 KiB at most (``http.max_content_length``), as a
managed service's front refuses larger ones with 413.
"""

from __future__ import annotations

import functools
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import trio
from conftest import TEST_ES_PORT, session_node
from loading import (
    live_count,
    load_files,
    load_synthetic,
    nested_limit,
    run_cli,
    targets,
    versions,
    write_ndjson,
)

from trio_books.core.mapping import index_body
from trio_books.core.progress import LoadStats
from trio_books.es import local
from trio_books.es.client import Elasticsearch
from trio_books.es.demo import ensure_demo_catalogue
from trio_books.es.opening import open_http_client
from trio_books.load.pipeline import LoadOptions, load_catalogue
from trio_books.load.report import RejectsLog
from trio_books.load.sources import SyntheticReader

PUSHBACK_PORT = TEST_ES_PORT + 2
PUSHBACK_SETTINGS = {
    "thread_pool.write.size": "1",
    "thread_pool.write.queue_size": "1",
    "http.max_content_length": "16kb",
}


@pytest.fixture(scope="module")
def pushback_url() -> Iterator[str]:
    """A node that refuses writes beyond one running and one queued; stopped and wiped after."""
    layout = session_node(PUSHBACK_PORT)
    # A node left by an interrupted run may lack the tiny queue: start afresh.
    trio.run(local.stop, layout)
    url = trio.run(functools.partial(local.start, layout, extra_settings=PUSHBACK_SETTINGS))
    yield url
    trio.run(local.stop, layout)
    local.wipe(layout)


async def test_writes_pushed_back_with_429_are_retried_until_indexed(
    pushback_url: str, index_name: str
) -> None:
    async with open_http_client(timeout=30, max_connections=16) as http:
        es = Elasticsearch(http, [pushback_url])
        pool = await es.request(
            "GET", "/_nodes/_local", params={"filter_path": "nodes.*.thread_pool.write"}
        )
        assert next(iter(pool["nodes"].values()))["thread_pool"]["write"]["queue_size"] == 1
        try:
            # Eight senders of small chunks against one write thread: most requests
            # find the queue full, and Elasticsearch answers their items with 429.
            report = await load_synthetic(es, index_name, 2000, senders=8, chunk_docs=10)
            assert report.published, report.problem
            assert report.stats.retried > 0
            assert report.stats.failed == 0
            assert await live_count(es, index_name) == 2000
        finally:
            with trio.CancelScope(shield=True):
                for name in await versions(es, index_name):
                    await es.delete_index(name)


async def test_a_document_too_large_for_elasticsearch_is_a_reject_and_the_rest_load(
    pushback_url: str, index_name: str, tmp_path: Path
) -> None:
    books = [{"book_id": n, "title": f"Book {n}", "authors": "A. Writer"} for n in range(1, 41)]
    # About 25 KB as a document: more than the node takes in one request.
    books.insert(
        20, {"book_id": 99, "title": "Big", "authors": [f"{'a' * 250} {n}" for n in range(98)]}
    )
    path = write_ndjson(tmp_path / "books.ndjson", books)
    async with open_http_client(timeout=30, max_connections=4) as http:
        es = Elasticsearch(http, [pushback_url])
        try:
            report, rejects, _console = await load_files(es, index_name, path, senders=1)
            assert report.published, report.problem
            assert (report.stats.indexed, report.stats.rejected, report.stats.failed) == (40, 1, 0)
            assert await live_count(es, index_name) == 40
            assert rejects.path is not None
            (written,) = [orjson.loads(line) for line in rejects.path.read_bytes().splitlines()]
            assert (written["kind"], written["line"]) == ("too_large", 21)
            assert "413" in written["reason"]
        finally:
            with trio.CancelScope(shield=True):
                for name in await versions(es, index_name):
                    await es.delete_index(name)


async def test_cancelling_a_load_leaves_the_alias_and_deletes_the_new_version(
    es: Elasticsearch, index_name: str
) -> None:
    first = await load_synthetic(es, index_name, 500)
    assert first.published
    stats = LoadStats()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def reload() -> None:
                reader = SyntheticReader(200_000, 2)
                options = LoadOptions(index_name, chunk_docs=100)
                await load_catalogue(es, reader, options, RejectsLog(None, io.StringIO()), stats)

            nursery.start_soon(reload)
            # The pipeline owns the counter and signals nothing: poll it.
            while stats.indexed < 1000:
                await trio.sleep(0.01)
            scope.cancel()
    assert scope.cancelled_caught
    assert 1000 <= stats.indexed < 200_000
    assert await targets(es, index_name) == [first.index]
    assert await versions(es, index_name) == [first.index]
    assert await live_count(es, index_name) == 500


async def test_ctrl_c_stops_the_command_and_leaves_the_alias(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    first = await load_synthetic(es, index_name, 300)
    command = [sys.executable, "-m", "trio_books", "load", "--synthetic", "200000"]
    command += ["--index", index_name, "--progress-every", "0.1"]
    process = await trio.lowlevel.open_process(
        command,
        stderr=subprocess.PIPE,
        env={**os.environ, "TRIO_BOOKS_ES_URLS": es_url},
        cwd=str(tmp_path),
    )
    assert process.stderr is not None
    seen = b""
    try:
        # Wait until books are being indexed, then press Ctrl-C.
        while b"progress:" not in seen or b"indexed 0 " in seen.rsplit(b"progress:", 1)[-1]:
            chunk = await process.stderr.receive_some()
            assert chunk, seen.decode()
            seen += chunk
        process.send_signal(signal.SIGINT)
        async for chunk in process.stderr:
            seen += chunk
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            await process.stderr.aclose()
    assert process.returncode == 130, seen.decode()
    assert b"interrupted" in seen
    assert b"Traceback" not in seen
    assert await targets(es, index_name) == [first.index]
    assert await versions(es, index_name) == [first.index]
    assert await live_count(es, index_name) == 300


async def test_bad_command_lines_exit_2_with_one_line(es_url: str, tmp_path: Path) -> None:
    write_ndjson(tmp_path / "ok.ndjson", [{"book_id": 1, "title": "t"}])
    (tmp_path / "mystery.txt").write_text("what is this\n")
    cases = [
        (["load", "missing.ndjson"], "no such file"),
        (["load", "ok.ndjson", "--format", "xml"], "unknown --format"),
        (["load", "mystery.txt"], "cannot tell the format"),
        (["load"], "nothing to load"),
        (["load", "--synthetic", "many"], "--synthetic must be a whole number"),
        (["load", "ok.ndjson", "--index", "Bad Name"], "--index must be"),
        (["load", "ok.ndjson", "--tags", "book_tags.csv"], "go together"),
        (["generate", "--count", "-5", "--out", "x.ndjson"], "--count must be at least 0"),
    ]
    for args, message in cases:
        done = await run_cli(*args, es_url=es_url, cwd=tmp_path)
        stderr = done.stderr.decode()
        assert done.returncode == 2, (args, stderr)
        assert message in stderr, (args, stderr)
        assert len(stderr.strip().splitlines()) == 1, (args, stderr)


async def test_the_command_exits_1_when_elasticsearch_refuses_a_book(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    crowded = {"book_id": 9, "title": "Crowded", "authors": [f"A{n}" for n in range(12)]}
    write_ndjson(tmp_path / "books.ndjson", [{"book_id": 1, "title": "Fine"}, crowded])
    async with nested_limit(es, index_name, 10):
        done = await run_cli(
            "load", "books.ndjson", "--index", index_name, es_url=es_url, cwd=tmp_path
        )
    assert done.returncode == 1, done.stderr.decode()
    assert b"not moved" in done.stderr
    assert (await es.request("GET", f"/_alias/{index_name}", allow_404=True)) is None
    refused = (tmp_path / "rejects.ndjson").read_bytes()
    assert b'"kind":"elasticsearch"' in refused
    again = ["load", "--synthetic", "50", "--index", index_name]
    # The next load in the same folder keeps that rejects file unless told otherwise.
    kept = await run_cli(*again, es_url=es_url, cwd=tmp_path)
    assert kept.returncode == 2
    assert b"--rejects-overwrite" in kept.stderr
    assert (tmp_path / "rejects.ndjson").read_bytes() == refused
    ok = await run_cli(*again, "--rejects-overwrite", es_url=es_url, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr.decode()
    assert b"indexed 50," in ok.stdout


async def test_generate_is_deterministic(es_url: str, tmp_path: Path) -> None:
    for name in ("a", "b"):
        done = await run_cli(
            "generate", "--count", "200", "--seed", "5", "--out", name, es_url=es_url, cwd=tmp_path
        )
        assert done.returncode == 0
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert len((tmp_path / "a").read_bytes().splitlines()) == 200


async def test_demo_catalogue_is_loaded_once_and_replaces_an_empty_index(
    es: Elasticsearch, index_name: str
) -> None:
    await es.create_index(index_name, index_body())  # as an "ensure index" step leaves it
    assert await ensure_demo_catalogue(es, index_name, count=300) == 300
    assert await live_count(es, index_name) == 300
    live = await targets(es, index_name)
    assert await ensure_demo_catalogue(es, index_name, count=300) == 0
    assert await targets(es, index_name) == live
