"""``python -m trio_books demo [NAME]``: list the demos, or run one."""

from __future__ import annotations

import argparse

from trio_books.demos import DEMOS, run_demo


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run a narrated structured-concurrency demo against Elasticsearch",
        description="Without NAME, list the demos; with NAME, run that one against the "
        "Elasticsearch of TRIO_BOOKS_ES_URLS (it creates and deletes its own index).",
    )
    demo.add_argument("name", nargs="?", metavar="NAME", help="the demo to run")
    demo.set_defaults(handler=run)


def listing() -> str:
    width = max(len(name) for name in DEMOS)
    lines = ["Demos (run one with: python -m trio_books demo NAME):"]
    lines += [f"  {name:<{width}}  {idea}" for name, idea in DEMOS.items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        print(listing())
        return 0
    run_demo(args.name)
    return 0
