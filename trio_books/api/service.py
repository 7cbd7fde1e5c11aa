"""What the routes ask of Elasticsearch, independent of the event loop.

The one loop-specific piece, running a search's branches together, comes in as
a :class:`~trio_books.api.branches.Concurrency`: the Trio build passes a
nursery-based fan-out, the asyncio build a ``TaskGroup``-based one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from trio_books.api.admission import Gate, GateLimits
from trio_books.api.branches import Answer, Branch, Call, Concurrency
from trio_books.api.graceful import GRACEFUL_KEY
from trio_books.api.metrics import ServiceMetrics
from trio_books.api.readiness import Readiness
from trio_books.core.books import Book, document_to_book
from trio_books.core.completion import (
    AUTHOR_BOOKS_BRANCH,
    AUTHORS_BRANCH,
    TITLES_BRANCH,
    AuthorCompletion,
    CompleteQuery,
    CompleteResponse,
    authors_body,
    book_counts_body,
    parse_author_names,
    parse_book_counts,
    parse_titles,
    titles_body,
)
from trio_books.core.cursor import Cursor, CursorError, check_key, unseal
from trio_books.core.mapping import index_body, replicas_for
from trio_books.core.paging import Params, answer_paging
from trio_books.core.query import (
    HITS_BRANCH,
    SORTS,
    SearchQuery,
    check_caps,
    effective_deadline,
    marks,
    search_requests,
    with_time_limit,
)
from trio_books.core.results import SearchResponse, branch_errors, parse_results, parse_search
from trio_books.core.similar import (
    BOOK_BRANCH,
    SIMILAR_BRANCH,
    SimilarQuery,
    SimilarResponse,
    similar_body,
)
from trio_books.core.suggest import parse_suggestions, suggest_body, suggestion_head, with_tail
from trio_books.core.timeline import Timeline, trace_of
from trio_books.core.trace_context import current_trace
from trio_books.errors import (
    ElasticsearchUnavailable,
    FieldProblem,
    IndexMissing,
    InvalidParameter,
    NotFound,
    TrioBooksError,
)
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import connection_warnings
from trio_books.es.engines import EngineInfo
from trio_books.settings import Settings
from trio_books.transport.quantile import RollingQuantile

log = logging.getLogger("trio_books.service")

# Where the app keeps its service, from start-up to shutdown.
SERVICE_KEY = "trio_books.service"
READY_TIME_LIMIT = 2.0
SUGGEST_BRANCH = "suggest"
# The hedging delay until the hits call's p95 has been observed, and its floor.
HEDGE_DELAY_BEFORE_P95 = 0.1
HEDGE_DELAY_FLOOR = 0.002


class SearchService:
    """The service's operations over one Elasticsearch client."""

    def __init__(
        self,
        es: Elasticsearch,
        settings: Settings,
        concurrency: Concurrency,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.es = es
        self.settings = settings
        self.concurrency = concurrency
        # Counts each Elasticsearch call as its span ends, and the partial answers.
        self.metrics = metrics
        # One gate per serving lifetime: searches and book look-ups share its slots.
        self.gate: Gate = concurrency.gate(
            GateLimits(
                max_in_flight=settings.max_in_flight,
                max_queued=settings.max_queued,
                queue_wait=settings.queue_wait,
                retry_after=settings.retry_after,
            )
        )
        # Seconds each answered hits call took: its p95 is the default hedging delay.
        self.hits_latency = RollingQuantile(0.95)
        # Said once at start, and again on every /readyz: an operator should not miss them.
        self.warnings = connection_warnings(es.config)
        for warning in self.warnings:
            log.warning(warning)
        self.readiness = Readiness(concurrency.lock())
        self._cursor_key = check_key(settings.cursor_key.get_secret_value().encode())
        # Which engine answers: asked at start-up, else again by each /readyz until known.
        self.engine: EngineInfo | None = None
        self._engine_unknown_said = False

    def hedge_delay(self) -> float:
        """Seconds before a hits call is hedged: the setting, else the observed p95."""
        if self.settings.hedge_delay_ms is not None:
            return self.settings.hedge_delay_ms / 1000
        observed = self.hits_latency.value
        return HEDGE_DELAY_BEFORE_P95 if observed is None else max(observed, HEDGE_DELAY_FLOOR)

    def new_timeline(self, started: float | None = None) -> Timeline:
        """A timeline for one request that started at *started* (``time.perf_counter``)."""
        return Timeline(
            cancelled=self.concurrency.cancelled,
            origin=started,
            on_end=self.metrics.observe_span if self.metrics is not None else None,
            trace=current_trace.get(),
        )

    def _search_call(self, body: dict[str, Any]) -> Call:
        async def call(seconds_left: float) -> Answer:
            # The time left is both the client's timeout and Elasticsearch's own.
            return await self.es.search(
                self.settings.index, with_time_limit(body, seconds_left), time_limit=seconds_left
            )

        return call

    def _hits_call(self, body: dict[str, Any], timeline: Timeline) -> Call:
        """The hits call, hedged if the settings say so, its latency observed."""
        plain = self._search_call(body)
        hedge = self.concurrency.hedge if self.settings.hedge_hits else None

        # The event loop's clock, as the client's: a virtual clock drives both in tests.
        clock = self.es.clock

        async def call(seconds_left: float) -> Answer:
            started = clock()
            if hedge is None:
                answer = await plain(seconds_left)
            else:
                answer = await hedge(
                    plain,
                    seconds_left,
                    delay=self.hedge_delay(),
                    timeline=timeline,
                    name=HITS_BRANCH,
                )
            self.hits_latency.add(clock() - started)
            return answer

        return call

    async def search(
        self, query: SearchQuery, timeline: Timeline, params: Params = ()
    ) -> SearchResponse:
        """One search: the hits (required), each facet and maybe suggestions (optional), concurrently.

        *params*: the request's query parameters as sent, for the links to
        the pages beside this one.
        """
        if query.trace and not self.settings.allow_trace:
            raise InvalidParameter(
                [FieldProblem("trace", "disabled", "tracing is turned off on this service")]
            )
        check_caps(query, self.settings.query_caps())
        after = self._unseal(query)
        async with self.gate.admit():
            return await self._search(query, timeline, params, after)

    def _unseal(self, query: SearchQuery) -> Cursor | None:
        if query.cursor is None:
            return None
        try:
            return unseal(
                query.cursor, self._cursor_key, sort=query.sort, width=len(SORTS[query.sort])
            )
        except CursorError as error:
            raise InvalidParameter([FieldProblem("cursor", "cursor", str(error))]) from None

    async def _search(
        self, query: SearchQuery, timeline: Timeline, params: Params, after: Cursor | None
    ) -> SearchResponse:
        requests = search_requests(
            query, self.settings.facet_size, after.after if after is not None else None
        )

        def after_hits(answer: Answer) -> list[Branch]:
            total = answer.get("hits", {}).get("total", {}).get("value", 0)
            if head and isinstance(total, int) and total < self.settings.suggest_below:
                return [Branch(SUGGEST_BRANCH, self._search_call(suggest_body(head)))]
            return []

        head = suggestion_head(query.q) if query.q else None

        branches = [
            Branch(
                name,
                self._hits_call(body, timeline) if name == HITS_BRANCH else self._search_call(body),
                required=name == HITS_BRANCH,
                then=after_hits if name == HITS_BRANCH else None,
            )
            for name, body in requests.items()
        ]
        result = await self.concurrency.fan_out(
            branches,
            deadline=effective_deadline(self.settings.search_deadline, query.timeout),
            timeline=timeline,
        )
        suggestions = (
            with_tail(parse_suggestions(result.answers[SUGGEST_BRANCH], head), head, query.q)
            if query.q and head and SUGGEST_BRANCH in result.answers
            else []
        )
        response = parse_search(
            result.answers, result.failures, suggestions, marked=marks(query), keep=query.size
        )
        if response.partial and self.metrics is not None:
            self.metrics.partial("search")
        hits = result.answers[HITS_BRANCH]
        found, cursor = answer_paging(
            params,
            # Its shape was checked by parse_search.
            hits["hits"]["hits"],
            sort=query.sort,
            page=query.page,
            size=query.size,
            total=response.count,
            by_cursor=after is not None,
            key=self._cursor_key,
            window=self.settings.max_result_window,
            complete=hits.get("timed_out") is not True,
        )
        response.page, response.size, response.pages = found.page, found.size, found.pages
        response.next, response.prev, response.cursor = found.next, found.prev, cursor
        if query.trace:
            response.trace = trace_of(timeline)
        return response

    async def book(self, book_id: int) -> Book:
        async with self.gate.admit():
            return await self._book(book_id)

    async def _book(self, book_id: int) -> Book:
        source = await self.es.get_source(self.settings.index, str(book_id))
        if source is None:
            raise NotFound(f"no book with id {book_id}")
        return document_to_book(source)

    async def similar(
        self, book_id: int, query: SimilarQuery, timeline: Timeline
    ) -> SimilarResponse:
        """Books like book *book_id*: read it, then search by its title words, authors and tags.

        Both calls run under the search's deadline, in one fan-out: the read is
        a required branch, and its answer starts the search (as a follower).
        """

        async def read(seconds_left: float) -> Answer:
            # The fan-out's cancel scope bounds the read: no time limit of its own.
            source = await self.es.get_source(self.settings.index, str(book_id))
            if source is None:
                raise NotFound(f"no book with id {book_id}")
            return source

        def search_like(source: Answer) -> list[Branch]:
            body = similar_body(document_to_book(source), query.size)
            return [Branch(SIMILAR_BRANCH, self._search_call(body), required=True)]

        async with self.gate.admit():
            result = await self.concurrency.fan_out(
                [Branch(BOOK_BRANCH, read, required=True, then=search_like)],
                deadline=self.settings.search_deadline,
                timeline=timeline,
            )
        books, _ = parse_results(result.answers[SIMILAR_BRANCH])
        return SimilarResponse(results=list(books))

    async def complete(self, query: CompleteQuery, timeline: Timeline) -> CompleteResponse:
        """Titles and authors the prefix completes: two branches together, authors optional."""
        authors: list[AuthorCompletion] = []

        def count_books(answer: Answer) -> list[Branch]:
            # A branch of its own, beside the titles if they are still in flight; an
            # answer it cannot read fails it as an optional branch fails.
            async def call(seconds_left: float) -> Answer:
                nonlocal authors
                names = parse_author_names(answer, query.prefix, query.size)
                if names:
                    counts = await self._search_call(book_counts_body(names))(seconds_left)
                    authors = parse_book_counts(counts, names)
                return {}

            return [Branch(AUTHOR_BOOKS_BRANCH, call)]

        branches = [
            Branch(TITLES_BRANCH, self._search_call(titles_body(query)), required=True),
            Branch(AUTHORS_BRANCH, self._search_call(authors_body(query)), then=count_books),
        ]
        async with self.gate.admit():
            result = await self.concurrency.fan_out(
                branches, deadline=self.settings.complete_deadline, timeline=timeline
            )
        errors = branch_errors(result.failures)
        if errors and self.metrics is not None:
            self.metrics.partial("complete")
        return CompleteResponse(
            titles=parse_titles(result.answers[TITLES_BRANCH], query.size),
            # The counts' branch sets them, once it has answered in full.
            authors=authors if AUTHOR_BOOKS_BRANCH in result.answers else [],
            partial=bool(errors),
            errors=errors,
        )

    async def identify_engine(self) -> EngineInfo | None:
        """The engine and version behind the client, asked until one answer names them.

        Nothing in the service depends on it (every engine supported takes the
        same requests: :mod:`trio_books.es.engines`); it is logged and shown on
        ``/readyz`` so that an operator sees what the service runs on. A failure
        is logged, never raised: readiness says whether searches can succeed.
        """
        if self.engine is not None:
            return self.engine
        try:
            self.engine = await self.es.engine_info(
                time_limit=min(READY_TIME_LIMIT, self.settings.es_timeout)
            )
        except (TrioBooksError, ValueError) as error:
            why = error.detail or error.message if isinstance(error, TrioBooksError) else "not JSON"
            # Said once as a warning; every later /readyz asks again, quietly.
            log.log(
                logging.DEBUG if self._engine_unknown_said else logging.WARNING,
                "could not tell which engine answers: %s",
                why,
            )
            self._engine_unknown_said = True
            return None
        if self.engine is not None:
            log.info("search engine: %s", self.engine)
        return self.engine

    async def ready(self) -> str:
        """The cluster's health status; raises when searches cannot succeed (see :mod:`.readiness`)."""
        return await self.readiness.verdict(self._ask_ready)

    async def _ask_ready(self) -> str:
        time_limit = min(READY_TIME_LIMIT, self.settings.es_timeout)
        # The node's own view (local=true), not the elected master's: every poll
        # used to be routed to the master.
        health = await self.es.cluster_health(time_limit=time_limit, local=True)
        status = str(health.get("status"))
        if status not in {"green", "yellow"}:
            raise ElasticsearchUnavailable(f"Elasticsearch cluster health is {status}")
        if not await self.es.index_exists(self.settings.index, time_limit=time_limit):
            raise IndexMissing(f"the index or alias {self.settings.index!r} does not exist")
        return status

    async def ensure_index(self) -> bool:
        """Create the index (with the book mapping) if neither it nor an alias of that name exists.

        With more than one data node the index gets a replica, so a node may fail
        and every shard still has a copy to search.
        """
        if await self.es.index_exists(self.settings.index):
            return False
        health = await self.es.cluster_health()
        replicas = replicas_for(health.get("number_of_data_nodes", 1))
        await self.es.create_index(self.settings.index, index_body(replicas=replicas))
        return True


def draining_after(
    trigger: Callable[[], Awaitable[None]], extensions: Mapping[str, Any]
) -> Callable[[], Awaitable[None]]:
    """*trigger* (a server's shutdown trigger), which then marks the app's service as draining.

    From then on ``/readyz`` answers 503 at once on the connections the server
    still serves, so a load balancer stops sending work while the last
    answers are given; and a request still running near the graceful timeout
    is answered 503 by the app instead of cut by the server.
    """

    async def trigger_then_drain() -> None:
        await trigger()
        service = extensions.get(SERVICE_KEY)
        if isinstance(service, SearchService):
            service.readiness.draining = True
        cut = extensions.get(GRACEFUL_KEY)
        if cut is not None:
            cut.drain()

    return trigger_then_drain
