"""Hedging: the same search raced to two nodes; the first answer wins, the loser is cancelled.

A slow node makes a slow search. A hedged request asks one node, and if no
answer has come after a short delay, asks a second node the same question; the
first answer wins. In a nursery that is a few lines: the winner cancels the
nursery's scope, which cancels the loser's httpx call in flight, and closing
its connection tells Elasticsearch to stop working on it.

It needs two nodes of one cluster holding the index (``preference=_local`` keeps
each node's answer its own): list two of them in ``TRIO_BOOKS_ES_URLS``, e.g.
``http://127.0.0.1:9200,http://127.0.0.1:9201``. With one node the demo says so
and skips.

(asyncio's spelling is ``asyncio.wait(..., return_when=FIRST_COMPLETED)``, after
which cancelling the pending request is left to you.)

Run it: ``python -m trio_books demo hedging``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import trio

from trio_books.demos import standalone
from trio_books.demos.elastic import (
    WatchingTransport,
    demo_config,
    demo_index,
    open_demo_es,
    tags_by_year_body,
)
from trio_books.demos.narration import Narration
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import ConnectionConfig

BOOKS = 5_000
ROUNDS = 3
HEDGE_DELAY = 0.02  # seconds before asking the second node


@dataclass(frozen=True)
class HedgeRound:
    """One race: who answered first, and whether the loser's call was cancelled in flight."""

    primary: str
    winner: str
    winner_ms: float
    loser: str
    loser_cancelled_in_flight: bool


@dataclass(frozen=True)
class HedgeFacts:
    skipped: bool
    reason: str
    nodes: tuple[str, ...] = ()
    rounds: tuple[HedgeRound, ...] = ()


async def node_ids(configs: Sequence[ConnectionConfig]) -> list[tuple[str, str]]:
    """Each configuration's node: (id, name), asked of the node itself."""
    found = []
    for config in configs:
        async with open_demo_es(config) as es:
            answer = await es.request(
                "GET", "/_nodes/_local", params={"filter_path": "nodes.*.name"}
            )
        [(node_id, node)] = answer["nodes"].items()
        found.append((node_id, node["name"]))
    return found


async def race(
    nodes: dict[str, Elasticsearch],
    primary: str,
    index: str,
    narration: Narration,
    round_number: int,
) -> tuple[str, float]:
    """Ask *primary*, hedge to the other node after ``HEDGE_DELAY``; return the winner and its ms."""
    winner: list[tuple[str, float]] = []
    started = time.perf_counter()

    async def ask(label: str, es: Elasticsearch, delay: float) -> None:
        if delay:
            await trio.sleep(delay)
            narration.say(label, f"no answer after {delay * 1000:.0f} ms: sending the hedge")
        else:
            narration.say(label, "sending the search…")
        with narration.track(f"round {round_number} {label}"):
            await es.request(
                "POST",
                f"/{index}/_search",
                body=tags_by_year_body(),
                params={"preference": "_local"},
            )
        winner.append((label, (time.perf_counter() - started) * 1000))
        narration.say(label, "answered first: cancelling the other request")
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        order = [primary, *(label for label in nodes if label != primary)]
        for label, delay in zip(order, (0.0, HEDGE_DELAY), strict=True):
            nursery.start_soon(ask, label, nodes[label], delay, name=f"hedge {label}")
    narration.say("parent", f"the nursery closed: {winner[0][0]} won in {winner[0][1]:.0f} ms")
    return winner[0]


async def main(
    configs: Sequence[ConnectionConfig], labels: Sequence[str], index: str, narration: Narration
) -> list[HedgeRound]:
    # A client per node, each over a transport that watches its calls.
    transports = {
        label: WatchingTransport(config, "trio")
        for label, config in zip(labels, configs, strict=True)
    }
    rounds = []
    async with AsyncExitStack() as stack:
        nodes = {
            label: await stack.enter_async_context(open_demo_es(config, "trio", transports[label]))
            for label, config in zip(labels, configs, strict=True)
        }
        for es in nodes.values():  # warm-up: each node loads what the aggregation needs
            await es.request(
                "POST",
                f"/{index}/_search",
                body=tags_by_year_body(),
                params={"preference": "_local"},
            )
        for number in range(1, ROUNDS + 1):
            primary = labels[(number - 1) % 2]
            narration.section(
                f"Round {number}: {primary} first, the other after {HEDGE_DELAY * 1000:.0f} ms"
            )
            calls_before = {label: len(watched.calls) for label, watched in transports.items()}
            winner, winner_ms = await race(nodes, primary, index, narration, number)
            loser = next(label for label in labels if label != winner)
            cancelled = [
                call
                for call in transports[loser].calls[calls_before[loser] :]
                if call.task == f"hedge {loser}" and call.outcome == "cancelled"
            ]
            rounds.append(HedgeRound(primary, winner, winner_ms, loser, bool(cancelled)))
            narration.say(
                "transport",
                f"{loser}'s call was cancelled inside httpx, waiting for its answer"
                if cancelled
                else f"{loser} never had a call in flight to cancel",
            )
    return rounds


def run(config: ConnectionConfig | None = None, *, same_node_ok: bool = False) -> HedgeFacts:
    """Race a search between the first two nodes of *config* (default: the settings').

    Args:
        same_node_ok: race even when both URLs reach one node. The test suite
            does this on a single-node machine: the race and the cancellation
            are real, only the second node is not.
    """
    config = config or demo_config(all_nodes=True)
    print(__doc__)
    if len(config.nodes) < 2:
        reason = (
            "hedging needs two Elasticsearch nodes, and TRIO_BOOKS_ES_URLS lists one "
            f"({config.urls[0]}); list two nodes of one cluster to run it"
        )
        print(f"skipped: {reason}")
        return HedgeFacts(skipped=True, reason=reason)
    # One configuration per node: the same TLS and credentials, one node each.
    configs = [config.replace(nodes=(node,)) for node in config.nodes[:2]]
    found = trio.run(node_ids, configs)
    same_node = found[0][0] == found[1][0]
    if same_node and not same_node_ok:
        reason = f"both URLs reach the same node ({found[0][1]}): hedging needs two nodes"
        print(f"skipped: {reason}")
        return HedgeFacts(skipped=True, reason=reason)
    labels = [f"node-{number} ({name})" for number, (_, name) in enumerate(found, 1)]
    narration = Narration()
    if same_node:
        narration.explain(
            "Both URLs reach one node: the race and the cancellation below are real, "
            "but both requests compete for the same machine."
        )
    replicas = 0 if same_node else 1
    with demo_index("hedging", books=BOOKS, config=configs[0], replicas=replicas) as index:
        rounds = trio.run(main, configs, labels, index, narration)
        narration.timeline("every round: the winner's bar ends where the loser's is cancelled")
    for hedge in rounds:
        print(
            f"{hedge.primary} asked first; {hedge.winner} won in {hedge.winner_ms:.0f} ms; "
            f"{hedge.loser} {'was cancelled in flight' if hedge.loser_cancelled_in_flight else 'was not in flight'}"
        )
    return HedgeFacts(skipped=False, reason="", nodes=tuple(labels), rounds=tuple(rounds))


if __name__ == "__main__":
    sys.exit(standalone("hedging"))
