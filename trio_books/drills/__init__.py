"""Drills: each proves one hardening claim against a real server and prints its figures.

``python -m trio_books drill NAME [--quick] [--build asyncio]``; ``--quick`` is
the short version CI runs; ``--build`` picks the build served (default trio). Each drill starts its own server subprocess on a free loopback port,
with an index of its own on the Elasticsearch of ``TRIO_BOOKS_ES_URLS``.

- ``overload``: a flood past capacity is shed with fast 503s; memory stays flat.
- ``slow-clients``: byte-a-time headers, non-readers, idle keep-alives are cut off.
- ``shutdown``: SIGTERM under load loses no in-flight request (``--workers 1`` and ``2``).
- ``soak``: steady mixed load; descriptors, connections, memory, p99 stay level.
- ``fuzz``: schemathesis against the OpenAPI document.
"""

from __future__ import annotations

import argparse
import importlib

import trio

from trio_books.drills.report import DrillOptions, Report
from trio_books.errors import UsageError
from trio_books.es.connection import connection_config
from trio_books.serving import BUILDS
from trio_books.settings import invalid_settings, load_settings

DRILLS = {
    "overload": "trio_books.drills.overload",
    "slow-clients": "trio_books.drills.slow_clients",
    "shutdown": "trio_books.drills.shutdown",
    "soak": "trio_books.drills.soak",
    "fuzz": "trio_books.drills.fuzz",
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drill = commands.add_parser(
        "drill",
        help="run a hardening drill against a real server and print its figures",
        description=(
            "Run a hardening drill against a real server started for it. Exit codes: 0 the drill "
            "passed, 1 it failed (its figures say where), 2 bad use."
        ),
    )
    drill.add_argument("name", choices=[*DRILLS, "all"], help="which drill ('all': every one)")
    drill.add_argument("--quick", action="store_true", help="the short version CI runs")
    drill.add_argument(
        "--duration", type=float, help="seconds, for the soak (default 600, quick 30)"
    )
    drill.add_argument(
        "--build", choices=BUILDS, default="trio", help="which build to drill (default trio)"
    )
    drill.set_defaults(handler=run)


async def run_drill(name: str, options: DrillOptions) -> Report:
    """Run the drill *name* and return its report."""
    module = importlib.import_module(DRILLS[name])
    report: Report = await module.drill(options)
    return report


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    try:
        config = connection_config(load_settings())
    except ValueError as error:
        raise invalid_settings(error) from None
    # The first node, as the drills' figures count connections to one node.
    config = config.replace(nodes=config.nodes[:1])
    options = DrillOptions(es=config, quick=args.quick, duration=args.duration, build=args.build)
    names = [name for name in DRILLS if name != "fuzz"] if args.name == "all" else [args.name]
    failed = [name for name in names if not trio.run(run_drill, name, options).passed]
    if failed:
        print(f"failed drills: {', '.join(failed)}")
        return 1
    return 0
