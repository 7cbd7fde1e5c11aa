"""The Python client an outside team generates from ``/openapi.json``, against the real service.

openapi-python-client writes the client from the document the running service
serves; pip installs it (into the test's own folder, not the environment); the
client then searches, reads a book, meets a 404 and a 422 (each parsed into the
error model), and completes and finds similar books: on both builds, against
the real Elasticsearch. The client is synchronous (httpx), so each call runs
in a worker thread while the service answers on the test's event loop.
"""

from __future__ import annotations

import enum
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import trio

PACKAGE = "trio_books_client"
# No formatting after generation: the client is read by Python, not by people.
CONFIG = (
    f"package_name_override: {PACKAGE}\nproject_name_override: trio-books-client\npost_hooks: []\n"
)


@pytest.fixture
def imported(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], ModuleType]]:
    """Import the generated package from a folder; forget it afterwards (each build has its own)."""

    def load(site: Path) -> ModuleType:
        monkeypatch.syspath_prepend(str(site))
        return importlib.import_module(PACKAGE)

    yield load
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


async def generate_and_install(document: bytes, folder: Path) -> Path:
    """The client generated from *document* and installed into a folder of its own."""
    (folder / "openapi.json").write_bytes(document)
    (folder / "config.yaml").write_text(CONFIG)
    tool = Path(sys.executable).parent / "openapi-python-client"
    generated = await trio.run_process(
        [
            str(tool),
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "config.yaml",
            "--meta",
            "setup",
            "--output-path",
            "client",
        ],
        cwd=folder,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    output = (generated.stdout + generated.stderr).decode(errors="replace")
    assert generated.returncode == 0, output
    # Every operation and model generated: the generator skips what it cannot read, and says so.
    assert "Warning" not in output, output
    site = folder / "site"
    installed = await trio.run_process(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(folder / "client"),
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert installed.returncode == 0, (installed.stdout + installed.stderr).decode(errors="replace")
    return site


def operation_of(package: ModuleType, name: str) -> Callable[..., Any]:
    """The generated blocking call of operation *name* (all of them sit under the default tag)."""
    found: Callable[..., Any] = importlib.import_module(
        f"{package.__name__}.api.default.{name}"
    ).sync_detailed
    return found


async def test_a_generated_client_parses_every_answer(
    client: httpx.AsyncClient, tmp_path: Path, imported: Callable[[Path], ModuleType]
) -> None:
    document = (await client.get("/openapi.json")).content
    package = imported(await generate_and_install(document, tmp_path))
    models = importlib.import_module(f"{PACKAGE}.models")
    # One model per schema: no per-operation copies of a model or of the error body
    # (a query parameter's enum is named after its operation, as GetSearchSort).
    copies = [
        name
        for name in dir(models)
        if name.startswith("Get") and not issubclass(getattr(models, name), enum.Enum)
    ]
    assert not copies, copies
    api = package.Client(base_url=str(client.base_url), raise_on_unexpected_status=True)
    try:
        await use_every_route(package, models, api)
    finally:
        # Its connections are closed here, not left to the collector.
        api.get_httpx_client().close()


async def use_every_route(package: ModuleType, models: ModuleType, api: Any) -> None:
    """Each route through the generated client, each answer parsed into its model."""

    async def run(operation: str, **arguments: Any) -> Any:
        function = operation_of(package, operation)
        return await trio.to_thread.run_sync(lambda: function(client=api, **arguments))

    found = await run("get_search", q="hunger games", sort=models.GetSearchSort.RELEVANCE)
    assert found.status_code == 200
    answer = found.parsed
    assert isinstance(answer, models.SearchResponse)
    titles = [result.title for result in answer.results]
    assert "The Hunger Games (The Hunger Games, #1)" in titles
    # Every field the service sent is one the document names: nothing left over.
    assert answer.additional_properties == {}
    assert all(result.additional_properties == {} for result in answer.results)
    assert answer.partial is False
    assert answer.errors == []
    first = answer.results[0]
    assert isinstance(first.highlight, models.Highlight)
    assert any(segment.match for segment in first.highlight.title)

    newest = await run("get_search", q="hunger games", sort=models.GetSearchSort.YEAR_DESC)
    years = [result.original_publication_year for result in newest.parsed.results]
    assert years == sorted(years, reverse=True)

    refused = await run("get_search", size=0)
    assert refused.status_code == 422
    assert isinstance(refused.parsed, models.ErrorResponse)
    assert refused.parsed.error == "invalid_parameter"
    assert [problem.field for problem in refused.parsed.details] == ["size"]
    assert refused.parsed.request_id == refused.headers["X-Request-Id"]

    book = await run("get_book", book_id=1)
    assert isinstance(book.parsed, models.Book)
    assert book.parsed.title == "The Hunger Games (The Hunger Games, #1)"
    assert [author.name for author in book.parsed.authors] == ["Suzanne Collins"]

    missing = await run("get_book", book_id=999_999)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.ErrorResponse)
    assert missing.parsed.error == "not_found"

    similar = await run("get_similar", book_id=1, size=5)
    assert isinstance(similar.parsed, models.SimilarResponse)
    assert 1 not in [result.book_id for result in similar.parsed.results]
    assert "Catching Fire (The Hunger Games, #2)" in [r.title for r in similar.parsed.results]
    missing_similar = await run("get_similar", book_id=999_999)
    assert isinstance(missing_similar.parsed, models.ErrorResponse)

    completed = await run("get_complete", prefix="hun")
    assert isinstance(completed.parsed, models.CompleteResponse)
    assert "The Hunger Games (The Hunger Games, #1)" in [t.title for t in completed.parsed.titles]
    too_long = await run("get_complete", prefix="x" * 101)
    assert too_long.status_code == 422
    assert [problem.field for problem in too_long.parsed.details] == ["prefix"]

    ready = await run("get_readyz")
    assert isinstance(ready.parsed, models.Health)
    assert ready.parsed.status in {"green", "yellow"}
