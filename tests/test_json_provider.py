"""The orjson provider: the same JSON as before, keys in order, models through quart-schema."""

from __future__ import annotations

import orjson
from pydantic import BaseModel
from quart_schema import QuartSchema
from quart_trio import QuartTrio

from trio_books.api.json_provider import OrjsonProvider, use_orjson


class Shelf(BaseModel):
    zeta: str
    alpha: list[int]


def make_app() -> QuartTrio:
    app = QuartTrio(__name__)
    QuartSchema(app, openapi_path=None, swagger_ui_path=None, redoc_ui_path=None)
    use_orjson(app)

    @app.get("/dict")
    async def as_dict() -> dict[str, object]:
        return {"zeta": "Ωmega – 日本", "alpha": [1, 2], "none": None}

    @app.get("/model")
    async def as_model() -> Shelf:
        return Shelf(zeta="z", alpha=[3])

    return app


async def test_answers_keep_key_order_and_text_and_end_with_a_newline() -> None:
    app = make_app()
    assert isinstance(app.json, OrjsonProvider)
    response = await app.test_client().get("/dict")
    body = await response.get_data()
    assert response.content_type == "application/json"
    assert body == '{"zeta":"Ωmega – 日本","alpha":[1,2],"none":null}\n'.encode()


async def test_models_go_through_the_provider_it_replaced() -> None:
    response = await make_app().test_client().get("/model")
    assert orjson.loads(await response.get_data()) == {"zeta": "z", "alpha": [3]}


def test_dumps_and_loads_round_trip_as_text() -> None:
    provider = make_app().json
    text = provider.dumps({"b": 1, "a": [1.5, "é"]})
    assert text == '{"b":1,"a":[1.5,"é"]}'
    assert provider.loads(text) == {"b": 1, "a": [1.5, "é"]}
