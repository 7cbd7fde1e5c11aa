"""TLS for the transport's connections: options, context and the sans-IO state.

TLS here is what trio's own ``SSLStream`` is: an :class:`ssl.SSLObject` over two
:class:`ssl.MemoryBIO` buffers, pumped by the caller. :class:`TLSStream` is
written once, over any :class:`~trio_books.transport.backend.RawStream`, so the
Trio and the asyncio shells share the same handshake, certificate checks and
record framing, and each keeps its own socket fast path underneath.

Verification is on by default: the system's trust store (or ``ca_certs``),
the host name checked, TLS 1.2 at least. ``assert_fingerprint`` pins a
certificate instead, the way Elastic's own clients do: Elasticsearch prints the
SHA-256 of its **CA** on first start, so the pin matches any certificate of the
chain the node presents, not only its own.
"""

from __future__ import annotations

import _ssl
import hashlib
import hmac
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from trio_books.transport.backend import READ_SIZE

if TYPE_CHECKING:
    from trio_books.transport.backend import RawStream


@dataclass(frozen=True)
class TLSOptions:
    """How ``https://`` nodes are verified (named after elastic-transport's options)."""

    ca_certs: str | None = None
    verify_certs: bool = True
    # 64 lowercase hex digits: the SHA-256 of a certificate in the node's chain.
    assert_fingerprint: str | None = None
    client_cert: str | None = None
    client_key: str | None = None


class CertificateProblem(httpx.ConnectError):
    """The node's certificate was not accepted (unknown CA, wrong name, wrong fingerprint)."""


class SpeaksTLS(httpx.RemoteProtocolError):
    """An ``http://`` node answered like a TLS port: the URL should say ``https://``."""


def client_context(options: TLSOptions) -> ssl.SSLContext:
    """The one ``SSLContext`` of a transport's lifetime, built from *options*.

    Raises:
        ssl.SSLError, OSError: a CA, certificate or key file that cannot be read.
    """
    context = ssl.create_default_context(cafile=options.ca_certs)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if options.assert_fingerprint or not options.verify_certs:
        # A pinned fingerprint replaces chain verification (as in elastic-transport);
        # verify_certs=false turns checking off altogether (the service warns).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.client_cert:
        context.load_cert_chain(options.client_cert, options.client_key)
    # HTTP/1.1 is all the transport speaks.
    context.set_alpn_protocols(["http/1.1"])
    return context


def chain_fingerprints(ssl_object: ssl.SSLObject) -> list[str]:
    """SHA-256 of every certificate the peer presented, leaf first (hex, lowercase)."""
    # Python 3.13 makes this public; 3.11 and 3.12 have it on the C object only.
    inner = getattr(ssl_object, "_sslobj", None)
    chain = getattr(inner, "get_unverified_chain", lambda: None)() if inner is not None else None
    if chain:
        der = getattr(_ssl, "ENCODING_DER", 2)
        return [hashlib.sha256(cert.public_bytes(der)).hexdigest() for cert in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [hashlib.sha256(leaf).hexdigest()] if leaf else []


def check_fingerprint(ssl_object: ssl.SSLObject, expected: str) -> None:
    """Raise :class:`CertificateProblem` unless *expected* matches a certificate of the chain."""
    found = chain_fingerprints(ssl_object)
    if not any(hmac.compare_digest(expected, fingerprint) for fingerprint in found):
        raise CertificateProblem(
            "the node's certificate chain does not match the pinned SHA-256 fingerprint"
        )


class TLSStream:
    """A TLS client connection over a raw stream: the same four calls as the raw stream.

    Build it with :meth:`handshake`. The record layer runs in memory; only
    the raw stream touches the socket.
    """

    __slots__ = ("_incoming", "_outgoing", "_raw", "_ssl", "intact")

    def __init__(
        self,
        raw: RawStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._raw = raw
        self._ssl = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        # False once a send of TLS records was cut part-way: the stream is then
        # out of step with the peer and may only be closed.
        self.intact = True

    @classmethod
    async def handshake(
        cls,
        raw: RawStream,
        context: ssl.SSLContext,
        server_hostname: str,
        deadline: float,
        fingerprint: str | None = None,
    ) -> TLSStream:
        """Run the TLS handshake on *raw* before *deadline*; the ready stream.

        Raises:
            CertificateProblem: the certificate was refused.
            httpx.ConnectError: the peer broke the handshake (or does not speak TLS).
            TimeoutError: *deadline* passed (the raw stream raises it).
        """
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        ssl_object = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
        stream = cls(raw, ssl_object, incoming, outgoing)
        try:
            while True:
                try:
                    ssl_object.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await stream._flush(deadline)
                    data = await raw.receive_some(deadline)
                    if not data:
                        raise httpx.ConnectError(
                            "the node closed the connection during the TLS handshake"
                        ) from None
                    incoming.write(data)
            await stream._flush(deadline)
        except ssl.SSLCertVerificationError as error:
            raise CertificateProblem(
                f"the node's certificate was not accepted: {error.verify_message}"
            ) from error
        except ssl.SSLError as error:
            raise httpx.ConnectError(f"the TLS handshake failed: {error.reason}") from error
        if fingerprint is not None:
            check_fingerprint(ssl_object, fingerprint)
        return stream

    async def _flush(self, deadline: float) -> None:
        if self._outgoing.pending:
            self.intact = False
            await self._raw.send_all(self._outgoing.read(), deadline)
            self.intact = True

    async def send_all(self, data: bytes, deadline: float) -> None:
        try:
            self._ssl.write(data)
        except ssl.SSLError as error:
            raise OSError(f"TLS error while sending: {error}") from error
        await self._flush(deadline)

    async def receive_some(self, deadline: float) -> bytes:
        """Decrypted bytes, at least one; ``b""`` once the peer closed."""
        while True:
            try:
                return self._ssl.read(READ_SIZE)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as error:
                raise OSError(f"TLS error while receiving: {error}") from error
            # The record layer may owe the peer bytes (a key update) before it reads on.
            await self._flush(deadline)
            data = await self._raw.receive_some(deadline)
            if not data:
                return b""
            self._incoming.write(data)

    def looks_closed(self) -> bool:
        # An idle TLS connection may hold records that are not data (TLS 1.3
        # session tickets, which a server sends after the handshake): feed them
        # to the record layer; only a close, an error or stray data means closed.
        while True:
            data = self._raw.receive_nowait()
            if data is None:
                break
            if not data:
                return True
            self._incoming.write(data)
        try:
            self._ssl.read(1)
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError:
            return True
        return True  # application data nobody asked for

    def close(self) -> None:
        self._raw.close()
