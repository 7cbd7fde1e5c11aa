"""``GET /metrics``: what the service is doing, in Prometheus's text format.

Two kinds of figures, one registry per app:

- **Histograms and counters the request path updates**: each answered request
  (route, method, status, seconds), and each Elasticsearch call as the
  request's timeline records it (branch, node, outcome, seconds). The calls
  come from :attr:`Timeline.on_end <trio_books.core.timeline.Timeline.on_end>`:
  the same spans ``Server-Timing`` and ``?trace=1`` show, not a second
  bookkeeping that could disagree with them.
- **Counters the service already keeps**, read when Prometheus scrapes
  (:class:`LiveCollector`): the admission gate, the door shedder, the request
  tally, each node's connection pool and health, the observed hits p95 and
  the hedging delay it sets. Nothing is copied on the request path to serve them.

A scrape costs no Elasticsearch call, and ``/metrics`` is never shed: an
overloaded service is the one whose figures matter most.

Cardinality stays bounded whatever clients send: the route label is the
route's rule (``/api/v1/books/<int:book_id>``, never the id), ``unmatched``
for a path no route has, and methods outside the usual few are ``other``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from trio_books.core.timeline import Outcome, Span
from trio_books.errors import ConnectionsExhausted
from trio_books.es.connection import redact_url
from trio_books.transport.connection_pool import Transport

if TYPE_CHECKING:
    from trio_books.api.service import SearchService
    from trio_books.api.shedding import DoorShedder
    from trio_books.api.tally import RequestTally

# No ``*_created`` series beside every counter and histogram: they double the
# scrape's size and Prometheus has no use for them in the text format.
disable_created_metrics()  # type: ignore[no-untyped-call]

METRICS_PATH = "/metrics"
CONTENT_TYPE = CONTENT_TYPE_LATEST
NAMESPACE = "trio_books"
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
UNMATCHED = "unmatched"

# Seconds: a search answers in milliseconds, a deadline cuts it at seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The timeline's outcome of a call → the metric's outcome label.
CALL_OUTCOMES: dict[Outcome, str] = {
    "ok": "ok",
    "error": "error",
    "timed out": "timeout",
    "cancelled": "cancelled",
    "lost a hedge": "lost-hedge",
    "running": "cancelled",
}
SHED_CODE = ConnectionsExhausted.code


def call_outcome(span: Span) -> str:
    """The outcome label of one Elasticsearch call's span."""
    if span.code == SHED_CODE:
        return "shed"  # every connection slot was taken: refused by our own pool
    return CALL_OUTCOMES[span.outcome]


def branch_of(span: Span) -> str:
    """The fan-out branch a span belongs to: ``hits#hedge`` → ``hits``."""
    return span.name.split("#", 1)[0]


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


class ServiceMetrics:
    """The app's registry, and the figures the request path updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "request_duration_seconds",
            "Requests answered by the app, by route, method and status.",
            ["route", "method", "status"],
            namespace=NAMESPACE,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.es_calls = Histogram(
            "es_call_duration_seconds",
            "Elasticsearch calls of a request's fan-out, by branch, node and outcome "
            "(a call's retries on another node are within it).",
            ["branch", "node", "outcome"],
            namespace=NAMESPACE,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.failed_attempts = Counter(
            "es_failed_attempts",
            "Elasticsearch attempts that failed, by node and error, whether or not "
            "another node was tried after.",
            ["node", "error"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.hedges_sent = Counter(
            "hedges_sent",
            "Second attempts sent to another node because the first was slow.",
            ["branch"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.hedges_won = Counter(
            "hedges_won",
            "Second attempts that answered first.",
            ["branch"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.deadline_misses = Counter(
            "deadline_misses",
            "Fan-out branches cut by the request's deadline.",
            ["branch"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.partial_answers = Counter(
            "partial_answers",
            "Answers given without an optional part (a facet, the suggestions) that failed.",
            ["operation"],
            namespace=NAMESPACE,
            registry=self.registry,
        )

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route or UNMATCHED, method_label(method), str(status)).observe(seconds)

    def observe_span(self, span: Span) -> None:
        """Count one span of a request's timeline as it ends (:attr:`Timeline.on_end`)."""
        branch = branch_of(span)
        node = redact_url(span.node) if span.node else "none"
        if "#try" in span.name:
            # An attempt that failed inside a call; the call itself ends on its own span.
            self.failed_attempts.labels(node, span.code or "error").inc()
            return
        if span.outcome == "timed out":
            self.deadline_misses.labels(branch).inc()
        if span.hedged:
            return  # its calls are its #first and #hedge sub-spans
        if span.name.endswith("#hedge"):
            self.hedges_sent.labels(branch).inc()
            if span.outcome == "ok":
                self.hedges_won.labels(branch).inc()
        self.es_calls.labels(branch, node, call_outcome(span)).observe(span.duration)

    def partial(self, operation: str) -> None:
        self.partial_answers.labels(operation).inc()

    def watch(self, sources: Callable[[], LiveSources]) -> None:
        """Read the service's own counters from *sources* at each scrape."""
        self.registry.register(LiveCollector(sources))

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class LiveSources:
    """What the app holds now; ``service`` is ``None`` while it is not serving."""

    tally: RequestTally | None
    shedder: DoorShedder | None
    service: SearchService | None


def _gauge(name: str, doc: str, value: float, labels: list[str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)
    if labels is None:
        family.add_metric([], value)
    return family


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{NAMESPACE}_{name}", doc)
    family.add_metric([], value)
    return family


class LiveCollector:
    """The service's own counters, read at scrape time."""

    def __init__(self, sources: Callable[[], LiveSources]) -> None:
        self.sources = sources

    def describe(self) -> list[Metric]:
        return []  # names depend on what is serving: checked at collect time instead

    def collect(self) -> Iterator[Metric]:
        now = self.sources()
        if now.tally is not None:
            yield _counter("requests_begun", "HTTP requests handed to the app.", now.tally.begun)
            yield _counter(
                "requests_answered", "HTTP requests answered in full.", now.tally.answered
            )
        if now.shedder is not None:
            yield _gauge("door_inside", "Gated requests inside the app now.", now.shedder.inside)
            yield _counter(
                "door_shed", "Requests answered 503 at the door, before the app.", now.shedder.shed
            )
        yield _gauge(
            "serving", "1 while the Elasticsearch client is open.", now.service is not None
        )
        if now.service is not None:
            yield from service_families(now.service)


def service_families(service: SearchService) -> Iterator[Metric]:
    """The gate's, the pools' and the nodes' figures of a serving service."""
    gate = service.gate
    yield _gauge("gate_in_flight", "Requests holding an admission slot.", gate.in_flight)
    yield _gauge("gate_queued", "Requests waiting for an admission slot.", gate.queued)
    yield _gauge("gate_capacity", "Admission slots (MAX_IN_FLIGHT).", gate.limits.max_in_flight)
    yield _counter("gate_admitted", "Requests admitted by the gate.", gate.counters.admitted)
    yield _counter("gate_shed", "Requests the gate answered 503.", gate.counters.shed)
    es = service.es
    yield _gauge("es_in_flight", "Elasticsearch calls under way.", es.in_flight)
    p95 = service.hits_latency.value
    if p95 is not None:
        yield _gauge("hits_p95_seconds", "Observed p95 of the hits call.", p95)
    yield _gauge(
        "hedge_delay_seconds", "Seconds before a hits call is hedged.", service.hedge_delay()
    )
    now = es.clock()
    alive = _gauge(
        "es_node_alive", "1 if the node is taken for calls, 0 while it sits out.", 0, ["node"]
    )
    failures = _gauge("es_node_failures", "The node's failures in a row.", 0, ["node"])
    backoff = _gauge(
        "es_node_backoff_seconds", "Seconds until a dead node is tried again.", 0, ["node"]
    )
    for node in es.nodes.nodes:
        label = [redact_url(node.url)]
        alive.add_metric(label, node.alive(now))
        failures.add_metric(label, node.failures)
        backoff.add_metric(label, max(0.0, node.dead_until - now))
    yield from (alive, failures, backoff)
    yield from pool_families(es.transport)


def pool_families(transport: object) -> Iterator[Metric]:
    """Each node's connection pool; nothing for a transport that keeps no statistics."""
    if not isinstance(transport, Transport):
        return
    gauges = {
        "in_use": "Connections lent to a call now.",
        "idle": "Open connections waiting to be reused.",
        "waiting": "Calls waiting for a connection slot.",
        "capacity": "Connection slots.",
    }
    counters = {
        "opened": "Connections opened.",
        "reused": "Calls that reused an idle connection.",
        "discarded": "Connections closed (idle too long, broken, or cut).",
        "shed": "Calls refused because every slot and wait place was taken.",
        "stale_retries": "Calls resent once on a fresh connection after a stale one failed.",
    }
    stats = transport.stats()
    for field, doc in gauges.items():
        family = GaugeMetricFamily(f"{NAMESPACE}_es_pool_{field}", doc, labels=["node"])
        for key, pool in stats.items():
            family.add_metric([pool_node(key)], getattr(pool, field))
        yield family
    for field, doc in counters.items():
        counter = CounterMetricFamily(f"{NAMESPACE}_es_pool_{field}", doc, labels=["node"])
        for key, pool in stats.items():
            counter.add_metric([pool_node(key)], getattr(pool, field))
        yield counter


def pool_node(key: str) -> str:
    """A pool's node as the other metrics name it: ``127.0.0.1:9200`` → ``http://127.0.0.1:9200``."""
    return key if "://" in key else f"http://{key}"
