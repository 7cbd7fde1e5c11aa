"""Every error trio_books raises on purpose, each knowing the HTTP status it maps to.

Hierarchy::

    TrioBooksError                      500  base class
    ├── HttpProblem                     4xx  routing: an unknown route, a wrong method
    ├── InvalidParameter                422  a request parameter breaks a rule
    ├── NotFound                        404  an unknown book or route
    ├── CorsRefused                     403  a preflight from an origin not allowed
    ├── RequestTooLarge                 413  a request part past its cap
    │   ├── BodyTooLarge                413  a request body past ``max_body_bytes``
    │   ├── UrlTooLong                  414  a URL past ``max_url_length``
    │   └── HeadersTooLarge             431  headers past ``max_header_bytes`` or ``max_header_count``
    ├── Overloaded                      503  too many searches in progress: shed at once
    ├── ShuttingDown                    503  draining after a stop signal (``/readyz``)
    ├── ElasticsearchError              502  Elasticsearch answered, but not as expected
    │   ├── IndexMissing                503  the index (or alias) does not exist yet
    │   └── AnswerTooLarge              502  an answer past ``es_max_response_bytes``
    ├── ElasticsearchUnavailable        503  Elasticsearch could not be reached
    │   ├── TlsExpected                 503  an http:// URL for a node that speaks TLS
    │   ├── ConnectionsExhausted        503  every connection to every node is busy: shed
    │   ├── CredentialsRefused          503  Elasticsearch answered 401 or 403
    │   └── CertificateRefused          503  the node's TLS certificate was not accepted
    ├── DeadlineExceeded                504  the search's deadline passed first
    │   └── ElasticsearchTimeout        504  an Elasticsearch call timed out
    ├── ResponseShapeError              502  an Elasticsearch answer did not parse
    └── UsageError                      (CLI exit code 2) bad command-line use or environment
        └── LocalElasticsearchError     the local Elasticsearch could not be provisioned
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldProblem:
    """One broken rule: which field, which rule, and a sentence for people."""

    field: str
    rule: str
    message: str


class TrioBooksError(Exception):
    """Base class; ``status`` is the HTTP status and ``code`` a stable machine-readable name.

    ``message`` is for people who run the service (the CLI prints it, the log
    line carries it). An HTTP client gets :attr:`public_message`: the errors
    that come from upstream set ``PUBLIC_MESSAGE``, one fixed sentence per
    kind, because their messages may name nodes, indices or Elasticsearch's own
    words, which are the operator's business, not the client's.
    """

    status: int = 500
    code: str = "internal_error"
    PUBLIC_MESSAGE: ClassVar[str | None] = None

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # What only the log line gets (node, credential kind, upstream text);
        # ``message`` is what the client sees.
        self.detail = detail

    @property
    def public_message(self) -> str:
        """What an HTTP client is told."""
        return self.PUBLIC_MESSAGE or self.message

    @property
    def log_message(self) -> str:
        """What the log line with the request id says: everything known."""
        if self.detail and self.detail != self.message:
            return f"{self.message} ({self.detail})"
        return self.message

    def headers(self) -> dict[str, str]:
        """Extra response headers this error asks for."""
        return {}


class HttpProblem(TrioBooksError):
    """A plain HTTP error from routing (unknown route, wrong method…), keeping its status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class InvalidParameter(TrioBooksError):
    status = 422
    code = "invalid_parameter"

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class NotFound(TrioBooksError):
    status = 404
    code = "not_found"


class CorsRefused(TrioBooksError):
    status = 403
    code = "cors_refused"


class RequestTooLarge(TrioBooksError):
    """A part of the request is larger than the service accepts."""

    status = 413
    code = "request_too_large"


class BodyTooLarge(RequestTooLarge):
    code = "body_too_large"


class UrlTooLong(RequestTooLarge):
    status = 414
    code = "url_too_long"


class HeadersTooLarge(RequestTooLarge):
    status = 431
    code = "headers_too_large"


class Overloaded(TrioBooksError):
    """Too many searches in progress: answered at once so clients can go elsewhere or retry."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ShuttingDown(TrioBooksError):
    """The service is draining after a stop signal: ``/readyz`` says so at once."""

    status = 503
    code = "shutting_down"


class ElasticsearchError(TrioBooksError):
    status = 502
    code = "elasticsearch_error"
    PUBLIC_MESSAGE = "Elasticsearch could not carry out the search"


class IndexMissing(ElasticsearchError):
    status = 503
    code = "index_missing"
    PUBLIC_MESSAGE = "the book catalogue is not loaded yet"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class AnswerTooLarge(ElasticsearchError):
    """An Elasticsearch answer was larger than ``es_max_response_bytes``: its connection was closed."""

    code = "elasticsearch_answer_too_large"
    PUBLIC_MESSAGE = "Elasticsearch's answer was larger than the service accepts"

    def __init__(self, *, detail: str) -> None:
        super().__init__(self.PUBLIC_MESSAGE, detail=detail)


class ElasticsearchUnavailable(TrioBooksError):
    status = 503
    code = "elasticsearch_unavailable"
    PUBLIC_MESSAGE = "Elasticsearch is unreachable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class ConnectionsExhausted(ElasticsearchUnavailable):
    """Every connection slot and wait-queue place of every node is taken: answer at once."""

    code = "overloaded"
    PUBLIC_MESSAGE = "every connection to Elasticsearch is busy: try again shortly"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class TlsExpected(ElasticsearchUnavailable):
    """A plain ``http://`` URL names a node that speaks only TLS: a setting to fix, said as such."""

    PUBLIC_MESSAGE = "Elasticsearch is unreachable: it speaks TLS, so its URL must be an https one"


class CredentialsRefused(ElasticsearchUnavailable):
    """Elasticsearch refused the service: 401 (unknown credentials) or 403 (not allowed).

    Not the node's fault, and no other node would answer otherwise: it is
    neither marked dead nor retried. The public message is fixed; which node
    and which kind of credential go to the log line (never the secret).
    """

    code = "elasticsearch_credentials_refused"
    PUBLIC_MESSAGE = "Elasticsearch refused the service's credentials"

    def __init__(self, upstream_status: int, *, detail: str) -> None:
        super().__init__(self.PUBLIC_MESSAGE, detail=detail)
        self.upstream_status = upstream_status


class CertificateRefused(ElasticsearchUnavailable):
    """The node's TLS certificate was not accepted (unknown CA, wrong name or fingerprint)."""

    code = "elasticsearch_certificate_refused"
    PUBLIC_MESSAGE = "the service could not verify Elasticsearch's TLS certificate"

    def __init__(self, *, detail: str) -> None:
        super().__init__(self.PUBLIC_MESSAGE, detail=detail)


class DeadlineExceeded(TrioBooksError):
    status = 504
    code = "deadline_exceeded"


class ElasticsearchTimeout(DeadlineExceeded):
    code = "elasticsearch_timeout"
    PUBLIC_MESSAGE = "Elasticsearch did not answer in time"


class ResponseShapeError(TrioBooksError):
    status = 502
    code = "bad_elasticsearch_response"
    PUBLIC_MESSAGE = "Elasticsearch's answer could not be read"


class UsageError(TrioBooksError):
    """A command-line problem: printed as one line, exit code 2."""

    code = "usage"


class IndexInTheWay(UsageError):
    """An index (not an alias) has the alias's name: making a version live would delete it."""

    code = "index_in_the_way"

    def __init__(self, alias: str) -> None:
        super().__init__(
            f"an index named {alias} exists, and making the load live deletes it, "
            "documents and all: give --replace-index to go ahead, or load under another --index"
        )


class LocalElasticsearchError(UsageError):
    code = "local_elasticsearch"


def missed_deadline(seconds: float) -> str:
    """The message of a search that ran out of time."""
    return f"no answer within the deadline of {seconds * 1000:.0f} ms"


def timed_out_after(seconds: float) -> str:
    """Why an optional branch is missing from an answer: it ran out of time."""
    return f"timed out after {seconds * 1000:.0f} ms"


def most_severe(group: BaseExceptionGroup[BaseException]) -> TrioBooksError | None:
    """The error to answer with when concurrent branches failed together.

    Returns ``None`` unless every leaf of *group* is one of ours (a
    ``Cancelled`` or a bug must propagate as it is). Among ours, the highest
    status wins: "unreachable" (503) says more than the 502 a sibling saw.
    """
    ours, rest = group.split(TrioBooksError)
    if rest is not None or ours is None:
        return None
    leaves: list[TrioBooksError] = []
    pending: list[BaseException] = [ours]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseExceptionGroup):
            pending.extend(reversed(current.exceptions))
        elif isinstance(current, TrioBooksError):
            leaves.append(current)
    return max(leaves, key=lambda error: error.status, default=None)


def error_body(error: TrioBooksError) -> dict[str, Any]:
    """The JSON body every error response carries."""
    body: dict[str, Any] = {"error": error.code, "message": error.public_message}
    if isinstance(error, InvalidParameter):
        body["details"] = [
            {"field": p.field, "rule": p.rule, "message": p.message} for p in error.problems
        ]
    return body
