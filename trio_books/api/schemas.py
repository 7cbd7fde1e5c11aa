"""Response bodies of the routes other than search, for validation and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trio_books.core.timeline import Trace


class Ping(BaseModel):
    message: str = Field(examples=["Ping"])


class Engine(BaseModel):
    name: str = Field(description="elasticsearch or opensearch", examples=["elasticsearch"])
    version: str = Field(examples=["8.19.21"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    engine: Engine | None = Field(
        default=None,
        description="The search engine that answers, once the service could ask it.",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What weakens the connection to Elasticsearch (e.g. certificates not verified).",
        examples=[[]],
    )


class Problem(BaseModel):
    field: str = Field(description="The parameter at fault.", examples=["size"])
    rule: str = Field(description="The rule it broke.", examples=["less_than_equal"])
    message: str = Field(examples=["Input should be less than or equal to 100"])


def _sent_when_known(schema: dict[str, Any]) -> None:
    # Error answers are written by several layers (the routes, the door, the
    # graceful cut); ``details`` is in 422s only, ``request_id`` where the request
    # got one and ``trace`` when asked for, so none is required or defaults to null.
    schema["required"] = ["error", "message"]
    for field in schema["properties"].values():
        field.pop("default", None)


class ErrorResponse(BaseModel):
    """Every error answer: a stable code, a sentence, and for 422 the broken rules."""

    model_config = ConfigDict(json_schema_extra=_sent_when_known)

    error: str = Field(description="Machine-readable error code.", examples=["invalid_parameter"])
    message: str = Field(examples=["size: Input should be less than or equal to 100"])
    details: list[Problem] | None = Field(default=None, description="For 422: each broken rule.")
    request_id: str | None = Field(
        default=None,
        description="The request's id (as in `X-Request-Id`): the service's log line "
        "for this request carries it, with what the message leaves out.",
    )
    trace: Trace | None = Field(
        default=None,
        description="With `trace=1` where traces are allowed: the failed request's "
        "task timeline, as a search's answer carries it.",
    )
