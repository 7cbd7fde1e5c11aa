"""A search that outlasts ``GRACEFUL_TIMEOUT`` after SIGTERM: answered 503 near it, on every build and shell.

The search is held by a real Elasticsearch node paused with SIGSTOP (it takes
the request and answers nothing), with a search deadline far past the graceful
timeout, so only the shutdown can end it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
import trio
from conftest import PausableNode
from processes import ANNOUNCED, WORKER_RUNNING, Output

from trio_books.api.graceful import cut_after

GRACEFUL = 1.0
SEARCH_DEADLINE = 30.0
HELD_SEARCH = b"GET /api/v1/search/?q=held HTTP/1.1\r\nHost: t\r\n\r\n"


def closing_line(output: bytes) -> dict[str, Any]:
    """The worker's closing log line: how many requests its app began and answered."""
    for line in reversed(output.splitlines()):
        if line.startswith(b"{") and b"requests_begun" in line:
            found: dict[str, Any] = json.loads(line)
            return found
    raise AssertionError(f"no closing line in: {output[-3000:]!r}")


@pytest.mark.parametrize(
    ("build", "shell"),
    [("trio", "lean"), ("trio", "hypercorn"), ("asyncio", "hypercorn")],
    ids=["trio-lean", "trio-hypercorn", "asyncio"],
)
async def test_a_search_that_outlasts_the_graceful_timeout_is_answered_503_before_it(
    build: str, shell: str, pausable_node: PausableNode, paused_catalogue: str
) -> None:
    env = {
        **os.environ,
        "TRIO_BOOKS_ES_URLS": pausable_node.url,
        "TRIO_BOOKS_INDEX": paused_catalogue,
        "TRIO_BOOKS_SERVER_SHELL": shell,
        "TRIO_BOOKS_GRACEFUL_TIMEOUT": str(GRACEFUL),
        "TRIO_BOOKS_SEARCH_DEADLINE": str(SEARCH_DEADLINE),
        "TRIO_BOOKS_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "trio_books", "serve", "--build", build, "--port", "0"]
    process = await trio.lowlevel.open_process(
        command, env=env, stderr=subprocess.STDOUT, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    output = Output()
    received = b""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(output.read, process.stdout)
            with trio.fail_after(60):
                url = (await output.wait_for(ANNOUNCED)).group(1).decode()
                await output.wait_for(WORKER_RUNNING)
            host, port = url.removeprefix("http://").rsplit(":", 1)
            pausable_node.pause()
            async with await trio.open_tcp_stream(host, int(port)) as held:
                await held.send_all(HELD_SEARCH)
                # Held once the node has the search's calls unread in its socket.
                with trio.fail_after(20):
                    while pausable_node.requests_waiting() == 0:
                        await trio.sleep(0.05)
                signalled = trio.current_time()
                process.send_signal(signal.SIGTERM)
                with trio.fail_after(SEARCH_DEADLINE / 2):
                    try:
                        while chunk := await held.receive_some():
                            received += chunk
                    except trio.BrokenResourceError:
                        pass
                    closed = trio.current_time() - signalled
                    exit_code = await process.wait()
                    exited = trio.current_time() - signalled
    finally:
        pausable_node.resume()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.aclose()
    seen = output.seen.decode(errors="replace")[-3000:]
    # The search waited until near the graceful timeout, not until its own deadline.
    assert cut_after(GRACEFUL) <= closed < SEARCH_DEADLINE / 2, (closed, seen)
    assert exited < SEARCH_DEADLINE / 2, (exited, seen)
    assert exit_code == 0, seen
    # Answered, not dropped: 503 shutting_down, come back in a second (elsewhere).
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), (received, seen)
    assert b"\r\nretry-after: 1\r\n" in head.lower(), (received, seen)
    assert json.loads(body)["error"] == "shutting_down", (received, seen)
    # The worker counted it answered: nothing it began was dropped.
    counts = closing_line(output.seen)
    assert counts["requests_begun"] == counts["requests_answered"] >= 1, (counts, seen)
