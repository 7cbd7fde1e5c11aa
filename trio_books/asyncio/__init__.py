"""The asyncio build: Quart on Hypercorn's asyncio worker, fan-out in a ``TaskGroup``.

It mirrors :mod:`trio_books.trio` file for file (``admission``, ``app``,
``fanout``, ``hedging``, ``hypercorn_shell``, ``network``, ``serve``,
``transport``) so the two can be read side by side; everything else is shared.
The Trio build's lean shell (``shell``, ``server``, ``asgi``) has no twin here:
this build serves on Hypercorn's own asyncio shell, with its shutdown race
closed as in the Trio build's ``hypercorn_shell``.
"""
