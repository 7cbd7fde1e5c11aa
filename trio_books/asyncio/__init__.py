"""The asyncio build: Quart on Hypercorn's asyncio worker, fan-out in a ``TaskGroup``.

It mirrors :mod:`trio_books.trio` file for file (``fanout``, ``app``, ``serve``)
so the two can be read side by side, and has its own Elasticsearch transport and
hedging (``transport``, ``hedging``); everything else is shared.
"""
