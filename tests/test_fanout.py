"""The Trio fan-out's rules, on a virtual clock: no Elasticsearch, only the scheduling logic.

Branches here are plain coroutines that sleep; what is tested is who gets
cancelled when, what counts as timed out, and what the timeline records.
"""

from __future__ import annotations

import pytest
import trio

from trio_books.api.branches import Answer, Branch, Call
from trio_books.core.timeline import Timeline
from trio_books.errors import DeadlineExceeded, ElasticsearchError
from trio_books.trio.fanout import fan_out


def sleeper(seconds: float, answer: Answer | None = None) -> Call:
    async def call(seconds_left: float) -> Answer:
        await trio.sleep(seconds)
        return answer or {"slept": seconds}

    return call


def failing(after: float, error: Exception) -> Call:
    async def call(seconds_left: float) -> Answer:
        await trio.sleep(after)
        raise error

    return call


def timeline() -> Timeline:
    return Timeline(cancelled=trio.Cancelled, clock=trio.current_time)


def outcomes(line: Timeline) -> dict[str, str]:
    return {span.name: span.outcome for span in line.spans}


async def test_branches_run_concurrently(autojump_clock: trio.abc.Clock) -> None:
    line = timeline()
    result = await fan_out(
        [Branch("a", sleeper(1), required=True), Branch("b", sleeper(3)), Branch("c", sleeper(2))],
        deadline=10,
        timeline=line,
    )
    assert set(result.answers) == {"a", "b", "c"}
    assert line.now() == pytest.approx(3)  # the slowest branch, not the sum
    assert outcomes(line) == {"a": "ok", "b": "ok", "c": "ok"}


async def test_optional_branch_past_the_deadline_leaves_a_partial_result(
    autojump_clock: trio.abc.Clock,
) -> None:
    line = timeline()
    result = await fan_out(
        [Branch("hits", sleeper(1), required=True), Branch("slow", sleeper(60))],
        deadline=2,
        timeline=line,
    )
    assert set(result.answers) == {"hits"}
    assert result.failures == {"slow": "timed out after 2000 ms"}
    assert line.now() == pytest.approx(2)
    assert outcomes(line) == {"hits": "ok", "slow": "timed out"}


async def test_optional_branch_error_is_recorded_not_raised(autojump_clock: trio.abc.Clock) -> None:
    result = await fan_out(
        [
            Branch("hits", sleeper(1), required=True),
            Branch("bad", failing(0.5, ElasticsearchError("boom"))),
        ],
        deadline=5,
        timeline=timeline(),
    )
    # The client is told the kind's fixed sentence; "boom" goes to the log line.
    assert result.failures == {"bad": "Elasticsearch could not carry out the search"}


async def test_required_failure_cancels_siblings_at_once(autojump_clock: trio.abc.Clock) -> None:
    line = timeline()
    with pytest.raises(ElasticsearchError, match="boom"):
        await fan_out(
            [
                Branch("hits", failing(1, ElasticsearchError("boom")), required=True),
                Branch("slow", sleeper(60)),
            ],
            deadline=30,
            timeline=line,
        )
    assert line.now() == pytest.approx(1)
    assert outcomes(line) == {"hits": "error", "slow": "cancelled"}


async def test_required_branch_past_the_deadline_is_504(autojump_clock: trio.abc.Clock) -> None:
    line = timeline()
    with pytest.raises(DeadlineExceeded, match="deadline of 1500 ms"):
        await fan_out(
            [Branch("hits", sleeper(60), required=True), Branch("facet", sleeper(0.5))],
            deadline=1.5,
            timeline=line,
        )
    assert outcomes(line) == {"hits": "timed out", "facet": "ok"}


async def test_each_call_is_told_the_time_left(autojump_clock: trio.abc.Clock) -> None:
    told: list[float] = []

    def recording(delay: float) -> Call:
        async def call(seconds_left: float) -> Answer:
            told.append(seconds_left)
            return {}

        async def delayed(seconds_left: float) -> Answer:
            await trio.sleep(delay)
            return {"then": True}

        return call if delay == 0 else delayed

    def follow(answer: Answer) -> list[Branch]:
        return [Branch("follower", recording(0))]

    await fan_out(
        [Branch("first", recording(1.5), required=True, then=follow)],
        deadline=4,
        timeline=timeline(),
    )
    assert told == [pytest.approx(2.5)]


async def test_followers_run_beside_branches_still_in_flight(
    autojump_clock: trio.abc.Clock,
) -> None:
    line = timeline()

    def then(answer: Answer) -> list[Branch]:
        return [Branch("suggest", sleeper(1))]

    result = await fan_out(
        [Branch("hits", sleeper(1), required=True, then=then), Branch("facet", sleeper(3))],
        deadline=10,
        timeline=line,
    )
    assert set(result.answers) == {"hits", "facet", "suggest"}
    spans = {span.name: span for span in line.spans}
    assert spans["suggest"].start == pytest.approx(1)
    assert spans["suggest"].end == pytest.approx(2)
    assert line.now() == pytest.approx(3)


async def test_outside_cancellation_marks_every_branch_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    line = timeline()
    with trio.move_on_after(1):
        await fan_out(
            [Branch("hits", sleeper(5), required=True), Branch("f", sleeper(5))],
            deadline=10,
            timeline=line,
        )
    assert outcomes(line) == {"hits": "cancelled", "f": "cancelled"}


async def test_each_span_is_handed_on_as_it_ends_with_its_errors_code(
    autojump_clock: trio.abc.Clock,
) -> None:
    ended: list[tuple[str, str, str | None, float]] = []
    line = Timeline(
        cancelled=trio.Cancelled,
        clock=trio.current_time,
        on_end=lambda span: ended.append((span.name, span.outcome, span.code, span.duration)),
    )
    await fan_out(
        [
            Branch("hits", sleeper(1), required=True),
            Branch("bad", failing(0.5, ElasticsearchError("boom"))),
            Branch("slow", sleeper(60)),
        ],
        deadline=2,
        timeline=line,
    )
    # In the order they ended, each once, its outcome already final.
    assert ended == [
        ("bad", "error", "elasticsearch_error", pytest.approx(0.5)),
        ("hits", "ok", None, pytest.approx(1)),
        ("slow", "timed out", None, pytest.approx(2)),
    ]
