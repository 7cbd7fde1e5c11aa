"""The command line: ``python -m trio_books COMMAND``.

Every command reports bad use or a broken environment as one line on stderr
with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trio_books import drills, serving, tracing
from trio_books.bench import churn as bench_churn
from trio_books.bench import command as bench_command
from trio_books.demos import commands as demo_commands
from trio_books.errors import UsageError
from trio_books.es import commands as es_commands
from trio_books.load import bench as load_bench
from trio_books.load import commands as load_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trio_books",
        description="trio_books: a book-search service on Trio and Elasticsearch.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    es_commands.add_parser(commands)
    serving.add_parser(commands)
    tracing.add_parser(commands)
    load_commands.add_parser(commands)
    load_bench.add_parser(commands)
    demo_commands.add_parser(commands)
    bench_command.add_parser(commands)
    bench_churn.add_parser(commands)
    drills.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except UsageError as error:
        print(f"{parser.prog}: error: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    return result
