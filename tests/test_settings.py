"""Settings as an operator gives them: ``.env``, the environment, and what each one changes.

Every value here goes through the settings' own validation, as at start-up
(``load_settings`` or the constructor), never ``model_copy(update=...)``,
which skips it. The HTTP tests serve both builds on a real Hypercorn.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from servers import api_client

from trio_books.cli import main
from trio_books.core.query import MAX_QUERY_LENGTH, MAX_RESULT_WINDOW, MAX_SIZE, MAX_TAGS
from trio_books.settings import Settings, load_settings

pytestmark = pytest.mark.usefixtures("clean_environment")

CEILINGS = {
    "max_query_length": MAX_QUERY_LENGTH,
    "max_tags": MAX_TAGS,
    "max_page_size": MAX_SIZE,
    "max_result_window": MAX_RESULT_WINDOW,
}


def write_dotenv(lines: dict[str, str]) -> None:
    # clean_environment made the test's own folder the working one.
    Path(".env").write_text("".join(f"{name}={value}\n" for name, value in lines.items()))


def test_dotenv_is_read_and_the_environment_wins_over_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_dotenv({"TRIO_BOOKS_INDEX": "from-dotenv", "TRIO_BOOKS_SUGGEST_BELOW": "7"})
    settings = load_settings()
    assert (settings.index, settings.suggest_below) == ("from-dotenv", 7)
    monkeypatch.setenv("TRIO_BOOKS_INDEX", "from-environment")
    assert load_settings().index == "from-environment"


def test_a_bad_value_in_dotenv_stops_a_command_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_dotenv({"TRIO_BOOKS_MAX_PAGE_SIZE": "500"})
    assert main(["drill", "overload", "--quick"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    # The setting, its variable and the rule; never the value given.
    assert (
        "max_page_size (TRIO_BOOKS_MAX_PAGE_SIZE): Input should be less than or equal to 100" in err
    )
    assert "500" not in err
    write_dotenv({"TRIO_BOOKS_ES_USERNAME": "a:b", "TRIO_BOOKS_ES_PASSWORD": "s3cret-pw"})
    assert main(["drill", "overload", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "es_username must not contain ':'" in err
    assert "s3cret-pw" not in err


@pytest.mark.parametrize(("field", "ceiling"), CEILINGS.items())
def test_caps_may_tighten_the_documented_ceilings_but_never_raise_them(
    monkeypatch: pytest.MonkeyPatch, field: str, ceiling: int
) -> None:
    monkeypatch.setenv(f"TRIO_BOOKS_{field.upper()}", str(ceiling + 1))
    with pytest.raises(ValidationError) as raised:
        load_settings()
    [error] = raised.value.errors()
    assert (error["loc"], error["type"]) == ((field,), "less_than_equal")
    monkeypatch.setenv(f"TRIO_BOOKS_{field.upper()}", str(ceiling))
    assert getattr(load_settings(), field) == ceiling
    monkeypatch.setenv(f"TRIO_BOOKS_{field.upper()}", "1")
    assert getattr(load_settings(), field) == 1


@pytest.mark.parametrize("prefix", ["api/v1", "/api/v1/", "/api v1", "/../admin"])
def test_an_api_prefix_that_is_not_a_plain_path_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="api_prefix"):
        Settings(api_prefix=prefix)


async def test_a_cap_from_the_environment_is_the_one_the_api_enforces(
    monkeypatch: pytest.MonkeyPatch, build: str, api_settings: Settings
) -> None:
    monkeypatch.setenv("TRIO_BOOKS_MAX_PAGE_SIZE", "5")
    settings = load_settings(es_urls=api_settings.es_urls, index=api_settings.index)
    async with api_client(build, settings) as http:
        within = await http.get("/api/v1/search/", params={"q": "the", "size": 5})
        past = await http.get("/api/v1/search/", params={"q": "the", "size": 6})
    assert within.status_code == 200
    assert past.status_code == 422
    assert past.json()["details"][0]["field"] == "size"


async def test_the_api_serves_under_its_prefix_and_documents_it(
    build: str, api_settings: Settings
) -> None:
    settings = Settings(
        es_urls=api_settings.es_urls, index=api_settings.index, api_prefix="/books/v2"
    )
    async with api_client(build, settings) as http:
        found = await http.get("/books/v2/search/", params={"q": "hobbit"})
        book = await http.get("/books/v2/books/1")
        old = await http.get("/api/v1/search/", params={"q": "hobbit"})
        paths = set((await http.get("/openapi.json")).json()["paths"])
    assert found.status_code == 200
    assert found.json()["count"] == 1
    assert book.status_code == 200
    assert old.status_code == 404
    assert {"/books/v2/search/", "/books/v2/books/{book_id}"} <= paths
    assert not any(path.startswith("/api/v1") for path in paths)


async def test_suggest_below_decides_when_a_thin_answer_asks_the_suggester(
    build: str, api_settings: Settings
) -> None:
    # "hobit" finds nothing: below the default of 3 it asks for suggestions;
    # with SUGGEST_BELOW=0 no answer is thin enough.
    for below, asked in ((3, True), (0, False)):
        settings = Settings(
            es_urls=api_settings.es_urls, index=api_settings.index, suggest_below=below
        )
        async with api_client(build, settings) as http:
            body = (await http.get("/api/v1/search/", params={"q": "hobit", "trace": 1})).json()
        tasks = {task["name"] for task in body["trace"]["tasks"]}
        assert ("es-suggest" in tasks) is asked, (below, tasks)
        assert ("hobbit" in body["suggestions"]) is asked, (below, body["suggestions"])


def test_the_read_timeout_outlasts_the_longer_deadline_unless_given() -> None:
    assert Settings(complete_deadline=20).read_timeout == 25
    assert Settings(search_deadline=30, complete_deadline=1).read_timeout == 35
    assert Settings().read_timeout == 10
    with pytest.raises(ValidationError, match="longer than complete_deadline"):
        Settings(read_timeout=10, complete_deadline=20)


def test_the_cursor_key_is_random_unless_given_and_never_shown() -> None:
    one, two = Settings(), Settings()
    key = one.cursor_key.get_secret_value()
    assert len(key) >= 32
    assert key != two.cursor_key.get_secret_value()
    assert key not in repr(one)
    assert key not in one.model_dump_json()
    given = Settings(cursor_key="a-key-of-our-own-choosing")
    assert given.cursor_key.get_secret_value() == "a-key-of-our-own-choosing"
    with pytest.raises(ValidationError, match="at least 16") as refused:
        Settings(cursor_key="short-secret")
    assert "short-secret" not in str(refused.value)
