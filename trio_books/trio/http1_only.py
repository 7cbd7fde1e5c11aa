"""HTTP/1.1 only on a plain connection: the lean shell never switches to cleartext HTTP/2.

Hypercorn's HTTP/1.1 protocol turns a connection into HTTP/2 when a request
asks to (``Upgrade: h2c``) or when it opens with HTTP/2's preface (``PRI *
HTTP/2.0``). HTTP/2 has caps of its own (streams, header lists, frames) that
the service's request caps do not cover, and the API is HTTP/1.1. So here:

* an upgrade request is answered in HTTP/1.1, like any other (a server may
  ignore ``Upgrade``: RFC 9110, section 7.8);
* the preface is answered ``505 HTTP Version Not Supported`` and the
  connection closes.

Hypercorn's own shell (``SERVER_SHELL=hypercorn``) still switches.
"""

from __future__ import annotations

import contextlib

import h11
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol

REFUSAL = (
    b"HTTP/1.1 505 HTTP Version Not Supported\r\n"
    b"content-type: text/plain\r\ncontent-length: 26\r\nconnection: close\r\n\r\n"
    b"this service speaks HTTP/1"
)


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
