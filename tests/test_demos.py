"""Every demo, run against the real Elasticsearch, teaches what it says.

The demos run their own event loops (``trio.run``, and ``asyncio.run`` for the
asyncio contrasts), so these tests are synchronous. Each demo creates and
deletes its own ``demo-*`` index.
"""

from __future__ import annotations

import pytest

from trio_books.cli import main
from trio_books.demos import DEMOS, backpressure, deadlines, errors, fanout, hedging, task_tree
from trio_books.es.connection import plain_config

FAN_OUT = ("es-facet-languages", "es-facet-tags", "es-facet-years", "es-hits")


def test_fanout_in_a_nursery_beats_one_after_another(es_url: str) -> None:
    facts = fanout.run(plain_config([es_url]))
    assert len(facts.sequential_ms) == len(facts.nursery_ms) == fanout.ROUNDS
    assert facts.overlapped
    # The median of round-by-round ratios, with room for a busy 2-core machine.
    assert facts.ratio < 0.9, facts
    assert facts.median_nursery_ms < facts.median_sequential_ms, facts


def test_deadlines_cancel_the_call_in_flight(es_url: str) -> None:
    facts = deadlines.run(plain_config([es_url]))
    assert facts.move_on_cancelled_caught
    assert facts.fail_after_raised
    # Both gave up at the deadline, long before the search would have answered.
    assert facts.move_on_ms < facts.uncancelled_ms
    assert facts.fail_after_ms < facts.uncancelled_ms
    # Elasticsearch saw the connection close: its task list showed the search
    # marked cancelled (while the search wound down), or dropped it before it
    # could have answered on its own. Which one a poll catches depends on where
    # the search was; so does whether the first poll, sent as the client gave up,
    # still finds it (once in a CI run it was already gone: the close came first).
    assert facts.es_search_gone_ms is not None, facts
    dropped_early = facts.move_on_ms + facts.es_search_gone_ms < facts.uncancelled_ms
    assert facts.es_task_marked_cancelled or dropped_early, facts
    # Four slow searches were cancelled inside httpx, waiting for Elasticsearch.
    assert facts.cancelled_inside_httpx >= 4
    # Level-triggered: an unshielded cleanup await is cancelled too; a shielded one runs.
    assert not facts.unshielded_cleanup_ran
    assert facts.shielded_cleanup_ran
    # Edge-triggered asyncio: the same unshielded cleanup runs.
    assert facts.asyncio_timeout_raised
    assert facts.asyncio_cancelled_inside_httpx >= 1
    assert facts.asyncio_unshielded_cleanup_ran


def test_errors_gather_leaves_orphans_nursery_and_task_group_do_not(es_url: str) -> None:
    facts = errors.run(plain_config([es_url]))
    assert facts.trio_raised == "ExceptionGroup[ElasticsearchError]"
    assert facts.trio_orphans == ()
    assert set(facts.trio_cancelled) == set(errors.SLOW)
    assert facts.gather_raised == "ElasticsearchError"
    assert facts.gather_orphans == tuple(sorted(errors.SLOW))
    assert facts.gather_orphans_answered_after_ms > 0
    assert facts.taskgroup_raised == "ExceptionGroup[ElasticsearchError]"
    assert facts.taskgroup_orphans == ()
    assert set(facts.taskgroup_cancelled) == set(errors.SLOW)


def test_hedging_skips_cleanly_with_one_node(es_url: str) -> None:
    facts = hedging.run(plain_config([es_url]))
    assert facts.skipped
    assert "two Elasticsearch nodes" in facts.reason
    assert hedging.run(plain_config([es_url, es_url])).skipped  # two URLs, one node


def test_hedging_cancels_the_loser(es_url: str) -> None:
    # One node on this machine: race two connections to it (see hedging.run).
    facts = hedging.run(plain_config([es_url, es_url]), same_node_ok=True)
    assert not facts.skipped
    assert len(facts.rounds) == hedging.ROUNDS
    assert {hedge.primary for hedge in facts.rounds} == set(facts.nodes)  # each asked first
    # Both requests go to the same node here, so on a busy machine it may answer
    # both in the same instant, leaving nothing to cancel; in the other rounds
    # the loser was still waiting on Elasticsearch when the nursery cancelled it.
    assert any(hedge.loser_cancelled_in_flight for hedge in facts.rounds), facts.rounds


def test_backpressure_bounded_channel_stays_within_its_bound(es_url: str) -> None:
    facts = backpressure.run(plain_config([es_url]))
    # The lesson is the pace, not the channel's bound: the bounded producer made its
    # last book only once the consumer had indexed all but what the channel holds;
    # the unbounded one had made every book before the consumer indexed any.
    assert facts.trio_indexed_when_produced >= facts.items - facts.bound - 1, facts
    assert facts.asyncio_indexed_when_produced == 0, facts
    assert facts.asyncio_max_queued == facts.items
    assert facts.asyncio_peak_kib > facts.trio_peak_kib


def owners(tree: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Each task of a printed tree: (the task owning its nursery, where it waits)."""
    found: dict[str, tuple[str, str]] = {}
    stack: list[tuple[int, str]] = []  # (column, task name) of the open ancestors
    for line in tree:
        column = line.find("task ")
        if column < 0:
            continue  # a nursery's own line
        name, _, waits = line[column + len("task ") :].partition("   ⟶ ")
        while stack and stack[-1][0] >= column:
            stack.pop()
        found[name] = (stack[-1][1] if stack else "", waits)
        stack.append((column, name))
    return found


def test_task_tree_shows_the_fan_out_under_its_owner(es_url: str) -> None:
    facts = task_tree.run(plain_config([es_url]))
    # Read the tree the learner sees: the four calls hang under the search task that
    # opened their nursery, beside nothing else, each waiting at a line of the
    # service's own code (its fan-out or transport), not the demo's.
    tree = owners(facts.tree)
    assert {name for name, (owner, _) in tree.items() if owner == "search"} == set(FAN_OUT)
    for name in FAN_OUT:
        waits = tree[name][1]
        assert waits.startswith("trio_books/"), (name, waits)
        assert not waits.startswith("trio_books/demos/"), (name, waits)
    assert tree["search"][0] == tree["watcher"][0] != ""
    assert facts.in_flight_when_printed == len(FAN_OUT)
    assert set(FAN_OUT) <= set(facts.asyncio_tasks_seen)


def test_demo_command_lists_the_demos(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in DEMOS)


def test_unknown_demo_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "nonesuch"]) == 2
    assert "unknown demo 'nonesuch'" in capsys.readouterr().err
