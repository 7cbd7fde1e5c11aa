"""W3C trace context, without a server: which headers are taken, what a request's context is,
and how a timeline's spans are parented."""

from __future__ import annotations

import pytest
import trio

from trio_books.api.branches import Answer, Branch
from trio_books.core.timeline import Timeline
from trio_books.core.trace_context import (
    TraceContext,
    incoming_context,
    new_span_id,
    new_trace_id,
    parse_traceparent,
)
from trio_books.trio.fanout import fan_out

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (VALID, (TRACE, PARENT, 1)),
        (f"00-{TRACE}-{PARENT}-00", (TRACE, PARENT, 0)),
        (f" {VALID} ", (TRACE, PARENT, 1)),
        # A later version may add fields; version 00 may not.
        (f"01-{TRACE}-{PARENT}-01-more", (TRACE, PARENT, 1)),
        (f"{VALID}-more", None),
        (f"ff-{TRACE}-{PARENT}-01", None),
        (f"00-{'0' * 32}-{PARENT}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE.upper()}-{PARENT}-01", None),
        (f"00-{TRACE[:-1]}-{PARENT}-01", None),
        (f"00-{TRACE}-{PARENT}-1", None),
        ("", None),
        ("garbage", None),
    ],
)
def test_a_traceparent_is_taken_only_in_its_exact_form(
    header: str, parsed: tuple[str, str, int] | None
) -> None:
    assert parse_traceparent(header) == parsed


def test_a_request_joins_the_callers_trace_with_a_span_of_its_own() -> None:
    context = incoming_context(VALID, "congo=t61rcWkgMzE")
    assert (context.trace_id, context.parent_id, context.flags) == (TRACE, PARENT, 1)
    assert context.span_id != PARENT
    assert len(context.span_id) == 16
    assert context.state == "congo=t61rcWkgMzE"
    assert context.traceparent() == f"00-{TRACE}-{context.span_id}-01"
    assert context.traceparent("b7ad6b7169203331") == f"00-{TRACE}-b7ad6b7169203331-01"


@pytest.mark.parametrize("state", ["a=\x00b", "x" * 513, ""])
def test_a_tracestate_that_could_not_be_passed_on_is_dropped(state: str) -> None:
    assert incoming_context(VALID, state).state is None


def test_without_a_valid_traceparent_a_new_trace_starts_and_its_state_is_dropped() -> None:
    first = incoming_context("00-nonsense", "congo=t61rcWkgMzE")
    second = incoming_context(None, None)
    assert first.parent_id is None
    assert first.state is None
    assert first.trace_id != second.trace_id
    assert len(first.trace_id) == 32
    assert {new_trace_id() for _ in range(100)}.isdisjoint({"0" * 32})
    assert len({new_span_id() for _ in range(100)}) == 100


async def test_branches_are_the_requests_children_and_nested_tasks_their_branchs(
    autojump_clock: trio.abc.Clock,
) -> None:
    context = TraceContext(trace_id=TRACE, span_id="1111111111111111", parent_id=PARENT)
    line = Timeline(cancelled=trio.Cancelled, clock=trio.current_time, trace=context)

    async def with_an_attempt(seconds_left: float) -> Answer:
        with line.span("hits#first"):
            await trio.sleep(0.1)
        return {}

    async def plain(seconds_left: float) -> Answer:
        await trio.sleep(0.1)
        return {}

    await fan_out(
        [Branch("hits", with_an_attempt, required=True), Branch("facet-tags", plain)],
        deadline=5,
        timeline=line,
    )
    spans = {span.name: span for span in line.spans}
    assert spans["hits"].parent_id == spans["facet-tags"].parent_id == context.span_id
    assert spans["hits#first"].parent_id == spans["hits"].span_id
    assert len({span.span_id for span in line.spans}) == 3
