"""``/readyz``: ready means searches can succeed; asked at most once a second; not ready while draining."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import traceback
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from processes import ANNOUNCED, WORKER_RUNNING, Output, refused
from servers import api_client

from trio_books.api.readiness import READY_CACHE, Readiness
from trio_books.api.routes import SERVICE_KEY
from trio_books.api.service import SearchService, draining_after
from trio_books.errors import IndexMissing, ShuttingDown
from trio_books.serving import hypercorn_config
from trio_books.settings import Settings
from trio_books.trio.app import create_app
from trio_books.trio.serve import serve_app

# ---------------------------------------------------------------- the verdict itself


class Asker:
    """What ``Readiness`` asks Elasticsearch, counted; it takes 100 ms to answer."""

    def __init__(self, answer: str | Exception = "green") -> None:
        self.answer = answer
        self.asked = 0

    async def __call__(self) -> str:
        self.asked += 1
        await trio.sleep(0.1)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def readiness() -> Readiness:
    return Readiness(trio.Lock(), clock=trio.current_time)


async def test_callers_at_once_share_one_question(autojump_clock: trio.abc.Clock) -> None:
    ready, ask = readiness(), Asker()
    verdicts: list[str] = []

    async def poll() -> None:
        verdicts.append(await ready.verdict(ask))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(poll)
    assert verdicts == ["green"] * 20
    assert ask.asked == 1
    await trio.sleep(READY_CACHE / 2)
    assert await ready.verdict(ask) == "green"
    assert ask.asked == 1  # still fresh
    await trio.sleep(READY_CACHE)
    assert await ready.verdict(ask) == "green"
    assert ask.asked == 2


async def test_a_failed_verdict_is_kept_too_and_raised_anew(
    autojump_clock: trio.abc.Clock,
) -> None:
    ready, ask = readiness(), Asker(IndexMissing("the index or alias 'books' does not exist"))
    depths = []
    for _ in range(3):
        with pytest.raises(IndexMissing) as caught:
            await ready.verdict(ask)
        depths.append(len(traceback.extract_tb(caught.value.__traceback__)))
    assert ask.asked == 1
    assert depths[0] == depths[1] == depths[2]  # not one poll's frames on top of another's


async def test_draining_is_not_ready_without_asking(autojump_clock: trio.abc.Clock) -> None:
    ready, ask = readiness(), Asker()
    ready.draining = True
    with pytest.raises(ShuttingDown):
        await ready.verdict(ask)
    assert ask.asked == 0


# ---------------------------------------------------------------- over HTTP, on a real Elasticsearch


async def test_a_missing_index_is_not_ready(build: str, es_url: str, index_name: str) -> None:
    settings = Settings(es_urls=[es_url], index=index_name)
    async with api_client(build, settings) as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"] == "index_missing"


async def test_many_polls_ask_elasticsearch_once(api_settings: Settings) -> None:
    app = create_app(api_settings)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        statuses: list[int] = []

        async def poll() -> None:
            statuses.append((await client.get("/readyz")).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(poll)
        service: SearchService = app.extensions[SERVICE_KEY]
        assert statuses == [200] * 20
        # One verdict, or two if a second boundary fell inside the burst.
        assert service.readiness.asked in {1, 2}


async def test_readyz_answers_503_once_the_stop_signal_came(api_settings: Settings) -> None:
    app = create_app(api_settings)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert (await client.get("/readyz")).status_code == 200
        stopped = trio.Event()
        stopped.set()
        await draining_after(stopped.wait, app.extensions)()
        draining = await client.get("/readyz")
        assert draining.status_code == 503
        assert (await draining.get_json())["error"] == "shutting_down"


@pytest.mark.parametrize("shell", ["lean", "hypercorn"])
async def test_serving_marks_the_service_draining_at_the_stop_signal(
    api_settings: Settings, shell: str
) -> None:
    settings = api_settings.model_copy(update={"server_shell": shell})
    app = create_app(settings)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            functools.partial(
                serve_app,
                app,
                settings,
                hypercorn_config(settings, host="127.0.0.1", port=0),
                shutdown_trigger=stop.wait,
            )
        )
        async with httpx.AsyncClient(base_url=binds[0]) as http:
            assert (await http.get("/readyz")).status_code == 200
        service: SearchService = app.extensions[SERVICE_KEY]
        assert not service.readiness.draining
        stop.set()
        with trio.fail_after(5):
            while not service.readiness.draining:
                await trio.sleep(0.01)


# ---------------------------------------------------------------- several worker processes

# A /readyz request a worker holds: its body (chunked) is read before any route
# runs, so the route runs only once the test sends the body's end. The 100
# Continue tells the test that a worker has the request, and the connection is
# busy, so stopping does not close it unanswered.
HELD_READYZ = (
    b"GET /readyz HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
)
LAST_CHUNK = b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("build", "shell"),
    [("trio", "lean"), ("trio", "hypercorn"), ("asyncio", "hypercorn")],
    ids=["trio-lean", "trio-hypercorn", "asyncio"],
)
async def test_each_worker_is_draining_once_the_stop_signal_came(build: str, shell: str) -> None:
    """``serve --workers 2``, then SIGTERM to the whole process group (systemd's default).

    A worker's listening socket closes only after it has stopped, so once a
    new connection is refused, every worker has stopped taking requests; a
    request one of them held across the signal must then hear 503
    ``shutting_down``: each worker marked itself draining on the way.
    """
    env = {
        **os.environ,
        # Port 9 (discard) is closed: Elasticsearch is unreachable, so not ready before the signal.
        "TRIO_BOOKS_ES_URLS": "http://127.0.0.1:9",
        "TRIO_BOOKS_ES_TIMEOUT": "1",
        "TRIO_BOOKS_SERVER_SHELL": shell,
        "TRIO_BOOKS_GRACEFUL_TIMEOUT": "10",
    }
    command = [sys.executable, "-m", "trio_books", "serve", "--build", build]
    process = await trio.lowlevel.open_process(
        [*command, "--workers", "2", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stderr is not None
    output = Output()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(output.read, process.stderr)
            with trio.fail_after(60):
                url = (await output.wait_for(ANNOUNCED)).group(1).decode()
                # Both up, or the signal could find one still starting (and not yet ignoring it).
                await output.wait_for(WORKER_RUNNING, count=2)
            address = urlsplit(url)
            host, port = address.hostname or "", address.port or 0
            async with httpx.AsyncClient(base_url=url) as http:
                before = await http.get("/readyz")
            async with await trio.open_tcp_stream(host, port) as held:
                await held.send_all(HELD_READYZ)
                received = b""
                with trio.fail_after(10):
                    while b" 100 " not in received:
                        received += await held.receive_some()
                os.killpg(process.pid, signal.SIGTERM)
                with trio.fail_after(10):
                    while not await refused(host, port):
                        await trio.sleep(0.05)
                await held.send_all(LAST_CHUNK)
                with trio.fail_after(10):
                    while chunk := await held.receive_some():
                        received += chunk
            with trio.fail_after(30):
                assert await process.wait() == 0
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await process.stderr.aclose()
    # Before the signal: not ready, for another reason.
    assert before.status_code == 503
    assert before.json()["error"] == "elasticsearch_unavailable"
    answer = received[received.rindex(b"HTTP/1.1 ") :]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), (answer, output.seen[-3000:])
    assert json.loads(body)["error"] == "shutting_down", (answer, output.seen[-3000:])
