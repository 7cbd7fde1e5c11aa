"""A bounded load generator: a fixed number of clients, each sending one request after another.

Bounded in concurrency and in time, loopback only. Each request's start,
duration and outcome is kept, so a drill can split them by phase or by what
happened (answered, refused, dropped).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import trio


@dataclass(frozen=True)
class Outcome:
    """One request: when it started (``trio.current_time()``), how long, and how it ended."""

    started: float
    seconds: float
    status: int | None
    error: str | None = None
    # Kept for 503s, which must say when to come back.
    retry_after: str | None = None
    # The transport error's own words (which tell "no answer at all" from "cut mid-answer"),
    # or an error answer's ``error`` code.
    detail: str | None = None

    @property
    def ended(self) -> float:
        return self.started + self.seconds


def error_code(response: httpx.Response) -> str:
    """The ``error`` field of an error answer's JSON body, or what the body was instead."""
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else "no error field"


def http_client(base_url: str, concurrency: int, timeout: float = 30) -> httpx.AsyncClient:
    """A client with one pooled connection per concurrent request."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout)


async def generate(
    client: httpx.AsyncClient,
    paths: Sequence[str],
    *,
    concurrency: int,
    seconds: float,
    outcomes: list[Outcome],
    stop: Callable[[], bool] = lambda: False,
    retry_stale: bool = True,
    retries: list[float] | None = None,
) -> None:
    """Run *concurrency* clients for *seconds* (or until *stop*), appending to *outcomes*.

    With *retry_stale*, a request the server closed the connection under
    without answering (``RemoteProtocolError``: it idled the keep-alive
    connection out just as the client reused it) is sent once more, as
    browsers and urllib3 do for idempotent requests; their start times go to *retries*.
    """
    deadline = trio.current_time() + seconds
    retries = [] if retries is None else retries

    async def one_client(number: int) -> None:
        sent = 0
        while trio.current_time() < deadline and not stop():
            path = paths[(number * 7919 + sent) % len(paths)]
            sent += 1
            started = trio.current_time()
            try:
                try:
                    response = await client.get(path)
                except httpx.RemoteProtocolError:
                    if not retry_stale:
                        raise
                    retries.append(started)
                    response = await client.get(path)
            except httpx.TransportError as error:
                outcomes.append(
                    Outcome(
                        started,
                        trio.current_time() - started,
                        None,
                        type(error).__name__,
                        detail=str(error),
                    )
                )
                # A refused connection returns at once: do not spin on it.
                await trio.sleep(0.01)
            else:
                outcomes.append(
                    Outcome(
                        started,
                        trio.current_time() - started,
                        response.status_code,
                        retry_after=response.headers.get("retry-after"),
                        detail=None if response.is_success else error_code(response),
                    )
                )

    # Each client is a task of this nursery: all are done when generate returns.
    async with trio.open_nursery() as nursery:
        for number in range(concurrency):
            nursery.start_soon(one_client, number, name=f"load-client-{number}")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The *fraction* percentile of *values* (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass(frozen=True)
class Summary:
    """What a set of outcomes adds up to."""

    requests: int
    ok: int
    shed: int
    # 504: admitted, but the search deadline passed first.
    timed_out: int
    other_status: int
    errors: int
    seconds: float
    p50_ok_ms: float
    p99_ok_ms: float
    p99_shed_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"{self.requests} requests ({self.rate:.0f}/s): {self.ok} ok, {self.shed} shed (503), "
            f"{self.timed_out} past the deadline (504), {self.other_status} other statuses, {self.errors} transport errors; "
            f"accepted p50 {self.p50_ok_ms:.1f} ms, p99 {self.p99_ok_ms:.1f} ms; "
            f"503 p99 {self.p99_shed_ms:.1f} ms"
        )


def summarise(outcomes: Sequence[Outcome], seconds: float) -> Summary:
    ok = [o.seconds * 1000 for o in outcomes if o.status == 200]
    shed = [o.seconds * 1000 for o in outcomes if o.status == 503]
    return Summary(
        requests=len(outcomes),
        ok=len(ok),
        shed=len(shed),
        timed_out=sum(1 for o in outcomes if o.status == 504),
        other_status=sum(1 for o in outcomes if o.status not in (None, 200, 503, 504)),
        errors=sum(1 for o in outcomes if o.status is None),
        seconds=seconds,
        p50_ok_ms=percentile(ok, 0.5),
        p99_ok_ms=percentile(ok, 0.99),
        p99_shed_ms=percentile(shed, 0.99),
    )
