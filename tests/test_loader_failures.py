"""The loader when things go wrong for real: Elasticsearch pushing back, Ctrl-C, bad command lines.

Push-back comes from a second real node, started for this module with a write
thread pool of one thread and a queue of one, so concurrent ``_bulk`` requests
are refused with 429 exactly as a saturated production node refuses them. The
same node takes requests of 16 KiB at most (``http.max_content_length``), as a
managed service's front refuses larger ones with 413. Push-back that never
ends is the flood-stage disk block, put on a test's versions by an index
template; a whole request refused with 429 is the in-flight requests circuit
breaker, its limit lowered for the test.

A request caught in flight (``HoldingTransport``) stands for one Elasticsearch
has received but not yet taken up, as its write queue holds it.
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

import httpx
import orjson
import pytest
import trio
from conftest import TEST_ENGINE, TEST_ENGINE_VERSION, TEST_ES_PORT, session_node
from loading import (
    HoldingTransport,
    flood_stage_block,
    indices,
    inflight_limit,
    live_count,
    load_files,
    load_synthetic,
    nested_limit,
    run_cli,
    targets,
    versions,
    write_ndjson,
)

from trio_books.core.backoff import Backoff
from trio_books.core.bulk import bulk_body
from trio_books.core.mapping import index_body
from trio_books.core.progress import LoadStats
from trio_books.core.synthetic import synthetic_books
from trio_books.errors import ElasticsearchError
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


async def test_a_bulk_request_taken_up_after_a_cancelled_load_cannot_bring_its_version_back(
    es: Elasticsearch, es_url: str, index_name: str
) -> None:
    first = await load_synthetic(es, index_name, 100)
    holding = HoldingTransport(httpx.AsyncHTTPTransport())
    async with open_http_client(timeout=30, max_connections=4, transport=holding) as http:
        loader = Elasticsearch(http, [es_url])
        async with trio.open_nursery() as nursery:
            reload = functools.partial(
                load_synthetic, loader, index_name, 500, seed=2, senders=1, chunk_docs=50
            )
            nursery.start_soon(reload)
            with trio.fail_after(30):
                await holding.arrived.wait()
            # Ctrl-C while the first _bulk request is in flight: the load deletes its version.
            nursery.cancel_scope.cancel()
    assert holding.held is not None
    assert await versions(es, index_name) == [first.index]
    # Only now does Elasticsearch take that request up, as sent.
    late = await es.http.request(
        "POST",
        holding.held.url,
        content=holding.held.content,
        headers={"content-type": holding.held.headers["content-type"]},
    )
    assert late.status_code == 200, late.text
    # Neither the version nor an index named like its write alias came back...
    assert await indices(es, index_name) == [first.index]
    # ...since Elasticsearch refused every book, the alias being gone.
    refused = [item["index"] for item in late.json()["items"]]
    assert [item["status"] for item in refused] == [404] * 50
    assert {item["error"]["type"] for item in refused} == {"index_not_found_exception"}
    assert await targets(es, index_name) == [first.index]
    assert await live_count(es, index_name) == 100


async def test_a_version_deleted_during_the_load_stops_it_with_one_error_not_a_reject_per_book(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    first = await load_synthetic(es, index_name, 100)
    holding = HoldingTransport(httpx.AsyncHTTPTransport())
    console = io.StringIO()
    rejects = RejectsLog(tmp_path / "rejects.ndjson", console)
    async with open_http_client(timeout=30, max_connections=4, transport=holding) as http:
        loader = Elasticsearch(http, [es_url])

        async def reload() -> None:
            options = LoadOptions(index_name, senders=1, chunk_docs=50)
            with pytest.raises(ElasticsearchError, match="deleted during the load"):
                await load_catalogue(loader, SyntheticReader(500, 2), options, rejects)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reload)
            with trio.fail_after(30):
                await holding.arrived.wait()
            (new,) = [name for name in await versions(es, index_name) if name != first.index]
            await es.delete_index(new)  # by someone else, while a request is in flight
            holding.release.set()
    assert rejects.count == 0, console.getvalue()
    assert not (tmp_path / "rejects.ndjson").exists()
    assert await indices(es, index_name) == [first.index]
    assert await targets(es, index_name) == [first.index]


async def test_the_command_gives_up_after_load_max_retries_exits_1_and_leaves_the_alias(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    first = await load_synthetic(es, index_name, 100)
    retries = {
        "TRIO_BOOKS_LOAD_MAX_RETRIES": "2",
        "TRIO_BOOKS_LOAD_BACKOFF_FIRST": "0.01",
        "TRIO_BOOKS_LOAD_BACKOFF_CAP": "0.05",
    }
    command = ["load", "--synthetic", "30", "--index", index_name, "--json"]
    async with flood_stage_block(es, index_name):
        done = await run_cli(
            *command, "--rejects", "refused.ndjson", es_url=es_url, cwd=tmp_path, env=retries
        )
    assert done.returncode == 1, done.stderr.decode()
    summary = orjson.loads(done.stdout.splitlines()[-1])
    counts = [summary[key] for key in ("accepted", "indexed", "failed", "retried")]
    # One request of 30 books, sent three times, refused each time.
    assert counts == [30, 0, 30, 60]
    assert summary["published"] is False
    assert b"load failed:" in done.stderr
    assert await targets(es, index_name) == [first.index]
    assert await versions(es, index_name) == [first.index]
    if TEST_ENGINE.name == "opensearch":
        # OpenSearch refuses a blocked index's request as a whole: one error names it.
        assert "429 (cluster_block_exception)" in summary["problem"]
        return
    # Elasticsearch refuses it book by book: the refused books are rejects.
    assert "not moved" in summary["problem"]
    assert summary["rejects_file"] == "refused.ndjson"
    refused = [
        orjson.loads(line) for line in (tmp_path / "refused.ndjson").read_bytes().splitlines()
    ]
    assert [reject["line"] for reject in refused] == list(range(1, 31))
    assert {(reject["kind"], reject["reason"]) for reject in refused} == {
        ("elasticsearch", "429 gave up after 2 retries: write queue full (429)")
    }


async def test_a_request_refused_as_a_whole_with_429_is_sent_again_whole_until_taken(
    es: Elasticsearch, index_name: str
) -> None:
    if TEST_ENGINE.name == "elasticsearch" and int(TEST_ENGINE_VERSION.split(".")[0]) >= 9:
        pytest.skip(
            "Elasticsearch 9 streams _bulk bodies past the in-flight requests breaker, and no "
            "setting it takes at run time refuses a _bulk request as a whole"
        )
    stats = LoadStats()
    # Three requests of 100 books (about 52 KB each); a retry at most every 50 ms.
    options = LoadOptions(index_name, chunk_docs=100, backoff=Backoff(0.01, 0.05, 10_000))
    # The limit is lifted on leaving the block, before the nursery waits for the load.
    async with trio.open_nursery() as nursery, inflight_limit(es, "32kb"):
        # The premise: such a request is refused as a whole, before any item is read.
        body = bulk_body(None, synthetic_books(100, 4))
        status, content = await es.post_bulk(f"{index_name}-probe", body, require_alias=True)
        assert status == 429, content
        assert orjson.loads(content)["error"]["type"] == "circuit_breaking_exception"

        async def reload() -> None:
            reader = SyntheticReader(300, 4)
            report = await load_catalogue(
                es, reader, options, RejectsLog(None, io.StringIO()), stats
            )
            assert report.published, report.problem

        nursery.start_soon(reload)
        # The pipeline signals nothing: poll its counters.
        with trio.fail_after(60):
            while stats.retried < 200:
                await trio.sleep(0.01)
        assert stats.indexed == 0
    assert (stats.indexed, stats.failed) == (300, 0)
    # Every retry sent a whole request again: 100 books each time.
    assert stats.retried % 100 == 0
    assert await live_count(es, index_name) == 300
    assert await indices(es, index_name) == await targets(es, index_name)


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
