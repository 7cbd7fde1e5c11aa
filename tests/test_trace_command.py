"""``python -m trio_books trace``: a live request's timeline, drawn from a real service."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import trio

from trio_books.core.timeline import Trace, TraceTask
from trio_books.core.timeline_chart import BAR, text_chart
from trio_books.serving import hypercorn_config
from trio_books.settings import Settings
from trio_books.trio.serve import serve_trio


async def run_cli(*args: str) -> tuple[int, str, str]:
    done = await trio.run_process(
        [sys.executable, "-m", "trio_books", "trace", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ},
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_trace_draws_every_branch_and_a_png(
    nursery: trio.Nursery, api_settings: Settings, tmp_path: Path
) -> None:
    config = hypercorn_config(api_settings, host="127.0.0.1", port=0)
    binds = await nursery.start(
        functools.partial(serve_trio, api_settings, config, stop_on_signals=False)
    )
    png = tmp_path / "timeline.png"
    code, out, err = await run_cli("q=potter&tags=fantasy", "--url", binds[0], "--png", str(png))
    assert code == 0, err
    assert "200 in" in out
    assert "2 books" in out
    rows = {line.split()[0]: line for line in out.splitlines() if BAR in line}
    assert {"request", "es-hits", "es-facet-tags", "es-facet-years", "es-facet-languages"} <= set(
        rows
    )
    assert all(" ok " in rows[name] for name in rows if name != "request")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_trace_reports_an_unreachable_service_in_one_line(tmp_path: Path) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = await run_cli("q=x", "--url", f"http://127.0.0.1:{port}")
    assert code == 2
    assert err.strip().splitlines() == [
        f"python -m trio_books: error: cannot reach the service at http://127.0.0.1:{port}: ConnectError"
    ]


def test_text_chart_puts_bars_on_a_shared_axis() -> None:
    trace = Trace(
        end_ms=10.0,
        tasks=[
            TraceTask(name="es-hits", start_ms=0.0, end_ms=5.0, outcome="ok"),
            TraceTask(name="es-facet-tags", start_ms=5.0, end_ms=10.0, outcome="cancelled"),
        ],
    )
    lines = text_chart(trace, width=10).splitlines()
    bars = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert bars == {
        "request": BAR * 10,
        "es-hits": BAR * 5 + "·" * 5,
        "es-facet-tags": "·" * 5 + BAR * 5,
    }
    assert lines[-1].endswith("5.0-10.0 ms  cancelled")
