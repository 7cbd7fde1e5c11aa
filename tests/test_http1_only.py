"""No cleartext HTTP/2 on any shell the service is served on (``trio_books.http1_only``).

Each shell serves the real app as ``serve`` builds it (``hypercorn_config``,
through ``servers.serving``) on a loopback socket, and gets raw bytes: a
request asking to upgrade to h2c must be answered in HTTP/1.1, and HTTP/2's
preface must get 505 and a closed connection. The ping route needs no
Elasticsearch, so none is running here.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

import pytest
import trio
from hypercorn.config import Config
from servers import answer_to, serving

from trio_books.serving import hypercorn_config
from trio_books.settings import Settings
from trio_books.trio.app import create_app
from trio_books.trio.serve import serve_app

H2C_UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
)
# HTTP/2's connection preface, then an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
REFUSED = b"HTTP/1.1 505 HTTP Version Not Supported\r\n"

# Every shell the service can be served on: (build, SERVER_SHELL).
SHELLS = {
    "lean": ("trio", "lean"),
    "hypercorn-trio": ("trio", "hypercorn"),
    "hypercorn-asyncio": ("asyncio", "hypercorn"),
}


def settings(shell: str) -> Settings:
    # Port 9 (discard) is closed: Elasticsearch is never reached, and need not be.
    return Settings(
        es_urls=["http://127.0.0.1:9"], es_timeout=1, server_shell=shell, gc_tuning=False
    )


async def exchange(url: str, data: bytes) -> tuple[bytes, bool]:
    """What the server at *url* sends back to *data* within a second, and whether it then closed."""
    address = urlsplit(url)
    assert address.hostname is not None
    assert address.port is not None
    async with await trio.open_tcp_stream(address.hostname, address.port) as stream:
        return await answer_to(stream, data)


@pytest.mark.parametrize("shell", SHELLS)
async def test_an_h2c_upgrade_is_answered_in_http_1_1(shell: str) -> None:
    build, server_shell = SHELLS[shell]
    async with serving(build, settings(server_shell)) as url:
        answer, _ = await exchange(url, H2C_UPGRADE)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert b'{"message":"Ping"}' in answer
    assert b"upgrade" not in answer.lower()


@pytest.mark.parametrize("shell", SHELLS)
async def test_the_http_2_preface_is_refused_and_the_connection_closed(shell: str) -> None:
    build, server_shell = SHELLS[shell]
    async with serving(build, settings(server_shell)) as url:
        answer, closed = await exchange(url, H2_PREFACE)
    assert answer.startswith(REFUSED), answer
    assert closed


async def test_hypercorns_shell_still_switches_when_its_config_offers_http_2() -> None:
    """The contrast: what the service's configuration turns off is Hypercorn's default.

    The same serving path with Hypercorn's default ``alpn_protocols`` (``h2``
    first) upgrades, and speaks HTTP/2 after the preface: outside every cap
    the service sets.
    """
    served = settings("hypercorn")
    config = hypercorn_config(served, host="127.0.0.1", port=0)
    config.alpn_protocols = Config().alpn_protocols
    assert "h2" in config.alpn_protocols
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            functools.partial(serve_app, create_app(served), served, config)
        )
        switched, _ = await exchange(binds[0], H2C_UPGRADE)
        spoken, _ = await exchange(binds[0], H2_PREFACE)
        nursery.cancel_scope.cancel()
    assert switched.startswith(b"HTTP/1.1 101 "), switched
    assert spoken, "no answer to the preface"
    assert not spoken.startswith(b"HTTP/1"), spoken  # an HTTP/2 SETTINGS frame
