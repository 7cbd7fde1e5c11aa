"""The Elasticsearch transport's loop-free core: pools, nodes, HTTP/1.1 framing, quantiles.

Nothing here imports trio, asyncio or httpx (h11 is itself sans-IO): these are
plain objects that take bytes, counts and times in and hand decisions out. The
shells that do the I/O are :mod:`trio_books.trio.transport` and
:mod:`trio_books.asyncio.transport`; :mod:`trio_books.transport.adapter` is
what both share with httpx.

- :mod:`~trio_books.transport.pool`: one node's connections (an idle stack, slot
  and wait-queue counts);
- :mod:`~trio_books.transport.nodes`: which node to call next, and the dead-node
  backoff (1, 2, 4 … 30 s);
- :mod:`~trio_books.transport.http11`: one request and its response on an
  ``h11`` connection;
- :mod:`~trio_books.transport.quantile`: a rolling p95, the default hedging delay.
"""
