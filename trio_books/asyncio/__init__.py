"""The asyncio build: Quart on Hypercorn's asyncio worker, fan-out in a ``TaskGroup``.

It mirrors :mod:`trio_books.trio` file for file (``admission``, ``app``,
``fanout``, ``hedging``, ``network``, ``serve``, ``transport``) so the two can be
read side by side; everything else is shared. The Trio build's serving shells
(``shell``, ``server``, ``asgi``, ``hypercorn_shell``) have no twin here: this
build serves on Hypercorn's own asyncio shell.
"""
