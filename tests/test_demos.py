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
    for hedge in facts.rounds:
        assert hedge.winner != hedge.loser
    # Both requests go to the same node here, so on a busy machine it may answer
    # both in the same instant, leaving nothing to cancel; in the other rounds
    # the loser was still waiting on Elasticsearch when the nursery cancelled it.
    assert any(hedge.loser_cancelled_in_flight for hedge in facts.rounds), facts.rounds


def test_backpressure_bounded_channel_stays_within_its_bound(es_url: str) -> None:
    facts = backpressure.run(plain_config([es_url]))
    assert facts.trio_max_queued <= facts.bound
    assert facts.asyncio_max_queued == facts.items
    assert facts.asyncio_peak_kib > facts.trio_peak_kib


def test_task_tree_shows_the_fan_out_under_its_owner(es_url: str) -> None:
    facts = task_tree.run(plain_config([es_url]))
    assert facts.fan_out_owner == "search"
    assert facts.fan_out_children == FAN_OUT
    assert facts.in_flight_when_printed == len(FAN_OUT)
    assert any("task es-hits" in line for line in facts.tree)
    assert set(FAN_OUT) <= set(facts.asyncio_tasks_seen)


def test_demo_command_lists_the_demos(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in DEMOS)


def test_unknown_demo_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "nonesuch"]) == 2
    assert "unknown demo 'nonesuch'" in capsys.readouterr().err
