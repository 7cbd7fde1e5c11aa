"""``python -m trio_books es start|stop|status|wipe``: the local Elasticsearch from the shell.

``es start --engine opensearch --version V`` runs OpenSearch's test
distribution instead; the other actions find whichever engine runs on the port.

``--secure`` runs the node with TLS and file-realm users (``es start --secure``
prints the settings to paste, the reader's password included: that is the
point of this local development command, and nothing else prints it). The
other actions find a secure node by its ``secure.json`` without the flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import httpx
import trio

from trio_books.errors import LocalElasticsearchError
from trio_books.es import local, security
from trio_books.es.engines import ELASTICSEARCH, ENGINES


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    es = commands.add_parser(
        "es", help="run a local Elasticsearch (or OpenSearch) for development and tests"
    )
    actions = es.add_subparsers(dest="es_command", required=True, metavar="ACTION")
    for name, help_text in (
        ("start", "download (once) and start a local Elasticsearch or OpenSearch on 127.0.0.1"),
        ("stop", "stop the node this command started"),
        ("status", "print URL, engine, version, health and pid"),
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
        action.add_argument(
            "--secure",
            action="store_true",
            help=(
                "with TLS and file-realm users; prints the settings to paste"
                if name == "start"
                else "expect a secure node (one is found by its secure.json without this)"
            ),
        )
        if name == "start":
            action.add_argument(
                "--engine",
                choices=sorted(ENGINES),
                default=ELASTICSEARCH.name,
                help="which engine's test distribution (default %(default)s)",
            )
            action.add_argument(
                "--version",
                dest="es_version",
                default=None,
                help=(
                    "the engine's version (default: "
                    + ", ".join(f"{e.default_version} for {e.name}" for e in ENGINES.values())
                    + ")"
                ),
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
        version=getattr(args, "es_version", None),
        secure=args.secure,
        engine=ENGINES[getattr(args, "engine", ELASTICSEARCH.name)],
    )
    if args.es_command == "start":
        return trio.run(_start, layouts)
    layouts = [_detect_secure(layout, required=args.secure) for layout in layouts]
    action = {"stop": _stop, "status": _status, "wipe": _wipe}[args.es_command]
    # Each node on its own, in port order; the worst exit code wins.
    return max(trio.run(action, layout) for layout in layouts)


def _detect_secure(layout: local.NodeLayout, *, required: bool) -> local.NodeLayout:
    """The layout as provisioned: secure when its ``secure.json`` exists."""
    if security.secure_file(layout).exists():
        return dataclasses.replace(layout, secure=True)
    if required:
        raise LocalElasticsearchError(
            f"no secure Elasticsearch was provisioned on port {layout.port} "
            "(es start --secure makes one)"
        )
    return layout


async def _start(layouts: list[local.NodeLayout]) -> int:
    if len(layouts) == 1:
        urls = [await local.start(layouts[0])]
    else:
        urls = await local.start_cluster(layouts)
    if not layouts[0].secure:
        print(",".join(urls))
        return 0
    info = security.read_secure_info(layouts[0])
    if info is None:
        raise LocalElasticsearchError(
            f"cannot read {security.secure_file(layouts[0])}: was the node started by another user?"
        )
    print(secure_instructions(info, urls, security.secure_file(layouts[0])))
    return 0


def secure_instructions(info: security.SecureInfo, urls: list[str], secure_json: Path) -> str:
    """What ``es start --secure`` prints: the node's URL, its CA, and the settings to paste."""
    lines = [
        f"url: {','.join(urls)}",
        f"CA: {info.ca_certs}",
        f"CA SHA-256 fingerprint: {info.fingerprint}",
        *(f"export {key}={value}" for key, value in info.environment(urls=",".join(urls)).items()),
        f"(also in {secure_json}, readable by you only)",
    ]
    return "\n".join(lines)


async def _stop(layout: local.NodeLayout) -> int:
    if not await local.stop(layout):
        print(f"no node started by trio_books runs on port {layout.port}")
    return 0


async def _status(layout: local.NodeLayout) -> int:
    pid = local.read_pid(layout)
    secure = local.node_access(layout)
    if layout.secure and secure is None:
        raise LocalElasticsearchError(f"cannot read {security.secure_file(layout)}")
    try:
        health = await local.cluster_health(layout.url, secure=secure)
        engine = await local.server_info(layout.url, secure=secure)
    except httpx.HTTPError:
        print(f"url: {layout.url}\nstatus: not running" + (f"\npid: {pid}" if pid else ""))
        return 1
    # Never a password here: the CA and how to get the settings again.
    tls = f"\nCA: {secure.ca_certs}\nCA SHA-256 fingerprint: {secure.fingerprint}" if secure else ""
    print(
        f"url: {layout.url}\n"
        f"engine: {engine.title if engine else '?'}\nversion: {engine.version if engine else '?'}\n"
        f"health: {health.get('status')}\n"
        f"pid: {pid if pid is not None else '(not started by trio_books)'}{tls}"
    )
    return 0


async def _wipe(layout: local.NodeLayout) -> int:
    left = local.wipe(layout)
    if not left:
        print(f"wiped {layout.node_dir}")
        return 0
    print(f"could not delete all of {layout.node_dir}: {len(left)} left", file=sys.stderr)
    for entry in left[:10]:
        print(f"  {entry}", file=sys.stderr)
    return 1
