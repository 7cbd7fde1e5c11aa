"""The asyncio build's admission gate: the same policy as the Trio gate, on asyncio's loop.

Outcomes, not speeds: who is admitted, who waits and gets a freed slot, who is
shed at once and who only after waiting ``queue_wait`` (never before it).
"""

from __future__ import annotations

import asyncio

from trio_books.api.admission import GateLimits
from trio_books.asyncio.admission import AsyncioGate
from trio_books.errors import Overloaded

LIMITS = GateLimits(max_in_flight=2, max_queued=1, queue_wait=0.2, retry_after=3)


def test_gate_admits_up_to_capacity_then_a_bounded_wait_then_sheds() -> None:
    async def main() -> tuple[dict[str, str], dict[str, float], AsyncioGate]:
        gate = AsyncioGate(LIMITS)
        outcomes: dict[str, str] = {}
        waited: dict[str, float] = {}
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def request(name: str) -> None:
            started = loop.time()
            try:
                async with gate.admit():
                    outcomes[name] = "admitted"
                    await release.wait()
            except Overloaded as error:
                outcomes[name] = f"shed, retry {error.headers()['Retry-After']}"
            waited[name] = loop.time() - started

        async with asyncio.TaskGroup() as group:
            for name in ("a", "b", "c"):
                group.create_task(request(name))
                await asyncio.sleep(0)  # each reaches the gate before the next starts
            assert gate.in_flight == 2
            await request("d")  # the queue's one place is c's: d is shed at once
            while "c" not in outcomes:
                await asyncio.sleep(0.01)
            release.set()
        return outcomes, waited, gate

    outcomes, waited, gate = asyncio.run(main())
    assert outcomes == {
        "a": "admitted",
        "b": "admitted",
        "c": "shed, retry 3",
        "d": "shed, retry 3",
    }
    assert waited["c"] >= LIMITS.queue_wait  # shed only after its wait
    assert (gate.counters.admitted, gate.counters.shed) == (2, 2)
    assert gate.counters.peak_in_flight == 2
    assert gate.in_flight == 0


def test_a_waiter_gets_a_freed_slot_and_newcomers_do_not_jump_the_queue() -> None:
    async def main() -> tuple[list[str], AsyncioGate]:
        gate = AsyncioGate(GateLimits(max_in_flight=1, max_queued=2, queue_wait=30, retry_after=1))
        admitted: list[str] = []
        free_a = asyncio.Event()

        async def hold(name: str, until: asyncio.Event | None = None) -> None:
            async with gate.admit():
                admitted.append(name)
                if until is not None:
                    await until.wait()

        async with asyncio.TaskGroup() as group:
            group.create_task(hold("a", free_a))
            await asyncio.sleep(0)
            group.create_task(hold("b"))
            await asyncio.sleep(0)
            free_a.set()
            # a's slot is b's: c arrives after the release, before b has run.
            group.create_task(hold("c"))
        return admitted, gate

    admitted, gate = asyncio.run(main())
    assert admitted == ["a", "b", "c"]
    assert gate.counters.shed == 0
    assert gate.in_flight == 0


def test_a_cancelled_waiter_gives_up_its_place() -> None:
    async def main() -> AsyncioGate:
        gate = AsyncioGate(GateLimits(max_in_flight=1, max_queued=1, queue_wait=30, retry_after=1))
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.admit():
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        # The queue's place is free again: the next request waits rather than being shed.
        third = asyncio.create_task(hold())
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(holder, third)
        return gate

    gate = asyncio.run(main())
    assert (gate.counters.admitted, gate.counters.shed, gate.in_flight) == (2, 0, 0)
