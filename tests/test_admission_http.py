"""The admission gate over HTTP, in both builds: MAX_IN_FLIGHT, MAX_QUEUED and QUEUE_WAIT.

A node paused with SIGSTOP holds the first search at work for as long as the
test needs; the second then finds the one slot taken and waits in the queue.
"""

from __future__ import annotations

import httpx
import pytest
import trio
from conftest import PausableNode
from servers import api_client

from trio_books.settings import Settings

SEARCH = "/api/v1/search/"


@pytest.mark.elasticsearch
async def test_a_search_past_max_in_flight_waits_queue_wait_then_is_503(
    build: str, pausable_node: PausableNode, paused_catalogue: str
) -> None:
    # Both builds: one search at work, one place in the queue for QUEUE_WAIT.
    settings = Settings(
        es_urls=[pausable_node.url],
        index=paused_catalogue,
        max_in_flight=1,
        max_queued=1,
        queue_wait=1.0,
        es_timeout=60.0,
        search_deadline=60.0,
    )
    async with api_client(build, settings) as http, trio.open_nursery() as nursery:
        pausable_node.pause()
        held: list[httpx.Response] = []

        async def first() -> None:
            held.append(await http.get(SEARCH, params={"q": "dune"}, timeout=60.0))

        nursery.start_soon(first)
        # The first search is at work once its four calls wait at the paused node.
        with trio.fail_after(20):
            while pausable_node.requests_waiting() < 4:
                await trio.sleep(0.01)
        started = trio.current_time()
        second = await http.get(SEARCH, params={"q": "war"}, timeout=60.0)
        waited = trio.current_time() - started
        pausable_node.resume()
    assert second.status_code == 503
    assert second.json()["error"] == "overloaded"
    assert second.headers["Retry-After"] == str(settings.retry_after)
    # Queued, not shed at once: it waited its QUEUE_WAIT for the slot.
    assert waited >= settings.queue_wait, waited
    assert [response.status_code for response in held] == [200]
