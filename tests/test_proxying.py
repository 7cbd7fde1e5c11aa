"""What the proxy middleware makes of a request's scope, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from trio_books.api.proxying import app_path, behind_proxies

Scope = dict[str, Any]


async def seen_by_app(scope: Scope, *, hops: int = 0, root_path: str = "") -> Scope:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: object, send: object) -> None:
        seen.append(scope)

    await behind_proxies(app, hops=hops, root_path=root_path)(scope, None, None)  # type: ignore[arg-type]
    return seen[0]


def request(path: str, *headers: tuple[bytes, bytes]) -> Scope:
    return {
        "type": "http",
        "path": path,
        "raw_path": path.encode(),
        "headers": list(headers),
        "client": ("10.0.0.5", 41000),
        "scheme": "http",
    }


@pytest.mark.parametrize(
    ("sent", "path"),
    [
        ("/books/api/v1/search/", "/books/api/v1/search/"),  # the proxy kept the prefix
        ("/api/v1/search/", "/books/api/v1/search/"),  # the proxy stripped it
        ("/books", "/books/"),  # the prefix alone: its root page
        ("/bookshelf/x", "/books/bookshelf/x"),  # a longer segment is not the prefix
    ],
)
async def test_a_root_path_is_always_in_the_path_and_the_scope(sent: str, path: str) -> None:
    scope = await seen_by_app(request(sent), root_path="/books")
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == (path, path.encode(), "/books")
    assert app_path(scope) == path.removeprefix("/books")


async def test_no_root_path_leaves_the_path_alone() -> None:
    scope = await seen_by_app(request("/api/v1/search/"))
    assert scope["path"] == "/api/v1/search/"
    assert "root_path" not in scope
    assert app_path(scope) == "/api/v1/search/"


async def test_with_no_trusted_hop_a_client_cannot_name_itself() -> None:
    forged = request(
        "/", (b"x-forwarded-for", b"203.0.113.66"), (b"forwarded", b"for=203.0.113.66")
    )
    assert (await seen_by_app(forged))["client"] == ("10.0.0.5", 41000)


async def test_one_trusted_hop_takes_the_address_the_proxy_appended() -> None:
    chain = request("/", (b"x-forwarded-for", b"203.0.113.66, 198.51.100.7"))
    assert (await seen_by_app(chain, hops=1))["client"][0] == "198.51.100.7"
    modern = request("/", (b"forwarded", b"for=203.0.113.66, for=192.0.2.60;proto=https"))
    scope = await seen_by_app(modern, hops=1)
    assert (scope["client"][0], scope["scheme"]) == ("192.0.2.60", "https")
    # Fewer entries than trusted hops: nothing is believed.
    assert (await seen_by_app(chain, hops=3))["client"] == ("10.0.0.5", 41000)
