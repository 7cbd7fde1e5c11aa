"""Hostile input, over HTTP on both builds: caps past their settings, Unicode of every kind, query syntax searched as words."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from servers import api_client, serving

from trio_books.core.records import slugify
from trio_books.serving import HEAD_SLACK
from trio_books.settings import Settings

SEARCH = "/api/v1/search/"
Client = httpx.AsyncClient


async def answer(client: Client, url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = await client.get(url, **kwargs)
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    if response.status_code >= 400:
        assert isinstance(body["error"], str)
        assert isinstance(body["message"], str)
    return response.status_code, body


@pytest.fixture
async def app_client(build: str, api_settings: Settings) -> AsyncIterator[Client]:
    """*build* on a real Hypercorn, with the settings' caps."""
    async with api_client(build, api_settings) as http:
        yield http


@pytest.fixture
async def tight_client(build: str, api_settings: Settings) -> AsyncIterator[Client]:
    """*build* on a real Hypercorn, with every cap set well below its default."""
    settings = api_settings.model_copy(
        update={
            "max_query_length": 10,
            "max_tags": 2,
            "max_page_size": 5,
            "max_result_window": 20,
            "max_url_length": 300,
            "max_header_bytes": 1024,
            "max_header_count": 10,
            "max_body_bytes": 0,
        }
    )
    async with api_client(build, settings) as http:
        yield http


@pytest.mark.parametrize(
    ("query", "field", "rule"),
    [
        ("q=" + "x" * 11, "q", "string_too_long"),
        ("tags=a&tags=b&tags=c", "tags", "too_long"),
        ("size=6", "size", "less_than_equal"),
        ("size=5&page=5", "page", "result_window"),
    ],
)
async def test_query_caps_from_settings_are_422(
    tight_client: Client, query: str, field: str, rule: str
) -> None:
    status, body = await answer(tight_client, f"{SEARCH}?{query}")
    assert status == 422
    assert {"field": field, "rule": rule} in [
        {"field": d["field"], "rule": d["rule"]} for d in body["details"]
    ]


async def test_within_the_caps_is_answered(tight_client: Client) -> None:
    status, body = await answer(tight_client, f"{SEARCH}?q=harry&size=5&page=4")
    assert status == 200, body


async def test_long_url_is_414(tight_client: Client) -> None:
    status, body = await answer(tight_client, f"{SEARCH}?language={'e' * 400}")
    assert (status, body["error"]) == (414, "url_too_long")


async def test_large_or_many_headers_are_431(tight_client: Client) -> None:
    status, body = await answer(tight_client, "/", headers={"X-Padding": "p" * 2000})
    assert (status, body["error"]) == (431, "headers_too_large")
    many = {f"X-H{i}": "1" for i in range(12)}
    status, body = await answer(tight_client, "/", headers=many)
    assert (status, body["error"]) == (431, "headers_too_large")


async def raw_exchange(address: str, request: bytes) -> tuple[int, bytes]:
    """Send *request* as bytes to a live server; its status and body (by ``content-length``)."""
    host, port = address.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(request)
        received = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in received:
                received += await stream.receive_some(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            while len(body) < (int(length.group(1)) if length else 0):
                body += await stream.receive_some(65536)
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
async def live_server(build: str, api_settings: Settings) -> AsyncIterator[str]:
    """*build* on a real Hypercorn, with a 16-byte body cap; its base URL."""
    settings = api_settings.model_copy(update={"max_body_bytes": 16})
    async with serving(build, settings) as url:
        yield url


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 17\r\n\r\n" + b"x" * 17,
        b"Transfer-Encoding: chunked\r\n\r\n11\r\n" + b"x" * 17 + b"\r\n0\r\n\r\n",
    ],
)
async def test_a_body_past_its_cap_is_413(live_server: str, framing: bytes) -> None:
    request = b"GET /api/v1/search/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + framing
    status, body = await raw_exchange(live_server, request)
    assert status == 413
    assert json.loads(body)["error"] == "body_too_large"


async def test_a_body_within_its_cap_is_ignored(live_server: str) -> None:
    request = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    assert await raw_exchange(live_server, request) == (200, b'{"message":"Ping"}\n')


async def test_raw_bytes_outside_ascii_in_the_target_are_400(live_server: str) -> None:
    # HTTP forbids them unencoded; h11 refuses the request before the app sees it.
    request = b"GET /api/v1/search/?q=\xff HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    status, _ = await raw_exchange(live_server, request)
    assert status == 400


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Cafe\u0301", None),  # a combining acute accent
        ("\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627", None),  # Hebrew and Arabic
        ("\u202eevil\u202c", None),  # right-to-left override
        ("\U0001f4da\U0001f409\u200d\U0001f525", None),  # emoji with a zero-width joiner
        ("\ufeffbom", None),
        ("\U000e0041 tag characters", None),
        ("\uffff\ufffe noncharacters", None),
        # Titles in their own scripts find their books.
        ("\u0412\u043e\u0439\u043d\u0430 \u0438 \u043c\u0438\u0440", 21),  # Война и мир
        ("\u30ce\u30eb\u30a6\u30a7\u30a4\u306e\u68ee", 25),  # ノルウェイの森
        ("\u6e90\u6c0f\u7269\u8a9e", 26),  # 源氏物語
        ("\u1f48\u03b4\u03cd\u03c3\u03c3\u03b5\u03b9\u03b1", 6),  # Ὀδύσσεια
        ("Garc\u00eda M\u00e1rquez", 23),
    ],
)
async def test_unicode_of_every_kind_is_searched(
    app_client: Client, text: str, first: int | None
) -> None:
    status, body = await answer(app_client, SEARCH, params={"q": text})
    assert status == 200, body
    found = [book["book_id"] for book in body["results"]]
    if first is None:
        # Nothing in the catalogue holds these words: nothing is found.
        assert (body["count"], found) == (0, []), found
    else:
        assert found[:1] == [first], found
    # A tag is a slug: the loader's slug of the same text, when the text has one.
    if slug := slugify(text):
        status, body = await answer(app_client, SEARCH, params={"q": text, "tags": slug})
        assert (status, body["count"]) == (200, 0), body


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b"q=%FF%FE", "invalid_utf8"),
        (b"q=%C3", "invalid_utf8"),
        (b"tags=%ED%A0%80", "invalid_utf8"),  # a UTF-16 surrogate, not valid UTF-8
        (b"q=a%00b", "control_character"),
        (b"q=%1B%5B2J", "control_character"),
    ],
)
async def test_broken_utf8_and_control_characters_are_422(
    app_client: Client, raw: bytes, rule: str
) -> None:
    status, body = await answer(app_client, f"{SEARCH}?{raw.decode()}")
    assert status == 422
    assert body["details"][0]["rule"] == rule


@pytest.mark.parametrize(
    "text",
    [
        "*",
        "title:*",
        'hunger AND NOT "catching fire"',
        "harry~2 OR potter^10",
        "/.*/",
        '{"match_all": {}}',
        '{"script": {"source": "System.exit(0)"}}',
        "doc['title'].value; ctx._source.remove('title')",
        "(((((((((((((((((((((((",
        "\\",
    ],
)
async def test_query_syntax_is_searched_as_plain_words(app_client: Client, text: str) -> None:
    status, body = await answer(app_client, SEARCH, params={"q": text, "size": "100"})
    assert status == 200, body
    # A query-syntax parser would match everything for "*" or a regex, and
    # exclude "Catching Fire" for the NOT; as plain words none of that happens.
    assert body["count"] < 32
    if "NOT" in text:
        titles = [book["title"] for book in body["results"]]
        assert any(title.startswith("Catching Fire") for title in titles)


# Through a real server, both builds: just past a cap the app answers in JSON.
# h11 holds at most url + headers + slack of a head it has not yet seen whole;
# a head far past that (more than one read brings) is refused before the app.
HEAD_CAPS = {"max_url_length": 300, "max_header_bytes": 1024}
FAR_PAST = 2 * 65_536
assert FAR_PAST > 300 + 1024 + HEAD_SLACK


@pytest.mark.parametrize(
    ("target", "headers", "error"),
    [
        (f"{SEARCH}?language={'e' * 400}", {}, ("url_too_long", 414)),
        ("/", {"X-Padding": "p" * 1100}, ("headers_too_large", 431)),
    ],
)
async def test_just_past_a_head_cap_a_real_server_answers_in_json(
    build: str, api_settings: Settings, target: str, headers: dict[str, str], error: Any
) -> None:
    settings = api_settings.model_copy(update=HEAD_CAPS)
    async with api_client(build, settings) as http:
        response = await http.get(target, headers=headers)
    code, status = error
    assert response.status_code == status
    assert response.json()["error"] == code


@pytest.mark.parametrize(
    "head",
    [
        f"GET {SEARCH}?language={'e' * FAR_PAST} HTTP/1.1\r\nHost: t\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: t\r\nX-Padding: {'p' * FAR_PAST}\r\n\r\n",
    ],
    ids=["url", "header"],
)
async def test_far_past_the_head_bound_the_server_refuses_before_the_app(
    build: str, api_settings: Settings, head: str
) -> None:
    settings = api_settings.model_copy(update=HEAD_CAPS)
    async with api_client(build, settings) as http:
        # As bytes: HTTP clients refuse to send a URL this long.
        status, body = await raw_exchange(str(http.base_url), head.encode())
    # h11's own refusal, with nothing of the app's in it.
    assert (status, body) == (431, b"")
