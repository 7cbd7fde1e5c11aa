"""The OpenAPI document, written so that clients can be generated from it.

quart-schema documents what each route's decorators declare, but inlines every
answer's schema where it is used: a generator then meets the same model under
several names and drops the ones it cannot reconcile. This provider:

- names each model once, in ``components/schemas``, and refers to it
  (``$ref``) from every answer, error answers included;
- marks every field of an answer ``required``: answers are serialized whole,
  so every field is in every body (``null`` where it has no value);
- types query parameters as a query string carries them: a parameter is absent
  or has a value, never ``null``; strings may not hold control characters
  (:func:`trio_books.api.guards.unreadable_query` refuses them);
- adds what comes from outside any route: the caps on a request's size, the
  headers every answer carries, ``Retry-After`` and ``Link``, ``OPTIONS``,
  and the redirect to the canonical ``/search/``.

Cross-parameter rules that a parameter's own schema cannot state (page × size,
a year range in order, a cursor only on page 1 and only as the service issued
it) are in the parameters' descriptions, and answered 422 like any other.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema
from quart_schema import OpenAPIProvider
from werkzeug.routing import BaseConverter, IntegerConverter, Rule

ERROR_SCHEMA = "ErrorResponse"
SCHEMAS = "#/components/schemas/"
HEADERS = "#/components/headers/"

# Status → description, for answers any operation may give.
EVERY_ROUTE: dict[str, str] = {
    "413": "The request body is larger than the service accepts.",
    "414": "The URL is longer than the service accepts.",
    "431": "The request headers are larger, or more, than the service accepts.",
}

# Characters a query string may not carry: C0 controls and DEL, except tab, line
# feed and carriage return (the same set as api.guards).
NO_CONTROL_CHARACTERS = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"

# The headers the service sets, once each, referred to from the answers that carry them.
HEADER_DOCS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "The request's id: the client's own `X-Request-Id` when it sent "
        "a usable one, else one the service made. Every log line for the request carries it.",
        "required": True,
        "schema": {"type": "string", "examples": ["7f0c3d5e9a2b4c6d8e1f0a3b5c7d9e2f"]},
    },
    "X-Process-Time": {
        "description": "Seconds the service spent on the request. On every answer but "
        "the 503s written before the app (overloaded at the door, shutting down).",
        "schema": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{6}$", "examples": ["0.012345"]},
    },
    "Server-Timing": {
        "description": "W3C Server Timing: each Elasticsearch branch's duration (and start, "
        "when traces are allowed), then the whole request's (`total`). On the same answers "
        "as `X-Process-Time`.",
        "schema": {"type": "string", "examples": ["es-hits;dur=8.1, total;dur=12.3"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before asking again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$", "examples": ["1"]},
    },
    "Link": {
        "description": "RFC 8288 links to the next and previous pages (`rel=next`, `rel=prev`), "
        "as the answer's `next` and `prev`.",
        "schema": {"type": "string", "examples": ['<?q=war&page=2>; rel="next"']},
    },
    "Allow": {
        "description": "The methods the path answers.",
        "schema": {"type": "string", "examples": ["OPTIONS, HEAD, GET"]},
    },
    "Location": {
        "description": "The canonical URL of the resource.",
        "schema": {"type": "string", "format": "uri-reference"},
    },
}
EVERY_ANSWER = ("X-Request-Id", "X-Process-Time", "Server-Timing")


class SentFields(GenerateJsonSchema):
    """Answer schemas in which every field is required.

    The service serializes an answer whole, ``None`` as ``null``: no field is
    ever left out of a body, so a client may rely on each one being there.
    """

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        return self.mode == "serialization" or super().field_is_required(field, total)


def answer_schemas(model: type[BaseModel]) -> dict[str, Any]:
    """*model* and every model it holds, by name, as ``components/schemas`` takes them."""
    schema = model.model_json_schema(
        ref_template=SCHEMAS + "{model}", schema_generator=SentFields, mode="serialization"
    )
    definitions: dict[str, Any] = schema.pop("$defs", {})
    definitions[model.__name__] = schema
    return definitions


def ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def error_response(description: str, *headers: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": header_refs(*EVERY_ANSWER, *headers),
        "content": {"application/json": {"schema": ref(ERROR_SCHEMA)}},
    }


def header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": HEADERS + name} for name in names}


def query_parameter_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema as a query string can carry it: never ``null``."""
    branches = schema.get("anyOf")
    if branches is not None:
        kept = [branch for branch in branches if branch.get("type") != "null"]
        rest = {key: value for key, value in schema.items() if key != "anyOf"}
        schema = {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}
    if "default" in schema and schema["default"] is None:
        schema = {key: value for key, value in schema.items() if key != "default"}
    if schema.get("type") == "string" and "enum" not in schema and "pattern" not in schema:
        schema = {**schema, "pattern": NO_CONTROL_CHARACTERS}
    return schema


class ClientReadyDocument(OpenAPIProvider):
    """quart-schema's provider, with shared components, required fields and the service's headers."""

    def build_response_object(
        self, model: type[Any], headers_model: type[Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if headers_model is not None:
            raise TypeError("answer headers are documented in HEADER_DOCS, not by a model")
        description = (inspect.getdoc(model) or model.__name__).splitlines()[0]
        response = {
            "description": description,
            "headers": header_refs(*EVERY_ANSWER),
            "content": {"application/json": {"schema": ref(model.__name__)}},
        }
        return response, answer_schemas(model)

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        if getattr(self._app.view_functions[rule.endpoint], REDIRECT_MARKER, False):
            for operations in paths.values():
                if "get" in operations:
                    redirect_operation(operations["get"])
        return paths, components

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, IntegerConverter) and not converter.signed:
            # The route's int converter matches digits only: no sign, so no negative id.
            parameter["schema"] = {**parameter["schema"], "minimum": 0}
        return parameter

    def build_querystring_parameters(
        self, model: type[Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        parameters, definitions = super().build_querystring_parameters(model)
        # quart-schema reads `required` per property, where pydantic never writes it.
        required = set(model.model_json_schema().get("required", ()))
        for parameter in parameters:
            if parameter["name"] in required:
                parameter["required"] = True
            parameter["schema"] = query_parameter_schema(parameter["schema"])
            if parameter["schema"].get("type") == "array":
                # Repeated, as a form sends it: ?tags=a&tags=b.
                parameter.update(style="form", explode=True)
        return parameters, definitions

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        if ERROR_SCHEMA not in schemas:
            from trio_books.api.schemas import ErrorResponse

            schemas.update(answer_schemas(ErrorResponse))
        components["headers"] = copy.deepcopy(HEADER_DOCS)
        root_path = getattr(self._app.config.get("TRIO_BOOKS_SETTINGS"), "root_path", "")
        if root_path:
            # Mounted under a proxy's prefix: the paths below are relative to it.
            document["servers"] = [{"url": root_path}]
        paths: dict[str, dict[str, Any]] = document.get("paths", {})
        for path, operations in paths.items():
            ours = operations.get("get")
            in_path: list[dict[str, Any]] = []
            for operation in operations.values():
                in_path = [p for p in operation.get("parameters", []) if p["in"] == "path"]
            shed = ours is not None and "503" in map(str, ours.get("responses", {}))
            name = str(ours["operationId"]).removeprefix("get_") if ours else "root"
            operations["options"] = options_operation(name, in_path, shed=shed)
            for operation in operations.values():
                complete_operation(path, operation)
        return document


def complete_operation(path: str, operation: dict[str, Any]) -> None:
    """Add the answers any operation may give, and the headers its answers carry."""
    # quart-schema keys its answers by int; the document's keys are strings.
    responses: dict[str, Any] = {
        str(status): answer for status, answer in operation.get("responses", {}).items()
    }
    operation["responses"] = responses
    for status, description in EVERY_ROUTE.items():
        responses.setdefault(status, error_response(description))
    if "503" in responses:
        responses["503"] = error_response(
            "Elasticsearch cannot answer, or the service is overloaded or stopping.",
            "Retry-After",
        )
    ok = responses.get("200")
    if ok is not None and path.endswith("/search/") and "Link" not in ok["headers"]:
        ok["headers"] = {**ok["headers"], **header_refs("Link")}


def options_operation(name: str, in_path: list[dict[str, Any]], *, shed: bool) -> dict[str, Any]:
    """``OPTIONS`` on the path of operation *name*: its methods, or a CORS preflight's verdict."""
    responses: dict[str, Any] = {
        "200": {
            "description": "The methods in `Allow`; no body.",
            "headers": header_refs(*EVERY_ANSWER, "Allow"),
        },
        "204": {
            "description": "A CORS preflight from an allowed origin; no body.",
            "headers": header_refs(*EVERY_ANSWER),
        },
        "403": error_response("A CORS preflight from an origin that is not allowed."),
    }
    if in_path:
        responses["404"] = error_response("No such resource (the id is not a number).")
    if shed:
        # The door sheds any method under the API's prefix.
        responses["503"] = error_response("The service is overloaded.")
    return {
        "summary": "The methods this path answers (and, with an Origin, a CORS preflight).",
        "operationId": f"options_{name}",
        "parameters": in_path,
        "responses": responses,
    }


_View = TypeVar("_View", bound=Callable[..., Any])

# Set on the view functions that only redirect (see routes.search_redirect).
REDIRECT_MARKER = "_trio_books_redirects"


def redirects(view: _View) -> _View:
    """Mark *view* as one that only redirects: its document answers 308, nothing else."""
    setattr(view, REDIRECT_MARKER, True)
    return view


def redirect_operation(operation: dict[str, Any]) -> None:
    """A redirect's one answer: 308, a short HTML page, and where to go."""
    operation["responses"] = {
        "308": {
            "description": "Permanent redirect, the query string kept; the body is a short "
            "HTML page.",
            "headers": header_refs(*EVERY_ANSWER, "Location"),
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        # Under the API's prefix: the door sheds it as any other request there.
        "503": error_response("The service is overloaded."),
    }
