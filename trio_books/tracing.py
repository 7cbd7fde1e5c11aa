"""``python -m trio_books trace "q=harry&tags=fantasy"``: draw a live request's task timeline.

It calls a running service with ``trace=1`` and draws the answer's trace in the
terminal, and with ``--png FILE`` as an image. A failed search is drawn too:
its timeline shows which branch failed and which were cancelled.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx

from trio_books.core.timeline import Trace
from trio_books.core.timeline_chart import text_chart
from trio_books.errors import UsageError

DEFAULT_URL = "http://127.0.0.1:5000"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trace = commands.add_parser(
        "trace",
        help="draw the task timeline of one search on a running service",
        description=(
            "Send one search with trace=1 to a running trio_books service and draw its tasks on a "
            "shared time axis. Exit codes: 0 the search answered 200; 1 it answered an error (its "
            "timeline is still drawn when the service returned one); 2 bad use or no service."
        ),
    )
    trace.add_argument("query", help='the search\'s query string, e.g. "q=harry&tags=fantasy"')
    trace.add_argument(
        "--url", default=DEFAULT_URL, help="the service's base URL (default %(default)s)"
    )
    trace.add_argument("--prefix", default="/api/v1", help="the API prefix (default %(default)s)")
    trace.add_argument("--png", type=Path, help="also draw the timeline into this PNG file")
    trace.add_argument(
        "--width", type=int, default=50, help="bar width in characters (default %(default)s)"
    )
    trace.set_defaults(handler=run)


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The query string's pairs, with ``trace=1`` added; a malformed string is a usage error."""
    try:
        pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as error:
        raise UsageError(f"not a query string: {query!r} ({error})") from None
    return [(key, value) for key, value in pairs if key != "trace"] + [("trace", "1")]


def run(args: argparse.Namespace) -> int:
    if args.width < 10:
        raise UsageError("--width must be at least 10")
    url = f"{args.url.rstrip('/')}{args.prefix}/search/?{urlencode(query_pairs(args.query))}"
    try:
        response = httpx.get(url, timeout=30)
    except httpx.HTTPError as error:
        raise UsageError(
            f"cannot reach the service at {args.url}: {type(error).__name__}"
        ) from None
    try:
        body = response.json()
    except ValueError:
        raise UsageError(
            f"{args.url} did not answer JSON (status {response.status_code})"
        ) from None
    if not isinstance(body, dict) or "trace" not in body:
        message = body.get("message") if isinstance(body, dict) else None
        raise UsageError(f"the service answered {response.status_code} without a trace: {message}")
    trace = Trace.model_validate(body["trace"])
    summary = (
        f"{body.get('count', 0)} books" + (", partial" if body.get("partial") else "")
        if response.status_code == 200
        else f"{body.get('error')}: {body.get('message')}"
    )
    print(f"GET {url}\n{response.status_code} in {trace.end_ms:.1f} ms - {summary}\n")
    print(text_chart(trace, width=args.width))
    if args.png:
        draw_png(trace, args.png, title=f"{args.query} ({response.status_code})")
        print(f"\nwrote {args.png}")
    return 0 if response.status_code == 200 else 1


OUTCOME_COLOURS = {
    "ok": "#2a9d8f",
    "error": "#e63946",
    "cancelled": "#8d99ae",
    "timed out": "#f4a261",
    "lost a hedge": "#b5838d",
    "running": "#adb5bd",
}


def draw_png(trace: Trace, path: Path, *, title: str) -> None:
    """The timeline as a horizontal bar chart, one bar per task, coloured by outcome."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "drawing a PNG needs matplotlib: pip install 'trio_books[plots]'"
        ) from None
    tasks = sorted(trace.tasks, key=lambda t: (t.start_ms, t.name))
    names = ["request", *(task.name for task in tasks)]
    spans = [(trace.start_ms, trace.end_ms), *((task.start_ms, task.end_ms) for task in tasks)]
    colours = ["#264653", *(OUTCOME_COLOURS[task.outcome] for task in tasks)]
    figure, axes = plt.subplots(figsize=(8, 0.5 * len(names) + 1.2))
    for row, ((start, end), colour) in enumerate(zip(spans, colours, strict=True)):
        axes.barh(row, max(end - start, trace.end_ms / 500), left=start, color=colour)
    axes.set_yticks(range(len(names)), labels=names)
    axes.invert_yaxis()
    axes.set_xlabel("milliseconds since the request started")
    axes.set_title(title)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None
    finally:
        plt.close(figure)
