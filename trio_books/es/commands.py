"""``python -m trio_books es start|stop|status|wipe``: the local Elasticsearch from the shell."""

from __future__ import annotations

import argparse

import httpx
import trio

from trio_books.es import local


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    es = commands.add_parser("es", help="run a local Elasticsearch for development and tests")
    actions = es.add_subparsers(dest="es_command", required=True, metavar="ACTION")
    for name, help_text in (
        ("start", "download (once) and start a local Elasticsearch on 127.0.0.1"),
        ("stop", "stop the Elasticsearch this command started"),
        ("status", "print URL, version, health and pid"),
        ("wipe", "delete the local node's data and logs"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.add_argument(
            "--port",
            type=_port,
            default=local.DEFAULT_PORT,
            help="HTTP port (of the first node; default %(default)s)",
        )
        action.add_argument(
            "--nodes",
            type=_node_count,
            default=1,
            help="nodes of one local cluster, on consecutive ports (default %(default)s)",
        )
        if name == "start":
            action.add_argument(
                "--version",
                dest="es_version",
                default=local.DEFAULT_VERSION,
                help="Elasticsearch version (default %(default)s)",
            )
        action.set_defaults(handler=run)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, not {port}")
    return port


def _node_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of nodes: {text!r}") from None
    if not 1 <= count <= 9:
        raise argparse.ArgumentTypeError(f"nodes must be 1-9, not {count}")
    return count


def run(args: argparse.Namespace) -> int:
    layouts = local.cluster_layouts(
        local.default_cache_dir(),
        nodes=args.nodes,
        port=args.port,
        version=getattr(args, "es_version", local.DEFAULT_VERSION),
    )
    if args.es_command == "start":
        return trio.run(_start, layouts)
    action = {"stop": _stop, "status": _status, "wipe": _wipe}[args.es_command]
    # Each node on its own, in port order; the worst exit code wins.
    return max(trio.run(action, layout) for layout in layouts)


async def _start(layouts: list[local.NodeLayout]) -> int:
    if len(layouts) == 1:
        print(await local.start(layouts[0]))
        return 0
    print(",".join(await local.start_cluster(layouts)))
    return 0


async def _stop(layout: local.NodeLayout) -> int:
    if not await local.stop(layout):
        print(f"no Elasticsearch started by trio_books runs on port {layout.port}")
    return 0


async def _status(layout: local.NodeLayout) -> int:
    pid = local.read_pid(layout)
    try:
        health = await local.cluster_health(layout.url)
        version = await local.server_version(layout.url)
    except httpx.HTTPError:
        print(f"url: {layout.url}\nstatus: not running" + (f"\npid: {pid}" if pid else ""))
        return 1
    print(
        f"url: {layout.url}\nversion: {version}\nhealth: {health.get('status')}\n"
        f"pid: {pid if pid is not None else '(not started by trio_books)'}"
    )
    return 0


async def _wipe(layout: local.NodeLayout) -> int:
    local.wipe(layout)
    print(f"wiped {layout.node_dir}")
    return 0
