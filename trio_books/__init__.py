"""trio_books: a book-search HTTP microservice on Trio.

Quart-Trio serves the API through Hypercorn's trio worker; every search fans out
several Elasticsearch calls inside one Trio nursery. Nothing is built at import
time: see :func:`trio_books.settings.load_settings` and the ``create_app``
factories of each build.
"""

from __future__ import annotations

__version__ = "0.1.0"
