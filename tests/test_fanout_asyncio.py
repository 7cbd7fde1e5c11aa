"""The asyncio fan-out keeps the same rules as the Trio one (see ``test_fanout.py``).

asyncio has no virtual clock, so nothing here races a clock: a branch that must
finish in time answers at once or when another branch lets it (an event), and
one that must not waits for ever. The tests assert only outcomes (who answered,
who timed out, who was cancelled), never durations.
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


def answering() -> Call:
    async def call(seconds_left: float) -> Answer:
        return {"answered": True}

    return call


def waiting_for(event: asyncio.Event | None = None) -> Call:
    """A call that answers when *event* is set; without one, never."""

    async def call(seconds_left: float) -> Answer:
        await (event or asyncio.Event()).wait()
        return {"waited": True}

    return call


def failing(error: Exception) -> Call:
    async def call(seconds_left: float) -> Answer:
        await asyncio.sleep(0)  # the siblings start first
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
            [Branch("hits", answering(), required=True), Branch("slow", waiting_for())],
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
                    Branch("hits", failing(ElasticsearchError("boom")), required=True),
                    Branch("slow", waiting_for()),
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
                [Branch("hits", waiting_for(), required=True), Branch("facet", answering())],
                deadline=0.2,
                timeline=line,
            )
        )
    assert outcomes(line) == {"hits": "timed out", "facet": "ok"}


def test_followers_join_the_same_task_group() -> None:
    line = timeline()

    async def main() -> Any:
        # The facet answers only once the follower has: it can only if the
        # follower runs beside it, not after every branch has answered.
        followed = asyncio.Event()

        def then(answer: Answer) -> list[Branch]:
            async def suggest(seconds_left: float) -> Answer:
                followed.set()
                return {"suggested": True}

            return [Branch("suggest", suggest)]

        return await fan_out(
            [
                Branch("hits", answering(), required=True, then=then),
                Branch("facet", waiting_for(followed)),
            ],
            deadline=10,
            timeline=line,
        )

    result = run(main())
    assert set(result.answers) == {"hits", "facet", "suggest"}
    spans = {span.name: span for span in line.spans}
    # The follower started after the hits answered and ended before the facet.
    assert spans["hits"].end is not None
    assert spans["suggest"].start >= spans["hits"].end
    assert spans["suggest"].end is not None
    assert spans["facet"].end is not None
    assert spans["suggest"].end <= spans["facet"].end


def test_each_span_is_handed_on_as_it_ends_with_its_errors_code() -> None:
    ended: list[tuple[str, str, str | None]] = []
    line = Timeline(
        cancelled=asyncio.CancelledError,
        on_end=lambda span: ended.append((span.name, span.outcome, span.code)),
    )
    run(
        fan_out(
            [
                Branch("hits", answering(), required=True),
                Branch("bad", failing(ElasticsearchError("boom"))),
                Branch("slow", waiting_for()),
            ],
            deadline=0.3,
            timeline=line,
        )
    )
    # Each once, its outcome already final; the one cut by the deadline last.
    assert sorted(ended[:2]) == [("bad", "error", "elasticsearch_error"), ("hits", "ok", None)]
    assert ended[2:] == [("slow", "timed out", None)]
