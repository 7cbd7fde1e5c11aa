"""``python -m trio_books bench-load``: the loader's rate against Elasticsearch's own ceiling.

In one run, on the same Elasticsearch:

- the loader (``python -m trio_books load FILE``, a separate process, so its
  peak RSS is its own) loads a generated catalogue at two sizes;
- the ceiling: the same catalogue, cut into the same ``_bulk`` bodies
  beforehand, posted by parallel ``curl`` processes (each reusing one
  connection), at several concurrencies; the fastest counts.

Both write to an index made from the same body with refresh off, and are timed
from the first request to the last answer. Every index made is deleted.

Both reach the first node of the connection configuration with its TLS options
and credentials (curl reads the ``Authorization`` header from a private file,
never from its command line).
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

import orjson
import trio

from trio_books.core.bulk import ChunkBuilder, bulk_item
from trio_books.core.mapping import index_body
from trio_books.core.records import book_from_record
from trio_books.core.synthetic import DEFAULT_SEED, catalogue_lines
from trio_books.errors import UsageError
from trio_books.es.connection import ConnectionConfig, connection_config
from trio_books.es.environment import child_env
from trio_books.es.opening import open_elasticsearch
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
    config = connection_config(settings)
    # One node for both: curl posts to one, so the loader does too.
    config = config.replace(nodes=config.nodes[:1], timeout=300.0, pool_size=2, max_connections=2)
    if config.tls.assert_fingerprint is not None and config.nodes[0].scheme == "https":
        raise UsageError(
            "bench-load's curl cannot pin a certificate fingerprint: "
            "give TRIO_BOOKS_ES_CA_CERTS instead of TRIO_BOOKS_ES_SSL_ASSERT_FINGERPRINT"
        )
    prefix = f"bench-load-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="trio-books-bench-") as folder:
        tmp = Path(folder)
        try:
            return _bench(config, tmp, prefix, count, small, rounds, seed, settings.load_senders)
        finally:
            trio.run(_delete_indices, config, prefix)


async def _delete_indices(config: ConnectionConfig, prefix: str) -> None:
    async with open_elasticsearch(config, "trio") as es:
        found = await es.request("GET", f"/_resolve/index/{prefix}*")
        for entry in found.get("indices", []):
            await es.delete_index(entry["name"])


def _bench(
    config: ConnectionConfig,
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
        f"Elasticsearch {config.urls[0]}; {count:,} books in {len(bodies)} _bulk bodies of up to "
        f"{settings.load_chunk_docs} documents; loader senders: {senders}",
        flush=True,
    )

    curl_options = _curl_options(config, tmp)
    small_run = _run_loader(catalogues[small], f"{prefix}-small", config)
    print(
        f"loader, {small:,} books: {small_run.rate:,.0f} books/s, peak RSS {small_run.peak_rss_mb:.0f} MB",
        flush=True,
    )
    ceilings: dict[int, float] = {}
    for concurrency in CURL_CONCURRENCY:
        ceilings[concurrency] = _run_curl(
            config, curl_options, bodies, f"{prefix}-curl-{concurrency}", count, concurrency
        )
        print(f"ceiling, curl x{concurrency}: {ceilings[concurrency]:,.0f} books/s", flush=True)
    big_runs = []
    for round_ in range(rounds):
        run = _run_loader(catalogues[count], f"{prefix}-big", config)
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


def _run_loader(catalogue: Path, alias: str, config: ConnectionConfig) -> LoaderRun:
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
    # The benchmark's own file, replaced round after round.
    command += ["--rejects", str(catalogue.with_suffix(".rejects")), "--rejects-overwrite"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        # The loader reaches the same node, with the same TLS options and credentials.
        env=child_env(config, os.environ),
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


def _curl_options(config: ConnectionConfig, tmp: Path) -> list[str]:
    """curl's options for *config*'s TLS and credentials (repeated for every request)."""
    options: list[str] = []
    tls = config.tls
    if tls.ca_certs is not None:
        options += ["--cacert", tls.ca_certs]
    if not tls.verify_certs:
        options.append("--insecure")
    if tls.client_cert is not None:
        options += ["--cert", tls.client_cert]
    if tls.client_key is not None:
        options += ["--key", tls.client_key]
    if config.credentials is not None:
        # In a file only this user may read: a command line is visible to every user.
        header = tmp / "authorization.header"
        header.touch(mode=0o600)
        value = config.credentials.authorization.get_secret_value()
        header.write_text(f"authorization: {value}\n")
        options += ["--header", f"@{header}"]
    return options


async def _create_index(config: ConnectionConfig, index: str) -> None:
    body = index_body()
    body["settings"] = {**body["settings"], "refresh_interval": "-1"}
    async with open_elasticsearch(config, "trio") as es:
        await es.create_index(index, body)


async def _count_and_delete(config: ConnectionConfig, index: str) -> int:
    async with open_elasticsearch(config, "trio") as es:
        await es.refresh(index)
        found = await es.request("GET", f"/{index}/_count")
        await es.delete_index(index)
    return int(found["count"])


def _run_curl(
    config: ConnectionConfig,
    options: list[str],
    bodies: list[Path],
    index: str,
    count: int,
    concurrency: int,
) -> float:
    trio.run(_create_index, config, index)
    url = config.urls[0]
    shares = [bodies[k::concurrency] for k in range(concurrency)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(_curl_command(url, options, index, share)) for share in shares if share
    ]
    for process in processes:
        if process.wait() != 0:
            raise UsageError(f"curl failed with exit {process.returncode}")
    elapsed = time.perf_counter() - started
    indexed = trio.run(_count_and_delete, config, index)
    if indexed != count:
        raise UsageError(f"the ceiling run indexed {indexed} of {count} books")
    return count / elapsed


def _curl_command(url: str, options: list[str], index: str, bodies: list[Path]) -> list[str]:
    # One curl per share, --next chaining its requests over one kept-alive connection
    # (--next resets the options: each request carries its own).
    command = ["curl", "--silent", "--show-error", "--fail"]
    for number, body in enumerate(bodies):
        if number:
            command.append("--next")
        command += [
            *options,
            "--output",
            "/dev/null",
            "--header",
            "content-type: application/x-ndjson",
            "--data-binary",
            f"@{body}",
            f"{url}/{index}/_bulk?filter_path=errors",
        ]
    return command
