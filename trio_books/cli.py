"""The command line: ``python -m trio_books COMMAND``.

Every command reports bad use or a broken environment as one line on stderr
with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from trio_books import __version__, drills, serving, tracing
from trio_books.bench import churn as bench_churn
from trio_books.bench import command as bench_command
from trio_books.demos import commands as demo_commands
from trio_books.errors import UsageError
from trio_books.es import commands as es_commands
from trio_books.load import bench as load_bench
from trio_books.load import commands as load_commands

# The commands, grouped as the help lists them.
GROUPS = {
    "serve and operate": ("serve", "es", "trace", "drill"),
    "data": ("load", "generate"),
    "learn": ("demo",),
    "measure": ("bench", "bench-churn", "bench-load"),
}


def program_name(argv0: str | None = None) -> str:
    """The command as the user typed it: ``trio-books`` or ``python -m trio_books``."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    name = os.path.basename(argv0)
    return DEFAULT_PROG if name in {"__main__.py", "-m", ""} else name


DEFAULT_PROG = "python -m trio_books"


def build_parser(prog: str = DEFAULT_PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="trio_books: a book-search service on Trio and Elasticsearch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
    group_commands(parser, commands)
    return parser


def group_commands(
    parser: argparse.ArgumentParser, commands: argparse._SubParsersAction[argparse.ArgumentParser]
) -> None:
    """List the commands by group in the help, in place of argparse's one flat list."""
    helps = {action.dest: action.help or "" for action in commands._choices_actions}
    listed = [name for names in GROUPS.values() for name in names]
    if sorted(listed) != sorted(helps):
        raise RuntimeError(f"GROUPS must name every command once: {sorted(helps)}")
    width = max(map(len, listed)) + 2
    parser.epilog = (
        "\n\n".join(
            f"{title}:\n" + "\n".join(f"  {name:<{width}}{helps[name]}" for name in names)
            for title, names in GROUPS.items()
        )
        + f"\n\n'{parser.prog} COMMAND --help' tells more of one."
    )
    commands._choices_actions.clear()
    commands.help = "one of the commands below"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command *argv* (by default the process's own, named as the user typed it)."""
    parser = build_parser(program_name() if argv is None else DEFAULT_PROG)
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
