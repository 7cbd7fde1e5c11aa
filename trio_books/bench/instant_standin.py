"""A stand-in upstream that answers every request at once with one canned Elasticsearch answer.

Not Elasticsearch, and never used for correctness: it takes Elasticsearch's
cost out of a benchmark so that what remains is the client (the issue's
"local upstream that answers at once with a small Elasticsearch-like JSON
body"). The answer (hits and every facet's aggregation) is captured from a
real search first. An ``asyncio.Protocol``: keep-alive, Content-Length bodies.

    python -m trio_books.bench.instant_standin --answer answer.json --port 5190
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path


class Upstream(asyncio.Protocol):
    def __init__(self, response: bytes) -> None:
        self.response = response
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            self.transport.write(self.response)  # type: ignore[attr-defined]


async def serve(port: int, body: bytes) -> None:
    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"x-elastic-product: Elasticsearch\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    server = await asyncio.get_running_loop().create_server(
        lambda: Upstream(response), "127.0.0.1", port
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answer", type=Path, required=True)
    parser.add_argument("--port", type=int, default=5190)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.answer.read_bytes()))


if __name__ == "__main__":
    main()
