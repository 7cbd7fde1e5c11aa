"""``python -m trio_books bench``: the Trio build, the asyncio build and their peers, measured.

Modules, one concept each:

- :mod:`.options`: what a run measures (targets, concurrencies, workload, upstream);
- :mod:`.catalogue`: the benchmark's catalogue of ≥ 100,000 books, loaded if missing;
- :mod:`.queries`: the seeded query list, drawn from the catalogue's own words;
- :mod:`.targets`: each target's server process and the HTTP client it uses;
- :mod:`.processes`: starting servers, and their CPU time and peak memory;
- :mod:`.wrk`: the load generator (``wrk``) and its Lua script;
- :mod:`.latency_standin`: a stand-in for Elasticsearch that answers after a fixed delay;
- :mod:`.peer_fastapi`: the peer a user would pick instead (FastAPI, Uvicorn, elasticsearch-py);
- :mod:`.runner`: the interleaved rounds;
- :mod:`.report`: ``results.json``, ``report.md`` and the plots;
- :mod:`.command`: the command line.
"""
