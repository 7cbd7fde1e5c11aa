"""The metrics' bookkeeping, without a server: what a span, a request and the live counters become.

The scrape of a serving app (and of a real Prometheus) is in ``test_metrics_http.py``.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from trio_books.api.metrics import LiveSources, ServiceMetrics
from trio_books.api.metrics_listener import MetricsListener
from trio_books.api.shedding import DoorShedder
from trio_books.api.tally import RequestTally
from trio_books.core.timeline import Outcome, Span

NODE = "http://127.0.0.1:9200"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(metrics: ServiceMetrics) -> Samples:
    """Every sample of a scrape, by name and labels, parsed as Prometheus parses the text."""
    text = metrics.render().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def ended(
    name: str,
    outcome: Outcome,
    *,
    node: str | None = NODE,
    code: str | None = None,
    hedged: bool = False,
    seconds: float = 0.02,
) -> Span:
    return Span(name, start=0.0, end=seconds, node=node, outcome=outcome, code=code, hedged=hedged)


def call_count(found: Samples, branch: str, outcome: str, node: str = NODE) -> float | None:
    return value(
        found,
        "trio_books_es_call_duration_seconds_count",
        branch=branch,
        node=node,
        outcome=outcome,
    )


def test_each_call_is_counted_by_branch_node_and_outcome_with_its_latency() -> None:
    metrics = ServiceMetrics()
    metrics.observe_span(ended("hits", "ok", seconds=0.003))
    metrics.observe_span(ended("facet-tags", "ok", seconds=0.2))
    metrics.observe_span(ended("facet-years", "cancelled"))
    metrics.observe_span(ended("facet-languages", "error", code="elasticsearch_error"))
    found = samples(metrics)
    assert call_count(found, "hits", "ok") == 1
    assert call_count(found, "facet-tags", "ok") == 1
    assert call_count(found, "facet-years", "cancelled") == 1
    assert call_count(found, "facet-languages", "error") == 1
    # The latency lands in its bucket: 3 ms is under 5 ms, 200 ms is not under 100 ms.
    bucket = "trio_books_es_call_duration_seconds_bucket"
    hits = {"branch": "hits", "node": NODE, "outcome": "ok"}
    tags = {"branch": "facet-tags", "node": NODE, "outcome": "ok"}
    assert value(found, bucket, **hits, le="0.0025") == 0
    assert value(found, bucket, **hits, le="0.005") == 1
    assert value(found, bucket, **tags, le="0.1") == 0
    assert value(found, bucket, **tags, le="0.25") == 1


def test_a_deadline_a_full_pool_and_a_lost_hedge_have_outcomes_of_their_own() -> None:
    metrics = ServiceMetrics()
    metrics.observe_span(ended("facet-tags", "timed out", code="deadline_exceeded"))
    metrics.observe_span(ended("facet-years", "error", code="overloaded"))
    metrics.observe_span(ended("hits#first", "lost a hedge"))
    found = samples(metrics)
    assert call_count(found, "facet-tags", "timeout") == 1
    assert call_count(found, "facet-years", "shed") == 1
    assert call_count(found, "hits", "lost-hedge") == 1
    assert value(found, "trio_books_deadline_misses_total", branch="facet-tags") == 1
    assert value(found, "trio_books_deadline_misses_total", branch="facet-years") is None


def test_a_hedged_call_counts_its_attempts_not_itself() -> None:
    metrics = ServiceMetrics()
    second = "http://127.0.0.1:9201"
    metrics.observe_span(ended("hits#first", "lost a hedge"))
    metrics.observe_span(ended("hits#hedge", "ok", node=second))
    metrics.observe_span(ended("hits", "ok", node=second, hedged=True))
    # A hedge that lost: sent, not won.
    metrics.observe_span(ended("hits#first", "ok"))
    metrics.observe_span(ended("hits#hedge", "lost a hedge", node=second))
    metrics.observe_span(ended("hits", "ok", hedged=True))
    found = samples(metrics)
    assert call_count(found, "hits", "ok") == 1
    assert call_count(found, "hits", "ok", node=second) == 1
    assert call_count(found, "hits", "lost-hedge") == 1
    assert call_count(found, "hits", "lost-hedge", node=second) == 1
    assert value(found, "trio_books_hedges_sent_total", branch="hits") == 2
    assert value(found, "trio_books_hedges_won_total", branch="hits") == 1


def test_a_failed_attempt_is_counted_apart_from_the_call_that_retried_it() -> None:
    metrics = ServiceMetrics()
    dead = "http://127.0.0.1:9209"
    metrics.observe_span(ended("hits#try1", "error", node=dead, code="elasticsearch_unavailable"))
    metrics.observe_span(ended("hits", "ok"))
    found = samples(metrics)
    assert (
        value(
            found,
            "trio_books_es_failed_attempts_total",
            node=dead,
            error="elasticsearch_unavailable",
        )
        == 1
    )
    assert call_count(found, "hits", "ok") == 1
    assert call_count(found, "hits", "error", node=dead) is None


def test_a_node_url_never_carries_credentials_into_a_label() -> None:
    metrics = ServiceMetrics()
    metrics.observe_span(ended("hits", "ok", node="https://elastic:s3cret@es.example:9243"))
    text = metrics.render().decode()
    assert "s3cret" not in text
    assert 'node="https://es.example:9243"' in text


def test_requests_are_labelled_by_route_rule_with_bounded_methods() -> None:
    metrics = ServiceMetrics()
    metrics.observe_request("/api/v1/books/<int:book_id>", "GET", 200, 0.004)
    metrics.observe_request("/api/v1/books/<int:book_id>", "GET", 404, 0.001)
    metrics.observe_request(None, "GET", 404, 0.001)
    metrics.observe_request(None, "BREW", 405, 0.001)
    found = samples(metrics)
    name = "trio_books_request_duration_seconds_count"
    book = "/api/v1/books/<int:book_id>"
    assert value(found, name, route=book, method="GET", status="200") == 1
    assert value(found, name, route=book, method="GET", status="404") == 1
    assert value(found, name, route="unmatched", method="GET", status="404") == 1
    assert value(found, name, route="unmatched", method="other", status="405") == 1


def test_partial_answers_are_counted_by_operation() -> None:
    metrics = ServiceMetrics()
    metrics.partial("search")
    metrics.partial("search")
    metrics.partial("complete")
    found = samples(metrics)
    assert value(found, "trio_books_partial_answers_total", operation="search") == 2
    assert value(found, "trio_books_partial_answers_total", operation="complete") == 1


async def test_the_live_counters_are_read_at_scrape_time() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    tally = RequestTally(app)  # type: ignore[arg-type]
    shedder = DoorShedder(app, prefix="/api/v1", limit=1, retry_after=1)  # type: ignore[arg-type]
    metrics = ServiceMetrics()
    metrics.watch(lambda: LiveSources(tally=tally, shedder=shedder, service=None))
    before = samples(metrics)
    tally.begun, tally.answered, shedder.inside, shedder.shed = 7, 6, 1, 3
    after = samples(metrics)
    assert value(before, "trio_books_requests_begun_total") == 0
    assert value(after, "trio_books_requests_begun_total") == 7
    assert value(after, "trio_books_requests_answered_total") == 6
    assert value(after, "trio_books_door_inside") == 1
    assert value(after, "trio_books_door_shed_total") == 3
    # Not serving: no gate, pool or node figures, and it says so.
    assert value(after, "trio_books_serving") == 0
    assert not any(name.startswith("trio_books_gate_") for name, _ in after)


async def test_the_metrics_port_answers_the_metrics_only_and_the_public_port_goes_to_the_app() -> (
    None
):
    reached: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        reached.append(str(scope["path"]))

    metrics = ServiceMetrics()
    metrics.observe_request("/healthz", "GET", 200, 0.001)
    listener = MetricsListener(app, port=9464, metrics=metrics, path="/metrics")  # type: ignore[arg-type]

    async def call(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
        sent: list[dict[str, object]] = []

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "http", "server": ("127.0.0.1", port), "path": path, "method": method}
        await listener(scope, None, send)  # type: ignore[arg-type]
        if not sent:
            return 0, b""
        return int(sent[0]["status"]), bytes(sent[1]["body"])  # type: ignore[call-overload]

    status, body = await call(9464, "/metrics")
    assert status == 200
    assert b'trio_books_request_duration_seconds_count{method="GET",route="/healthz"' in body
    assert (await call(9464, "/api/v1/search/"))[0] == 404
    assert (await call(9464, "/metrics", "POST"))[0] == 405
    assert (await call(9464, "/metrics", "HEAD")) == (200, b"")
    # The public port: the app answers (it has no /metrics route then), the listener nothing.
    assert await call(5000, "/metrics") == (0, b"")
    assert await call(5000, "/api/v1/search/") == (0, b"")
    assert reached == ["/metrics", "/api/v1/search/"]
