"""The bulk loader against the real Elasticsearch: formats, messy data, rejects, the alias swap.

Every catalogue is a small file written under ``tmp_path``; every alias and
version is named after the test's ``index_name``, so the fixture deletes them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.lowlevel
from loading import (
    GOODBOOKS_HEADER,
    live_count,
    load_files,
    load_synthetic,
    nested_limit,
    run_cli,
    targets,
    versions,
    write_ndjson,
)

from trio_books.core.mapping import index_body, replicas_for
from trio_books.core.progress import summary
from trio_books.errors import IndexInTheWay
from trio_books.es.client import Elasticsearch
from trio_books.load.pipeline import LoadOptions, load_catalogue
from trio_books.load.report import RejectsLog
from trio_books.load.sources import CatalogueReader, load_tag_join, open_catalogue_file

REFERENCE_BOOKS: list[dict[str, Any]] = [
    {
        "book_id": 1,
        "isbn": "439023483",
        "isbn13": "9.78043902348e+12",
        "authors": [{"name": "Suzanne Collins"}],
        "original_publication_year": 2008.0,
        "original_title": "The Hunger Games",
        "title": "The Hunger Games (The Hunger Games, #1)",
        "language_code": "eng",
        "small_image_url": "https://images.example.org/1.jpg",
        "tags": [{"title": "Young Adult", "slug": "young-adult"}],
    },
    {
        "book_id": 2,
        "title": "Good Omens",
        "authors": [{"name": "Terry Pratchett"}, {"name": "Neil Gaiman"}],
        "tags": [{"title": "Humour", "slug": "humour"}],
    },
    {"book_id": 3, "title": "Odysseia", "original_publication_year": -720},
]


async def source(es: Elasticsearch, alias: str, book_id: int) -> dict[str, Any]:
    found = await es.get_source(alias, str(book_id))
    assert found is not None
    return found


@pytest.mark.parametrize("shape", ["json", "ndjson"])
async def test_json_and_ndjson_load_behind_the_alias(
    es: Elasticsearch, index_name: str, tmp_path: Path, shape: str
) -> None:
    if shape == "json":
        path = tmp_path / "books.json"
        path.write_bytes(orjson.dumps(REFERENCE_BOOKS, option=orjson.OPT_INDENT_2))
    else:
        path = write_ndjson(tmp_path / "books.ndjson", REFERENCE_BOOKS)
    report, rejects, _console = await load_files(es, index_name, path)
    assert report.published, report.problem
    assert rejects.count == 0
    assert (report.stats.read, report.stats.accepted, report.stats.indexed) == (3, 3, 3)
    assert await targets(es, index_name) == [report.index]
    assert await live_count(es, index_name) == 3
    hunger = await source(es, index_name, 1)
    assert hunger["isbn"] == "0439023483"
    assert hunger["isbn13"] == "9780439023481"
    assert hunger["original_publication_year"] == 2008
    assert (await source(es, index_name, 3))["original_publication_year"] == -720


def goodbooks_row(**fields: str) -> str:
    columns = GOODBOOKS_HEADER.split(",")
    row = dict.fromkeys(columns, "")
    row.update(fields)
    return ",".join(_quote(row[column]) for column in columns)


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n') else value


async def test_goodbooks_csv_with_its_tag_join(
    es: Elasticsearch, index_name: str, tmp_path: Path
) -> None:
    books = tmp_path / "books.csv"
    books.write_text(
        "\n".join(
            [
                GOODBOOKS_HEADER,
                goodbooks_row(
                    book_id="1",
                    goodreads_book_id="2767052",
                    isbn="439023483",
                    isbn13="9.78043902348e+12",
                    authors="Suzanne Collins",
                    original_publication_year="2008.0",
                    title="The Hunger Games (The Hunger Games, #1)",
                    language_code="eng",
                    average_rating="4.34",
                    ratings_count="4780653",
                ),
                goodbooks_row(book_id="2", goodreads_book_id="3", title="Harry Potter"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    (tmp_path / "tags.csv").write_text(
        "tag_id,tag_name\n1,to-read\n2,young-adult\n3,dystopia\n4,--31-\n"
    )
    (tmp_path / "book_tags.csv").write_text(
        "goodreads_book_id,tag_id,count\n2767052,1,900\n2767052,2,700\n2767052,3,800\n3,4,5\n"
    )
    join = load_tag_join(tmp_path / "book_tags.csv", tmp_path / "tags.csv")
    reader = CatalogueReader([open_catalogue_file(books, None)], join)
    report = await load_catalogue(
        es, reader, LoadOptions(index_name), RejectsLog(None, io.StringIO())
    )
    assert report.published, report.problem
    hunger = await source(es, index_name, 1)
    assert [tag["slug"] for tag in hunger["tags"]] == ["to-read", "dystopia", "young-adult"]
    assert hunger["tags"][2]["title"] == "Young Adult"
    assert hunger["average_rating"] == pytest.approx(4.34)
    assert hunger["ratings_count"] == 4780653
    assert hunger["isbn13"] == "9780439023481"
    assert (await source(es, index_name, 2))["tags"] == [{"title": "31", "slug": "31"}]


async def test_the_command_loads_several_files_with_tags_and_reports_as_json(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    rows = [
        goodbooks_row(book_id="1", goodreads_book_id="2767052", title="The Hunger Games"),
        goodbooks_row(book_id="2", goodreads_book_id="3", title="Harry Potter"),
        goodbooks_row(book_id="3", title=""),  # line 4: no title
    ]
    (tmp_path / "books.csv").write_text("\n".join([GOODBOOKS_HEADER, *rows]) + "\n")
    more: list[dict[str, Any]] = [
        {"book_id": 10, "title": "Good Omens", "authors": [{"name": "Terry Pratchett"}]},
        {"book_id": 1, "title": "Not the first book 1"},  # line 2: a duplicate
        {"title": "No id"},  # line 3
    ]
    write_ndjson(tmp_path / "more.ndjson", more)
    (tmp_path / "tags.csv").write_text("tag_id,tag_name\n1,to-read\n2,young-adult\n")
    (tmp_path / "book_tags.csv").write_text(
        "goodreads_book_id,tag_id,count\n2767052,1,900\n2767052,2,700\n"
    )
    done = await run_cli(
        *["load", "books.csv", "more.ndjson", "--index", index_name],
        *["--tags", "book_tags.csv", "--tag-names", "tags.csv"],
        *["--rejects", "refused.ndjson", "--json"],
        es_url=es_url,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr.decode()
    summary = orjson.loads(done.stdout.splitlines()[-1])
    counts = ("read", "accepted", "indexed", "rejected", "duplicates", "failed")
    assert [summary[key] for key in counts] == [6, 3, 3, 2, 1, 0]
    assert summary["alias"] == index_name
    assert summary["published"] is True
    assert summary["problem"] is None
    assert summary["rejects_file"] == "refused.ndjson"
    assert await targets(es, index_name) == [summary["index"]]
    assert await live_count(es, index_name) == 3
    hunger = await source(es, index_name, 1)
    assert hunger["title"] == "The Hunger Games"  # the first of the two book 1s
    assert [tag["slug"] for tag in hunger["tags"]] == ["to-read", "young-adult"]
    assert (await source(es, index_name, 2))["tags"] == []
    assert (await source(es, index_name, 10))["authors"] == [{"name": "Terry Pratchett"}]
    written = [
        orjson.loads(line) for line in (tmp_path / "refused.ndjson").read_bytes().splitlines()
    ]
    assert sorted((r["source"], r["line"], r["kind"]) for r in written) == [
        ("books.csv", 4, "invalid"),
        ("more.ndjson", 2, "duplicate"),
        ("more.ndjson", 3, "invalid"),
    ]
    assert not (tmp_path / "rejects.ndjson").exists()


async def test_messy_rows_are_cleaned_and_bad_ones_rejected_with_line_numbers(
    es: Elasticsearch, index_name: str, tmp_path: Path
) -> None:
    many_authors = ", ".join(f"Author Nº{n}" for n in range(40))
    books = tmp_path / "books.csv"
    books.write_text(
        "\n".join(
            [
                GOODBOOKS_HEADER,  # line 1
                goodbooks_row(book_id="1", title="Float year", original_publication_year="1999.0"),
                goodbooks_row(book_id="2", title="Ancient", original_publication_year="-750.0"),
                goodbooks_row(book_id="", title="No id at all"),  # line 4
                goodbooks_row(book_id="4", title="Sci ISBN", isbn13="9.78031601585e+12"),
                goodbooks_row(book_id="5", title=""),  # line 6
                goodbooks_row(book_id="6", title="Empty optionals"),
                goodbooks_row(
                    book_id="7", title="Émile ou De l'éducation", authors="J.-J. Rousseau"
                ),
                goodbooks_row(book_id="8", title="Anthology", authors=many_authors),
                goodbooks_row(book_id="9.5", title="Fractional id"),  # line 10
                goodbooks_row(book_id="6", title="Repeated id"),  # line 11
                "12,oops,too,few",  # line 12
                # The ISBN-10 glued to 978, its check digit kept: repaired from the ISBN-10.
                goodbooks_row(
                    book_id="13", title="Glued", isbn="439023483", isbn13="9780439023483"
                ),
                goodbooks_row(book_id="14", title="Bad year", original_publication_year="soon"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    report, rejects, console = await load_files(es, index_name, books)
    # Invalid input is reported, not a failure: the load finishes and goes live.
    assert report.published, report.problem
    stats = report.stats
    assert (stats.read, stats.accepted, stats.rejected, stats.duplicates) == (13, 8, 4, 1)
    assert await live_count(es, index_name) == 8
    # Every field given but unusable is counted, and so is the one repaired.
    assert stats.fields == {
        "isbn13": {"dropped": 1, "repaired from ISBN-10": 1},
        "original_publication_year": {"dropped": 1},
    }
    assert "isbn13: 1 dropped, 1 repaired from ISBN-10" in summary(stats)
    assert (await source(es, index_name, 13))["isbn13"] == "9780439023481"
    lines = console.getvalue().splitlines()
    assert any(f"{books}:4: invalid: no book_id" in line for line in lines)
    assert any(f"{books}:6: invalid: no title" in line for line in lines)
    assert any(f"{books}:10: invalid: no usable book_id" in line for line in lines)
    assert any(f"{books}:11: duplicate:" in line for line in lines)
    assert any(f"{books}:12: invalid:" in line for line in lines)
    written = [orjson.loads(line) for line in rejects.path.read_bytes().splitlines()]  # type: ignore[union-attr]
    assert sorted(reject["line"] for reject in written) == [4, 6, 10, 11, 12]
    assert {reject["reason"] for reject in written if reject["line"] == 6} == {"no title"}
    assert (await source(es, index_name, 1))["original_publication_year"] == 1999
    assert (await source(es, index_name, 2))["original_publication_year"] == -750
    # Twelve digits survived and there is no ISBN-10 to recompute from: no ISBN-13.
    assert (await source(es, index_name, 4))["isbn13"] is None
    empty = await source(es, index_name, 6)
    assert empty["title"] == "Empty optionals"
    assert empty["authors"] == []
    assert empty["isbn"] is None
    assert empty["language_code"] is None
    assert (await source(es, index_name, 7))["authors"] == [{"name": "J.-J. Rousseau"}]
    assert len((await source(es, index_name, 8))["authors"]) == 40
    found = await es.search(
        index_name,
        {"query": {"nested": {"path": "authors", "query": {"match": {"authors.name": "Nº39"}}}}},
    )
    assert [hit["_id"] for hit in found["hits"]["hits"]] == ["8"]


async def test_reload_is_idempotent_and_keeps_two_versions(
    es: Elasticsearch, index_name: str, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "books.ndjson", REFERENCE_BOOKS)
    first, _, _ = await load_files(es, index_name, path)
    second, _, _ = await load_files(es, index_name, path)
    assert first.published
    assert second.published
    assert await live_count(es, index_name) == len(REFERENCE_BOOKS)
    assert await targets(es, index_name) == [second.index]
    assert await versions(es, index_name) == [first.index, second.index]
    third, _, _ = await load_files(es, index_name, path)
    assert third.deleted == [first.index]
    assert await versions(es, index_name) == [second.index, third.index]
    assert await live_count(es, index_name) == len(REFERENCE_BOOKS)


async def test_an_index_with_the_alias_name_is_kept_unless_replacing_it_is_asked_for(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    await es.create_index(index_name, index_body())
    old = {"book_id": 1, "title": "Kept"}
    await es.request("PUT", f"/{index_name}/_doc/1", params={"refresh": "true"}, body=old)
    path = write_ndjson(tmp_path / "books.ndjson", REFERENCE_BOOKS)
    with pytest.raises(IndexInTheWay, match="--replace-index"):
        await load_files(es, index_name, path)
    done = await run_cli("load", str(path), "--index", index_name, es_url=es_url, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.decode().strip().splitlines()
    assert line.startswith(f"python -m trio_books: error: an index named {index_name} exists")
    # Untouched, and no version left behind.
    assert await live_count(es, index_name) == 1
    assert await versions(es, index_name) == []
    report, _, _ = await load_files(es, index_name, path, replace_index=True)
    assert report.published
    assert report.swap is not None
    assert report.swap.replaced_concrete
    assert await targets(es, index_name) == [report.index]
    assert await live_count(es, index_name) == 3


async def test_searches_during_a_reload_never_see_an_empty_index(
    es: Elasticsearch, index_name: str
) -> None:
    first = await load_synthetic(es, index_name, 2000, chunk_docs=200)
    assert first.published
    seen: list[int] = []
    reloaded = trio.Event()

    async def keep_searching() -> None:
        # Until the reload is over, and a few more after the swap.
        after = 0
        while after < 5:
            found = await es.search(
                index_name, {"size": 0, "track_total_hits": True, "query": {"match_all": {}}}
            )
            seen.append(found["hits"]["total"]["value"])
            if reloaded.is_set():
                after += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(keep_searching)
        second = await load_synthetic(es, index_name, 2000, chunk_docs=200)
        reloaded.set()
    assert second.published
    assert await targets(es, index_name) == [second.index]
    assert len(seen) > 15
    assert set(seen) == {2000}


async def test_a_failed_count_check_leaves_the_alias_where_it_was(
    es: Elasticsearch, index_name: str, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "books.ndjson", REFERENCE_BOOKS)
    good, _, _ = await load_files(es, index_name, path)
    # Valid input, refused by Elasticsearch: more nested authors than the index
    # allows (index.mapping.nested_objects.limit), so the new version holds one
    # book fewer than were accepted.
    crowded = {"book_id": 99, "title": "Crowded", "authors": [f"A{n}" for n in range(12)]}
    bad = write_ndjson(tmp_path / "more.ndjson", [*REFERENCE_BOOKS, crowded])
    async with nested_limit(es, index_name, 10):
        report, rejects, console = await load_files(es, index_name, bad)
    assert not report.published
    assert report.stats.failed == 1
    assert report.count == len(REFERENCE_BOOKS)
    assert report.problem is not None
    assert "not moved" in report.problem
    assert await targets(es, index_name) == [good.index]
    assert await versions(es, index_name) == [good.index]  # the failed version is gone
    assert f"{bad}:4: elasticsearch: 400" in console.getvalue()
    assert rejects.count == 1


def test_a_books_index_gets_a_replica_where_a_second_data_node_can_hold_it() -> None:
    assert [replicas_for(nodes) for nodes in (1, 2, 3, None, "3")] == [0, 1, 1, 0, 0]


@pytest.mark.parametrize(("replicas", "expected"), [(None, "0"), (1, "1"), (0, "0")])
async def test_a_loaded_version_goes_live_with_its_replicas(
    es: Elasticsearch, index_name: str, tmp_path: Path, replicas: int | None, expected: str
) -> None:
    path = write_ndjson(tmp_path / "books.ndjson", REFERENCE_BOOKS)
    report, _rejects, _console = await load_files(es, index_name, path, replicas=replicas)
    assert report.published, report.problem
    found = await es.request("GET", f"/{report.index}/_settings")
    # Unset on this single-node cluster: none, as its data-node count calls for.
    assert found[report.index]["settings"]["index"]["number_of_replicas"] == expected
