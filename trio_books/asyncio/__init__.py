"""The asyncio build's shells: the Elasticsearch transport and hedging, on asyncio."""
