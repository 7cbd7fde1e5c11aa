"""The asyncio fan-out keeps the same rules as the Trio one (see ``test_fanout.py``).

asyncio has no virtual clock, so these use short real sleeps and assert only
outcomes (who answered, who timed out, who was cancelled), never durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from trio_books.api.branches import Answer, Branch, Call
from trio_books.asyncio.fanout import fan_out
from trio_books.core.timeline import Timeline
from trio_books.errors import DeadlineExceeded, ElasticsearchError

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def sleeper(seconds: float) -> Call:
    async def call(seconds_left: float) -> Answer:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    return call


def failing(after: float, error: Exception) -> Call:
    async def call(seconds_left: float) -> Answer:
        await asyncio.sleep(after)
        raise error

    return call


def outcomes(line: Timeline) -> dict[str, str]:
    return {span.name: span.outcome for span in line.spans}


def timeline() -> Timeline:
    return Timeline(cancelled=asyncio.CancelledError)


def test_optional_branch_past_the_deadline_leaves_a_partial_result() -> None:
    line = timeline()
    result = run(
        fan_out(
            [Branch("hits", sleeper(0.01), required=True), Branch("slow", sleeper(30))],
            deadline=0.3,
            timeline=line,
        )
    )
    assert set(result.answers) == {"hits"}
    assert result.failures == {"slow": "timed out after 300 ms"}
    assert outcomes(line) == {"hits": "ok", "slow": "timed out"}


def test_required_failure_cancels_siblings() -> None:
    line = timeline()
    with pytest.raises(ElasticsearchError, match="boom"):
        run(
            fan_out(
                [
                    Branch("hits", failing(0.05, ElasticsearchError("boom")), required=True),
                    Branch("slow", sleeper(30)),
                ],
                deadline=20,
                timeline=line,
            )
        )
    assert outcomes(line) == {"hits": "error", "slow": "cancelled"}


def test_required_branch_past_the_deadline_is_504() -> None:
    line = timeline()
    with pytest.raises(DeadlineExceeded, match="deadline of 200 ms"):
        run(
            fan_out(
                [Branch("hits", sleeper(30), required=True), Branch("facet", sleeper(0.01))],
                deadline=0.2,
                timeline=line,
            )
        )
    assert outcomes(line) == {"hits": "timed out", "facet": "ok"}


def test_followers_join_the_same_task_group() -> None:
    line = timeline()

    def then(answer: Answer) -> list[Branch]:
        return [Branch("suggest", sleeper(0.01))]

    result = run(
        fan_out(
            [
                Branch("hits", sleeper(0.01), required=True, then=then),
                Branch("facet", sleeper(0.2)),
            ],
            deadline=10,
            timeline=line,
        )
    )
    assert set(result.answers) == {"hits", "facet", "suggest"}
    spans = {span.name: span for span in line.spans}
    # The follower started after the hits answered and ended before the slow facet.
    assert spans["hits"].end is not None
    assert spans["suggest"].start >= spans["hits"].end
    assert spans["suggest"].end is not None
    assert spans["facet"].end is not None
    assert spans["suggest"].end <= spans["facet"].end
