"""One HTTP/1.1 exchange on a keep-alive connection, framed by ``h11`` (sans-IO).

The shell writes :func:`request_bytes` in one send, then feeds what it reads
into a :class:`ResponseReader` until it hands back an :class:`Answer`, and asks
:func:`reusable` whether the connection may go back to the pool. Any exchange
that did not end cleanly (cancelled, timed out, broken) leaves h11 in a state
where :func:`reusable` says no, so a half-read connection never returns to the
pool.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import h11

READ_SIZE = 65536
Headers = list[tuple[bytes, bytes]]
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""The default cap on one answer's body (``ES_MAX_RESPONSE_BYTES``)."""
# A TLS record's first bytes (handshake or alert, TLS 1.0-1.3): what a TLS
# port says to a client that spoke plain HTTP to it.
_TLS_RECORD_STARTS = (b"\x15\x03", b"\x16\x03")


class ResponseTooLarge(h11.RemoteProtocolError):
    """The answer's body is larger than the cap."""


class TLSAnswer(h11.RemoteProtocolError):
    """The peer answered a plain HTTP request with TLS."""


@dataclass(frozen=True)
class Answer:
    """A whole response: Elasticsearch answers are small JSON, read in full."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reason: bytes


def new_connection() -> h11.Connection:
    return h11.Connection(h11.CLIENT)


def request_bytes(
    connection: h11.Connection, method: bytes, target: bytes, headers: Headers, body: bytes
) -> bytes:
    """The request's bytes, head and body together, so the shell sends them in one write.

    *headers* must carry ``Host`` and, with a body, ``Content-Length`` (httpx sets both).
    """
    data = connection.send(h11.Request(method=method, target=target, headers=headers)) or b""
    if body:
        data += connection.send(h11.Data(data=body)) or b""
    return data + (connection.send(h11.EndOfMessage()) or b"")


class ResponseReader:
    """Collects one response from the bytes the shell reads, up to *max_bytes* of body.

    The cap holds by ``Content-Length`` before any of the body is read, and by
    the bytes read so far for a chunked answer (gzip answers: on the decoded
    size too, see :func:`decoded_body`).
    """

    def __init__(self, connection: h11.Connection, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.connection = connection
        self.max_bytes = max_bytes
        self._size = 0
        self.received_any = False
        # Set by the shell once every byte of the request is out: only then may a
        # cut exchange's answer be read on to keep the connection.
        self.request_sent = False
        # False for a drain: the answer is read to its end and thrown away.
        self.keep_body = True
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> Answer | None:
        """Take the next bytes read (``b""`` at end of stream); the answer once it is complete.

        Raises:
            h11.RemoteProtocolError: the peer broke the framing or closed mid-answer.
        """
        if data and not self.received_any:
            self.received_any = True
            if data.startswith(_TLS_RECORD_STARTS):
                raise TLSAnswer("the node speaks TLS: use https://")
        self.connection.receive_data(data)
        while True:
            event = self.connection.next_event()
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.Response):
                self._status, self._reason = event.status_code, event.reason
                self._headers = list(event.headers)
                for name, value in self._headers:
                    if name == b"content-length" and int(value) > self.max_bytes:
                        raise ResponseTooLarge(f"the answer's body is over {self.max_bytes} bytes")
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > self.max_bytes:
                    raise ResponseTooLarge(f"the answer's body is over {self.max_bytes} bytes")
                if self.keep_body:
                    self._chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
                return Answer(self._status, self._headers, body, self._reason)
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("the server closed the connection before answering")
            # InformationalResponse (1xx): keep reading.


def reusable(connection: h11.Connection) -> bool:
    """Whether the exchange ended cleanly on both sides; if so, ready the connection for the next."""
    if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
        connection.start_next_cycle()
        return True
    return False


def decoded_body(answer: Answer, max_bytes: int = MAX_RESPONSE_BYTES) -> bytes:
    """The body with a ``Content-Encoding: gzip`` undone, never more than *max_bytes*.

    Raises:
        ResponseTooLarge: the decoded body would pass *max_bytes*.
        h11.RemoteProtocolError: the body is not valid gzip.
    """
    encoding = next((value for name, value in answer.headers if name == b"content-encoding"), None)
    if encoding is None or encoding.lower() == b"identity":
        return answer.body
    if encoding.lower() != b"gzip":
        raise h11.RemoteProtocolError(f"unsupported content encoding {encoding!r}")
    # Bounded: a small gzip body may inflate to gigabytes.
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(answer.body, max_bytes + 1)
    except zlib.error as error:
        raise h11.RemoteProtocolError(f"the gzip body does not decode: {error}") from error
    if len(body) > max_bytes:
        raise ResponseTooLarge(f"the answer's decoded body is over {max_bytes} bytes")
    return body
