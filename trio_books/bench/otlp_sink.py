"""A stand-in OTLP/HTTP trace sink: it takes every export, counts it and answers at once.

Not a trace backend, and never used for correctness (``nox -s jaeger`` sends
traces to a real Jaeger): the ``trio-otel`` target exports every request's spans
here, so that its figure is the price of tracing in the service (making the spans,
encoding them, sending them) and not the speed of a collector sharing its cores.
It reads each body and never decodes it. ``GET /stats`` says how many exports and
bytes arrived, which the benchmark logs to show the spans really left.

    python -m trio_books.bench.otlp_sink --port 5318
"""

from __future__ import annotations

import argparse
import asyncio
import json

# An empty ExportTraceServiceResponse: every span accepted (its protobuf encoding is empty).
ACCEPTED = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"


class Tally:
    """What arrived, over every connection."""

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0

    def stats_response(self) -> bytes:
        body = json.dumps({"exports": self.exports, "bytes": self.bytes}).encode()
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )


class Sink(asyncio.Protocol):
    """One connection: keep-alive requests with Content-Length bodies (what OTLP exporters send)."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].split(b"\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            if head[0].startswith(b"GET /stats"):
                self.transport.write(self.tally.stats_response())  # type: ignore[attr-defined]
                continue
            self.tally.exports += 1
            self.tally.bytes += length
            self.transport.write(ACCEPTED)  # type: ignore[attr-defined]


async def serve(port: int) -> None:
    tally = Tally()
    server = await asyncio.get_running_loop().create_server(lambda: Sink(tally), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5318)
    args = parser.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
