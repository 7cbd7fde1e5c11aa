"""gzip both ways: request bodies compressed when asked, answers decoded, never past the cap.

Against the session's real Elasticsearch, which decompresses gzip request
bodies and compresses answers when the request accepts gzip.
"""

from __future__ import annotations

import gzip
from typing import Any

import h11
import pytest

from trio_books.es.client import Elasticsearch
from trio_books.es.connection import plain_config
from trio_books.es.opening import open_elasticsearch
from trio_books.transport.http11 import Answer, ResponseTooLarge, decoded_body


def test_a_gzip_answer_is_decoded_and_an_identity_one_left_alone() -> None:
    body = b'{"took": 1}' * 100
    zipped = Answer(200, [(b"content-encoding", b"gzip")], gzip.compress(body), b"OK")
    assert decoded_body(zipped) == body
    assert decoded_body(Answer(200, [], body, b"OK")) is body


def test_a_small_gzip_body_that_inflates_past_the_cap_is_refused() -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(ResponseTooLarge):
        decoded_body(Answer(200, [(b"content-encoding", b"gzip")], bomb, b"OK"), 1_000_000)


def test_an_unknown_content_encoding_is_an_error_not_garbage() -> None:
    with pytest.raises(h11.RemoteProtocolError):
        decoded_body(Answer(200, [(b"content-encoding", b"br")], b"...", b"OK"))


@pytest.mark.parametrize("compress", [False, True])
async def test_a_search_with_compression_round_trips_through_elasticsearch(
    es_url: str, es: Elasticsearch, catalogue_index: str, compress: bool
) -> None:
    config = plain_config([es_url]).replace(http_compress=compress)
    seen: list[tuple[bytes, Answer]] = []
    async with open_elasticsearch(config) as compressed:
        raw = compressed.raw
        assert raw is not None

        async def recording(*args: Any, **kwargs: Any) -> Answer:
            answer: Answer = await exchange(*args, **kwargs)
            seen.append((args[4], answer))
            return answer

        exchange, raw.exchange = raw.exchange, recording  # type: ignore[method-assign]
        answer = await compressed.search(catalogue_index, {"query": {"match": {"title": "hunger"}}})
    ((sent, received),) = seen
    encoding = dict(received.headers).get(b"content-encoding")
    if compress:
        assert sent[:2] == b"\x1f\x8b"  # the gzip magic: the body went compressed
        assert encoding == b"gzip"
    else:
        assert sent.startswith(b"{")
        assert encoding is None
    # Elasticsearch read the body (else a 400 or 500) and its answer was decoded.
    assert answer["hits"]["total"]["value"] >= 1
