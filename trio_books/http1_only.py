"""HTTP/1.1 only on a plain connection: no serving shell switches to cleartext HTTP/2.

Hypercorn's HTTP/1.1 protocol turns a connection into HTTP/2 when a request
asks to (``Upgrade: h2c``) or when it opens with HTTP/2's preface (``PRI *
HTTP/2.0``). HTTP/2 has caps of its own (streams, header lists, frames) that
the service's request caps do not cover, and the API is HTTP/1.1. So here:

* an upgrade request is answered in HTTP/1.1, like any other (a server may
  ignore ``Upgrade``: RFC 9110, section 7.8);
* the preface is answered ``505 HTTP Version Not Supported`` and the
  connection closes.

Loop-free, like the protocol it wraps, so every shell uses the same one. The
lean shell (``trio/shell.py``) builds :class:`HTTP11Only` itself. Hypercorn's
trio and asyncio shells build whatever their ``tcp_server`` module calls
``ProtocolWrapper``, and Hypercorn has no setting that keeps them from
switching in clear text (its ``alpn_protocols`` only choose what TLS offers);
so :func:`patch_hypercorn_shell` points that name at :func:`protocol_for`,
which takes the choice from that setting: a configuration offering no ``h2``
(what :func:`trio_books.serving.hypercorn_config` builds) gets HTTP/1.1 only
in clear text too, and one offering it (Hypercorn's default) is served as
Hypercorn serves it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from types import ModuleType

import h11
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import AppWrapper, ConnectionState, TaskGroup, WorkerContext

REFUSAL = (
    b"HTTP/1.1 505 HTTP Version Not Supported\r\n"
    b"content-type: text/plain\r\ncontent-length: 26\r\nconnection: close\r\n\r\n"
    b"this service speaks HTTP/1"
)
# What a configuration offers to turn HTTP/2 on (ALPN's name for it).
H2 = "h2"


class _Refused(Exception):
    """The preface was refused and the connection closed: nothing more to handle."""


class HTTP11Protocol(H11Protocol):
    async def _check_protocol(self, event: h11.Request) -> None:
        if event.method == b"PRI" and event.target == b"*":
            await self.send(RawData(data=REFUSAL))
            await self.send(Closed())
            raise _Refused
        # Anything else, an h2c upgrade included, is served as HTTP/1.1.


class HTTP11Only(ProtocolWrapper):
    """Hypercorn's protocol wrapper with :class:`HTTP11Protocol` in place of its HTTP/1.1 one."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.protocol = HTTP11Protocol(
            self.app,
            self.config,
            self.context,
            self.task_group,
            self.state,
            self.ssl,
            self.client,
            self.server,
            self.send,
        )

    async def handle(self, event: Event) -> None:
        with contextlib.suppress(_Refused):
            await super().handle(event)


def protocol_for(
    app: AppWrapper,
    config: Config,
    context: WorkerContext,
    task_group: TaskGroup,
    state: ConnectionState,
    ssl: bool,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    send: Callable[[Event], Awaitable[None]],
    alpn_protocol: str | None = None,
) -> ProtocolWrapper:
    """One connection's protocol, as Hypercorn's shells ask for it: HTTP/1.1 only unless *config* offers HTTP/2."""
    wrapper = ProtocolWrapper if H2 in config.alpn_protocols else HTTP11Only
    return wrapper(
        app, config, context, task_group, state, ssl, client, server, send, alpn_protocol
    )


def patch_hypercorn_shell(tcp_server: ModuleType) -> None:
    """Make *tcp_server* (``hypercorn.trio.tcp_server`` or ``hypercorn.asyncio``'s) build :func:`protocol_for`.

    Its ``TCPServer`` looks ``ProtocolWrapper`` up for each connection, so
    this reaches every connection accepted from now on, in this process.
    Doing it again changes nothing.

    Raises:
        RuntimeError: *tcp_server* no longer builds Hypercorn's wrapper by
            that name (a Hypercorn upgrade moved it): serving on would switch
            to HTTP/2 again, silently.
    """
    if getattr(tcp_server, "ProtocolWrapper", None) not in (ProtocolWrapper, protocol_for):
        raise RuntimeError(
            f"{tcp_server.__name__} no longer builds hypercorn.protocol.ProtocolWrapper: "
            "trio_books.http1_only cannot keep it to HTTP/1.1"
        )
    # Through setattr: the type checker knows no attributes of a module passed in.
    setattr(tcp_server, "ProtocolWrapper", protocol_for)  # noqa: B010
