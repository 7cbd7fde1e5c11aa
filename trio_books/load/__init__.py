"""Loading catalogues into Elasticsearch: the Trio pipeline and its commands.

The pure parts (reading and cleaning records, chunking, reading ``_bulk``
answers, the synthetic catalogue) live in :mod:`trio_books.core`; this package
is the I/O around them.
"""
