"""The book: what the index stores and what the API returns."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from trio_books.core.completion_inputs import completion_document
from trio_books.core.mapping import title_sort_key


class Author(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, examples=["Suzanne Collins"])


class Tag(BaseModel):
    model_config = ConfigDict(frozen=True)

    title: str = Field(examples=["Young Adult"])
    slug: str = Field(min_length=1, examples=["young-adult"])


class Book(BaseModel):
    """A book of the catalogue. Optional fields are ``null`` when unknown."""

    model_config = ConfigDict(frozen=True)

    book_id: int = Field(ge=0, examples=[1])
    title: str = Field(min_length=1, examples=["The Hunger Games (The Hunger Games, #1)"])
    original_title: str | None = Field(default=None, examples=["The Hunger Games"])
    isbn: str | None = Field(default=None, examples=["0439023483"])
    isbn13: str | None = Field(default=None, examples=["9780439023481"])
    authors: list[Author] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)
    original_publication_year: int | None = Field(default=None, examples=[2008])
    language_code: str | None = Field(default=None, examples=["eng"])
    average_rating: float | None = Field(default=None, ge=0, le=5, examples=[4.34])
    ratings_count: int | None = Field(default=None, ge=0, examples=[4780653])
    small_image_url: str | None = None


def _index_fields(book: Book) -> dict[str, Any]:
    """What the index holds beside the book itself: the title's sort key, completion inputs."""
    return {"title_sort": title_sort_key(book.title), **completion_document(book)}


def book_to_document(book: Book) -> dict[str, Any]:
    """The Elasticsearch document for *book* (its ``_id`` is the book id)."""
    return {**book.model_dump(mode="json"), **_index_fields(book)}


def document_json(book: Book) -> bytes:
    """:func:`book_to_document`, encoded: the same JSON object, made twice as fast.

    pydantic's serializer writes the book in one call; the index's own fields
    go in before the closing brace (a model's JSON is always an object).
    """
    encoded = book.model_dump_json().encode()
    return encoded[:-1] + b"," + orjson.dumps(_index_fields(book))[1:]


def document_to_book(source: dict[str, Any]) -> Book:
    """The book stored in an Elasticsearch ``_source`` (the model ignores the index's own fields)."""
    return Book.model_validate(source)
