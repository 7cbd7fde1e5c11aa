"""Response bodies of the routes other than search, for validation and the OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel, Field


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


class ErrorResponse(BaseModel):
    """Every error answer: a stable code, a sentence, and for 422 the broken rules."""

    error: str = Field(description="Machine-readable error code.", examples=["invalid_parameter"])
    message: str = Field(examples=["size: Input should be less than or equal to 100"])
    details: list[Problem] | None = Field(default=None, description="For 422: each broken rule.")
    request_id: str | None = Field(
        default=None,
        description="The request's id (as in `X-Request-Id`): the service's log line "
        "for this request carries it, with what the message leaves out.",
    )
