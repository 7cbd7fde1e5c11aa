"""The pure core: Elasticsearch request bodies in, parsed models out.

Nothing here imports trio, asyncio, httpx or quart, so the Trio build, the
asyncio build and the loader share it, and it is tested without a server.
"""
