"""The OpenAPI document, completed with the error answers every route may give.

quart-schema documents what each route's decorators declare. Some answers come
from before any route runs (the caps on a request's size, an unknown method)
and so apply to every operation; this provider adds them in one place.
"""

from __future__ import annotations

from typing import Any

from quart_schema import OpenAPIProvider

ERROR_SCHEMA = "ErrorResponse"

# Status → description, for answers any operation may give.
EVERY_ROUTE: dict[str, str] = {
    "413": "The request body is larger than the service accepts.",
    "414": "The URL is longer than the service accepts.",
    "431": "The request headers are larger, or more, than the service accepts.",
}


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
    }


class DocumentedErrors(OpenAPIProvider):
    """quart-schema's provider, adding the answers of :data:`EVERY_ROUTE` to each operation."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if ERROR_SCHEMA not in schemas:
            from trio_books.api.schemas import ErrorResponse

            schemas[ERROR_SCHEMA] = ErrorResponse.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in EVERY_ROUTE.items():
                    responses.setdefault(status, error_response(description))
        return document
