"""``python -m trio_books bench-load``: the loader's rate against Elasticsearch's own ceiling.

In one run, on the same Elasticsearch:

- the loader (``python -m trio_books load FILE``, a separate process, so its
  peak RSS is its own) loads a generated catalogue at two sizes;
- the ceiling: the same catalogue, cut into the same ``_bulk`` bodies
  beforehand, posted by parallel ``curl`` processes (each reusing one
  connection), at several concurrencies; the fastest counts.

Both write to an index made from the same body with refresh off, and are timed
from the first request to the last answer. Every index made is deleted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from trio_books.core.bulk import ChunkBuilder, bulk_item
from trio_books.core.mapping import index_body
from trio_books.core.records import book_from_record
from trio_books.core.synthetic import DEFAULT_SEED, catalogue_lines
from trio_books.errors import UsageError
from trio_books.load.commands import whole
from trio_books.settings import load_settings

CURL_CONCURRENCY = (2, 4, 8)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench-load",
        help="measure the loader against the same bodies posted by parallel curl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--count", default="200000", help="books in the big catalogue (default %(default)s)"
    )
    bench.add_argument(
        "--small", default="50000", help="books in the small one (default %(default)s)"
    )
    bench.add_argument("--seed", default=str(DEFAULT_SEED))
    bench.add_argument(
        "--rounds", default="2", help="loader runs on the big catalogue; the best counts"
    )
    bench.set_defaults(handler=run_bench)


@dataclass(frozen=True)
class LoaderRun:
    books: int
    rate: float
    wall: float
    peak_rss_mb: float


def run_bench(args: argparse.Namespace) -> int:
    count = whole(args.count, "--count", minimum=1)
    small = whole(args.small, "--small", minimum=1)
    rounds = whole(args.rounds, "--rounds", minimum=1)
    seed = whole(args.seed, "--seed")
    if shutil.which("curl") is None:
        raise UsageError("bench-load needs curl on PATH")
    settings = load_settings()
    url = settings.es_urls[0]
    prefix = f"bench-load-{os.getpid()}"
    with (
        tempfile.TemporaryDirectory(prefix="trio-books-bench-") as folder,
        httpx.Client(base_url=url, timeout=300) as http,
    ):
        tmp = Path(folder)
        try:
            return _bench(http, url, tmp, prefix, count, small, rounds, seed, settings.load_senders)
        finally:
            found = http.get(f"/_resolve/index/{prefix}*").json()
            for entry in found.get("indices", []):
                http.delete(f"/{entry['name']}")


def _bench(
    http: httpx.Client,
    url: str,
    tmp: Path,
    prefix: str,
    count: int,
    small: int,
    rounds: int,
    seed: int,
    senders: int,
) -> int:
    settings = load_settings()
    catalogues = {}
    for size in sorted({small, count}):
        path = tmp / f"catalogue-{size}.ndjson"
        with path.open("wb") as file:
            file.writelines(catalogue_lines(size, seed))
        catalogues[size] = path
    bodies = _prepare_bodies(
        catalogues[count], tmp / "bodies", settings.load_chunk_docs, settings.load_chunk_bytes
    )
    print(
        f"Elasticsearch {url}; {count:,} books in {len(bodies)} _bulk bodies of up to "
        f"{settings.load_chunk_docs} documents; loader senders: {senders}",
        flush=True,
    )

    small_run = _run_loader(catalogues[small], f"{prefix}-small", url)
    print(
        f"loader, {small:,} books: {small_run.rate:,.0f} books/s, peak RSS {small_run.peak_rss_mb:.0f} MB",
        flush=True,
    )
    ceilings: dict[int, float] = {}
    for concurrency in CURL_CONCURRENCY:
        ceilings[concurrency] = _run_curl(
            http, url, bodies, f"{prefix}-curl-{concurrency}", count, concurrency
        )
        print(f"ceiling, curl x{concurrency}: {ceilings[concurrency]:,.0f} books/s", flush=True)
    big_runs = []
    for round_ in range(rounds):
        run = _run_loader(catalogues[count], f"{prefix}-big", url)
        big_runs.append(run)
        print(
            f"loader, {count:,} books (round {round_ + 1}): {run.rate:,.0f} books/s "
            f"({run.wall:.1f} s end to end), peak RSS {run.peak_rss_mb:.0f} MB",
            flush=True,
        )
    best = max(big_runs, key=lambda run: run.rate)
    best_k = max(ceilings, key=lambda k: ceilings[k])
    ceiling = ceilings[best_k]
    print()
    print(f"loader      {best.rate:10,.0f} books/s  ({count:,} books, best of {rounds})")
    print(f"ceiling     {ceiling:10,.0f} books/s  (same bodies, curl x{best_k})")
    print(f"ratio       {best.rate / ceiling:10.2f}")
    print(
        f"peak RSS    {small_run.peak_rss_mb:7.0f} MB at {small:,} books, "
        f"{max(r.peak_rss_mb for r in big_runs):.0f} MB at {count:,} books"
    )
    return 0


def _prepare_bodies(catalogue: Path, folder: Path, docs: int, size: int) -> list[Path]:
    """The loader's own chunks, from the loader's own cleaning, written out as files."""
    folder.mkdir()
    builder = ChunkBuilder(docs, size)
    bodies: list[Path] = []

    def write(body: bytes) -> None:
        path = folder / f"{len(bodies):06d}.ndjson"
        path.write_bytes(body)
        bodies.append(path)

    with catalogue.open("rb") as file:
        for line_number, line in enumerate(file, start=1):
            book = book_from_record(orjson.loads(line))
            for chunk in builder.add(bulk_item(book, catalogue.name, line_number)):
                write(chunk.body())
    if (last := builder.flush()) is not None:
        write(last.body())
    return bodies


def _run_loader(catalogue: Path, alias: str, url: str) -> LoaderRun:
    command = [
        sys.executable,
        "-m",
        "trio_books",
        "load",
        str(catalogue),
        "--index",
        alias,
        "--json",
    ]
    command += ["--rejects", str(catalogue.with_suffix(".rejects"))]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TRIO_BOOKS_ES_URLS": url},
    )
    assert process.stdout is not None
    output = process.stdout.read()
    # wait4 gives this child's own resource usage: its peak RSS (KiB on Linux).
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise UsageError(f"the loader failed (exit {process.returncode}): {output.decode()[-300:]}")
    summary = orjson.loads(output.splitlines()[-1])
    return LoaderRun(summary["indexed"], summary["books_per_second"], wall, usage.ru_maxrss / 1024)


def _run_curl(
    http: httpx.Client, url: str, bodies: list[Path], index: str, count: int, concurrency: int
) -> float:
    body = index_body()
    body["settings"] = {**body["settings"], "refresh_interval": "-1"}
    http.put(f"/{index}", json=body).raise_for_status()
    shares = [bodies[k::concurrency] for k in range(concurrency)]
    started = time.perf_counter()
    processes = [subprocess.Popen(_curl_command(url, index, share)) for share in shares if share]
    for process in processes:
        if process.wait() != 0:
            raise UsageError(f"curl failed with exit {process.returncode}")
    elapsed = time.perf_counter() - started
    http.post(f"/{index}/_refresh").raise_for_status()
    indexed = http.get(f"/{index}/_count").json()["count"]
    http.delete(f"/{index}")
    if indexed != count:
        raise UsageError(f"the ceiling run indexed {indexed} of {count} books")
    return count / elapsed


def _curl_command(url: str, index: str, bodies: list[Path]) -> list[str]:
    # One curl per share, --next chaining its requests over one kept-alive connection.
    command = ["curl", "--silent", "--show-error", "--fail"]
    for number, body in enumerate(bodies):
        if number:
            command.append("--next")
        command += [
            "--output",
            "/dev/null",
            "--header",
            "content-type: application/x-ndjson",
            "--data-binary",
            f"@{body}",
            f"{url}/{index}/_bulk?filter_path=errors",
        ]
    return command
