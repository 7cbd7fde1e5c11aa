"""A latency-injecting STAND-IN for Elasticsearch, for ``bench --upstream latency:Xms`` only.

It is not Elasticsearch and never stands in for it in correctness tests. It
answers every ``_search`` with one canned, well-formed Elasticsearch answer (a
page of books, or none for a facet request, plus every facet's aggregation;
or both completion suggesters for a completion request) after a fixed delay, so the
benchmark can isolate what the concurrency model costs and show the fan-out:
four branches of X ms each should make a search take about X ms, not 4X.

Built for speed on purpose (an ``asyncio.Protocol`` on uvloop when installed,
timers rather than tasks, pipelined requests answered in order) so that it is
never the bottleneck. It also answers ``/_cluster/health`` (green) and sends
``X-Elastic-Product: Elasticsearch``, without which the official client used by
the FastAPI peer refuses to talk to a server.

Run: ``python -m trio_books.bench.latency_standin --port 5150 --latency-ms 20``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import deque
from typing import Any, cast

import orjson

from trio_books.core.books import Book, book_to_document
from trio_books.core.mapping import COMPLETION_FIELDS
from trio_books.core.synthetic import synthetic_books

STANDIN_HEADER = b"X-Latency-Standin"


def source_of(book: Book) -> dict[str, Any]:
    """A book's ``_source`` as a search gets it: the index's completion inputs left out."""
    document = book_to_document(book)
    return {key: value for key, value in document.items() if key not in COMPLETION_FIELDS}


def canned_search_answer(page: int = 20) -> bytes:
    """One answer that every branch of a search can parse: hits and all three facets.

    With *page* 0 it is the answer to a facet request (``"size":0``): as from
    Elasticsearch, the total and the aggregations, no documents. It also counts
    the books of a completion's authors.
    """
    books = list(synthetic_books(page))
    suggested = list(synthetic_books(8))
    answer: dict[str, Any] = {
        "took": 1,
        "timed_out": False,
        "hits": {
            "total": {"value": 1234, "relation": "eq"},
            "hits": [
                {"_index": "standin", "_id": str(b.book_id), "_source": source_of(b)} for b in books
            ],
        },
        "aggregations": {
            "tags": {
                "doc_count": 3000,
                "slugs": {
                    "buckets": [
                        {
                            "key": slug,
                            "doc_count": 100 - rank,
                            "title": {"buckets": [{"key": slug.title(), "doc_count": 100 - rank}]},
                            "books": {"doc_count": 100 - rank},
                        }
                        for rank, slug in enumerate(("fantasy", "classics", "poetry", "war"))
                    ]
                },
            },
            "years": {"buckets": [{"key": 1990 + i, "doc_count": 50 - i} for i in range(20)]},
            "languages": {
                "buckets": [
                    {"key": c, "doc_count": 90 - i} for i, c in enumerate(("eng", "fre", "ger"))
                ]
            },
            # A completion's author counts.
            "authors": {
                "doc_count": 100,
                "names": {
                    "buckets": [
                        {"key": name, "doc_count": 2, "books": {"doc_count": 2}}
                        for name in dict.fromkeys(a.name for b in suggested for a in b.authors)
                    ]
                },
            },
        },
    }
    return orjson.dumps(answer)


def canned_complete_answer() -> bytes:
    """The answer to a completion request: both suggesters, eight options each, no hits."""
    suggested = list(synthetic_books(8))
    answer: dict[str, Any] = {
        "took": 1,
        "timed_out": False,
        "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []},
        "suggest": {
            field: [
                {
                    "text": "s",
                    "offset": 0,
                    "length": 1,
                    "options": [
                        {
                            "text": b.title,
                            "_index": "standin",
                            "_id": str(b.book_id),
                            "_score": 1.0,
                            "_source": {
                                "book_id": b.book_id,
                                "title": b.title,
                                "authors": [{"name": a.name} for a in b.authors],
                            },
                        }
                        for b in suggested
                    ],
                }
            ]
            for field in ("title_complete", "author_complete")
        },
    }
    return orjson.dumps(answer)


def http_response(status: str, body: bytes, latency_ms: float) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Elastic-Product: Elasticsearch\r\n"
        f"{STANDIN_HEADER.decode()}: {latency_ms:g}ms\r\n\r\n"
    )
    return head.encode() + body


class StandIn(asyncio.Protocol):
    """One connection: parse requests, answer each after its delay, in request order."""

    def __init__(self, latency_s: float, answers: dict[str, bytes]) -> None:
        self.latency_s = latency_s
        self.answers = answers
        self.buffer = bytearray()
        # Answers not yet written, oldest first; None until that request's delay is over.
        self.pending: deque[list[bytes | None]] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).split(b"\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return  # the body is still coming
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, target = head[0].split(b" ")[:2]
            self.answer(method, target.split(b"?")[0], body)

    def answer(self, method: bytes, path: bytes, body: bytes = b"") -> None:
        slot: list[bytes | None] = [None]
        self.pending.append(slot)
        if path.endswith(b"/_search"):
            # A facet request asks for no documents and, as from Elasticsearch, gets none;
            # a completion request asks for suggestions.
            if b'"suggest"' in body:
                kind = "complete"
            else:
                kind = "facets" if b'"size":0' in body else "search"
            asyncio.get_running_loop().call_later(
                self.latency_s, self.ready, slot, self.answers[kind]
            )
        elif path == b"/_cluster/health":
            self.ready(slot, self.answers["health"])
        elif method == b"HEAD":
            self.ready(slot, self.answers["head"])
        else:
            self.ready(slot, self.answers["missing"])

    def ready(self, slot: list[bytes | None], response: bytes) -> None:
        slot[0] = response
        while self.pending and self.pending[0][0] is not None:
            answer = self.pending.popleft()[0]
            if self.transport is not None and not self.transport.is_closing() and answer:
                self.transport.write(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve_standin(host: str, port: int, latency_ms: float) -> None:
    """Serve until cancelled (or killed); prints its address once listening."""
    answers = {
        "search": http_response("200 OK", canned_search_answer(), latency_ms),
        "facets": http_response("200 OK", canned_search_answer(page=0), latency_ms),
        "complete": http_response("200 OK", canned_complete_answer(), latency_ms),
        "health": http_response("200 OK", b'{"status":"green","standin":true}', latency_ms),
        "head": http_response("200 OK", b"", latency_ms),
        "missing": http_response("404 Not Found", b'{"error":{"type":"not_found"}}', latency_ms),
    }
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StandIn(latency_ms / 1000, answers), host, port)
    print(
        f"latency stand-in (NOT Elasticsearch, {latency_ms:g} ms) on http://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A latency-injecting stand-in for Elasticsearch.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_standin(args.host, args.port, args.latency_ms))
    else:
        uvloop.run(serve_standin(args.host, args.port, args.latency_ms))


if __name__ == "__main__":
    main()
