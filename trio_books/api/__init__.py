"""The HTTP API, loop-neutral: routes, error responses, headers and CORS.

Quart and Quart-Trio share this API, so the Trio build and the asyncio build
register the same routes; each build brings only its concurrency shell (how a
search's branches run together) and its app lifecycle.
"""
