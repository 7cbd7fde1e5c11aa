"""A pytest plugin: every public answer the suite receives is read for what it must never carry.

The service's error answers (4xx and 5xx) and partial answers (a 200 whose
``errors`` is not empty: its ``errors``, not the books) go to anonymous clients. Whatever test provoked them,
they must not name a node (``127.0.0.1:``), carry a URL (``http://``,
``https://``) or name one of the suite's indices (``test-…-1a2b3c4d``); only a
``trace``, which a deployment may allow, may say more. Answers are seen where
tests receive them: httpx clients (the served app) and Quart's test client (the
app in-process). A leak fails the session and is listed with its test.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from quart.testing import QuartClient

LEAK = re.compile(r"127\.0\.0\.1:|https?://|\btest-[a-z0-9-]*-[0-9a-f]{8}\b")
PUBLIC = ("/api/", "/readyz", "/healthz")


@dataclass
class PublicAnswers:
    test: str = "(no test)"
    read: int = 0
    leaks: list[str] = field(default_factory=list)

    def see(self, path: str, status: int, body: bytes) -> None:
        if not path.startswith(PUBLIC):
            return
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return  # not the API's JSON (a proxy's page, a stand-in)
        if not isinstance(answer, dict):
            return
        if status < 400:
            if not answer.get("errors"):
                return
            answer = {"errors": answer["errors"]}  # the books found are the catalogue's own
        answer.pop("trace", None)
        text = orjson.dumps(answer).decode()
        self.read += 1
        if found := LEAK.search(text):
            start = max(0, found.start() - 60)
            self.leaks.append(f"{self.test}: {status} {path}: …{text[start : found.end() + 60]}…")


ANSWERS = PublicAnswers()


def _watch_httpx(send: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(send)
    async def watched(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
        response = await send(self, request, **kwargs)
        if not kwargs.get("stream"):
            ANSWERS.see(request.url.path, response.status_code, response.content)
        return response

    return watched


def _watch_quart(open_: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(open_)
    async def watched(self: QuartClient, path: str, *args: Any, **kwargs: Any) -> Any:
        response = await open_(self, path, *args, **kwargs)
        ANSWERS.see(path.split("?")[0], response.status_code, await response.get_data())
        return response

    return watched


def pytest_configure(config: pytest.Config) -> None:
    httpx.AsyncClient.send = _watch_httpx(httpx.AsyncClient.send)  # type: ignore[method-assign]
    QuartClient.open = _watch_quart(QuartClient.open)  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    ANSWERS.test = item.nodeid
    return (yield)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(
        f"public answers read for leaks: {ANSWERS.read}, leaks: {len(ANSWERS.leaks)}"
    )
    for leak in ANSWERS.leaks:
        terminalreporter.write_line(f"  LEAK {leak}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if ANSWERS.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
