"""``python -m trio_books load|generate|bench-load``: catalogues in, from the shell."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import trio

from trio_books.core.formats import Format
from trio_books.core.progress import LoadStats, summary
from trio_books.core.synthetic import DEFAULT_SEED, catalogue_lines
from trio_books.errors import TrioBooksError, UsageError
from trio_books.es.connection import ConnectionConfig, connection_config
from trio_books.es.opening import open_elasticsearch
from trio_books.load.pipeline import LoadOptions, LoadReport, load_catalogue
from trio_books.load.report import RejectsLog, show_progress
from trio_books.load.sources import (
    CatalogueReader,
    SyntheticReader,
    load_tag_join,
    open_catalogue_file,
)
from trio_books.settings import load_settings

FORMATS = {"auto": None, **{f.value: f for f in Format}}
INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")

LOAD_EPILOG = """\
exit codes:
  0    every book accepted from the input is indexed, counted, and live behind the alias
  1    Elasticsearch refused documents, the count check failed, or Elasticsearch
       failed or could not be reached: the alias was not moved
  2    bad use: missing file, unknown format, bad option value
  130  interrupted (Ctrl-C): every task cancelled, the alias was not moved

Invalid input records (no usable book_id, no title, not JSON) are rejected with
their line number and reason, written to the rejects file, and the load goes on:
they are reported, not a failure. Records repeating an earlier book_id are
skipped (the first is kept) and reported the same way, and so are a record
longer than TRIO_BOOKS_LOAD_MAX_RECORD_BYTES (1 MiB) and a document too large
for Elasticsearch to take in a request of its own (413). Other documents
Elasticsearch refuses are a failure (exit 1). Bytes that are not UTF-8 are read
as U+FFFD and reported: how many, and the first lines that hold them.

An index (not an alias) with the --index name stops the load with exit 2
unless --replace-index is given: making the load live deletes it.
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    load = commands.add_parser(
        "load",
        help="load catalogue files (or a synthetic catalogue) behind the live alias",
        description="Load books into a new version of the index, check it, then move the "
        "alias to it atomically (searches never see a half-built index).",
        epilog=LOAD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("paths", nargs="*", metavar="PATH", help="catalogue files, loaded together")
    load.add_argument(
        "--format",
        default="auto",
        help="auto (default: by extension and content), " + ", ".join(FORMATS)[6:],
    )
    load.add_argument("--index", help="the live alias (default: TRIO_BOOKS_INDEX, else books)")
    load.add_argument("--tags", metavar="BOOK_TAGS.csv", type=Path, help="goodbooks book_tags.csv")
    load.add_argument("--tag-names", metavar="TAGS.csv", type=Path, help="goodbooks tags.csv")
    load.add_argument("--synthetic", metavar="N", help="generate N books and load them (no PATH)")
    load.add_argument(
        "--seed", default=str(DEFAULT_SEED), help="seed of --synthetic (default %(default)s)"
    )
    load.add_argument(
        "--rejects",
        type=Path,
        default=Path("rejects.ndjson"),
        help="where rejects are written, one JSON object a line (default %(default)s; "
        "written only when there are rejects)",
    )
    load.add_argument(
        "--rejects-overwrite",
        action="store_true",
        help="replace an existing rejects file (without it, an existing one stops the load "
        "before it starts)",
    )
    load.add_argument(
        "--replace-index",
        action="store_true",
        help="when an index (not an alias) has the --index name, delete it as the load goes "
        "live (without it, such an index stops the load before it starts)",
    )
    load.add_argument(
        "--senders", help="concurrent _bulk requests (default TRIO_BOOKS_LOAD_SENDERS, 4)"
    )
    load.add_argument(
        "--progress-every",
        default="",
        metavar="SECONDS",
        help="progress interval (default 0.2 on a terminal, 5 otherwise)",
    )
    load.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    load.set_defaults(handler=run_load)

    generate = commands.add_parser(
        "generate",
        help="write a deterministic synthetic catalogue (NDJSON)",
        description="Write a synthetic catalogue, the same for the same seed, one book a line.",
    )
    generate.add_argument("--count", required=True, metavar="N", help="how many books")
    generate.add_argument("--seed", default=str(DEFAULT_SEED), help="default %(default)s")
    generate.add_argument(
        "--out", required=True, metavar="FILE", help="the file to write, - for stdout"
    )
    generate.set_defaults(handler=run_generate)


# ---------------------------------------------------------------- argument checks


def whole(text: str, option: str, *, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{option} must be a whole number, not {text!r}") from None
    if value < minimum:
        raise UsageError(f"{option} must be at least {minimum}, not {value}")
    return value


def seconds(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{option} must be a number of seconds, not {text!r}") from None
    if not 0 < value <= 3600:
        raise UsageError(f"{option} must be between 0 and 3600 seconds")
    return value


def index_name(text: str) -> str:
    if not INDEX_NAME.fullmatch(text):
        raise UsageError(f"--index must be lowercase letters, digits, '-' or '_', not {text!r}")
    return text


def run_async(function: Callable[..., Awaitable[int]], *args: Any) -> int:
    """``trio.run`` for a command: Ctrl-C comes out as itself, not inside an exception group."""
    try:
        return trio.run(function, *args)
    except BaseExceptionGroup as group:
        interrupted, _rest = group.split(KeyboardInterrupt)
        if interrupted is not None:
            raise KeyboardInterrupt from None
        raise


# ---------------------------------------------------------------- load


def run_load(args: argparse.Namespace) -> int:
    settings = load_settings()
    alias = index_name(args.index or settings.index)
    if args.format not in FORMATS:
        raise UsageError(f"unknown --format {args.format!r}: use one of {', '.join(FORMATS)}")
    options = LoadOptions.from_settings(settings, alias)
    options = dataclasses.replace(options, replace_index=args.replace_index)
    if args.senders is not None:
        senders = whole(args.senders, "--senders", minimum=1)
        options = dataclasses.replace(options, senders=senders, queue_batches=2 * senders)
    reader: CatalogueReader | SyntheticReader
    if args.synthetic is not None:
        if args.paths:
            raise UsageError("give PATHs or --synthetic N, not both")
        count = whole(args.synthetic, "--synthetic", minimum=1)
        reader = SyntheticReader(count, whole(args.seed, "--seed"))
        total: int | None = count
    else:
        if not args.paths:
            raise UsageError("nothing to load: give catalogue PATHs or --synthetic N")
        if (args.tags is None) != (args.tag_names is None):
            raise UsageError("--tags and --tag-names go together")
        files = [open_catalogue_file(Path(path), FORMATS[args.format]) for path in args.paths]
        join = load_tag_join(args.tags, args.tag_names) if args.tags and args.tag_names else None
        reader = CatalogueReader(files, join, settings.load_max_record_bytes)
        total = None
    tty = sys.stderr.isatty()
    every = (
        seconds(args.progress_every, "--progress-every")
        if args.progress_every
        else (0.2 if tty else 5.0)
    )
    rejects = RejectsLog(args.rejects, sys.stderr, overwrite=args.rejects_overwrite)
    rejects.check()
    # One client for the whole load; its pool has a connection per sender (and spare).
    # The project's own transport, whatever the service's es_transport: it never
    # leaves a request body half-iterated when Ctrl-C cancels a bulk call in flight.
    connections = options.senders + 2
    config = connection_config(settings).replace(
        transport="trio_books",
        pool_size=connections,
        max_connections=connections,
        timeout=settings.load_timeout,
    )
    return run_async(
        _load,
        config,
        reader,
        options,
        rejects,
        total,
        tty,
        every,
        args.json,
    )


async def _load(
    config: ConnectionConfig,
    reader: CatalogueReader | SyntheticReader,
    options: LoadOptions,
    rejects: RejectsLog,
    total: int | None,
    tty: bool,
    every: float,
    as_json: bool,
) -> int:
    stats = LoadStats(total=total)
    report: LoadReport | None = None
    failure: TrioBooksError | None = None
    async with open_elasticsearch(config, "trio") as es, trio.open_nursery() as nursery:
        # The progress task lives exactly as long as the load: cancelled when it ends.
        nursery.start_soon(lambda: show_progress(stats, sys.stderr, tty=tty, every=every))
        try:
            report = await load_catalogue(es, reader, options, rejects, stats)
        except TrioBooksError as error:
            failure = error
        finally:
            nursery.cancel_scope.cancel()
    if isinstance(failure, UsageError):
        raise failure  # one line and exit 2, as for any bad use
    problem = failure.message if failure else (report.problem if report else None)
    if as_json:
        fields: dict[str, object] = {
            **stats.as_dict(),
            "alias": options.alias,
            "published": bool(report and report.published),
        }
        fields.update(
            index=report.index if report else None,
            problem=problem,
            rejects_file=str(rejects.path) if rejects.count else None,
        )
        print(orjson.dumps(fields).decode())
    else:
        print(summary(stats))
        if rejects.count:
            print(f"{rejects.count:,} rejects written to {rejects.path}")
        if report and report.published and report.swap:
            replaced = " (replaced the index of that name)" if report.swap.replaced_concrete else ""
            print(
                f"alias {options.alias} -> {report.index}{replaced}; deleted old versions: {', '.join(report.deleted) or 'none'}"
            )
    if problem:
        print(f"load failed: {problem}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- generate


def run_generate(args: argparse.Namespace) -> int:
    count = whole(args.count, "--count")
    seed = whole(args.seed, "--seed")
    lines = catalogue_lines(count, seed)
    if args.out == "-":
        sys.stdout.buffer.writelines(lines)
        sys.stdout.buffer.flush()
        return 0
    out = Path(args.out)
    try:
        with out.open("wb") as file:
            file.writelines(lines)
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror}") from None
    print(f"wrote {count:,} books to {out}", file=sys.stderr)
    return 0
