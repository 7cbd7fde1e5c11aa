"""A request's timeline drawn as text: one bar per task on a shared time axis."""

from __future__ import annotations

from trio_books.core.timeline import Trace

BAR = "█"
SPACE = "·"


def text_chart(trace: Trace, *, width: int = 50) -> str:
    """Rows like ``es-hits  ·····████████····  0.4-6.1 ms  ok  http://127.0.0.1:9200``."""
    total = max(trace.end_ms, max((task.end_ms for task in trace.tasks), default=0.0), 1e-9)
    name_width = max([len("request"), *(len(task.name) for task in trace.tasks)])

    def bar(start: float, end: float) -> str:
        first = min(width - 1, int(start / total * width))
        last = max(first + 1, min(width, round(end / total * width)))
        return SPACE * first + BAR * (last - first) + SPACE * (width - last)

    lines = [
        f"{'':{name_width}}  0 ms{'':{max(0, width - 4 - len(f'{total:.1f} ms'))}}{total:.1f} ms"
    ]
    lines.append(
        f"{'request':{name_width}}  {bar(trace.start_ms, trace.end_ms)}  {trace.start_ms:.1f}-{trace.end_ms:.1f} ms"
    )
    for task in sorted(trace.tasks, key=lambda t: (t.start_ms, t.name)):
        node = f"  {task.node}" if task.node else ""
        lines.append(
            f"{task.name:{name_width}}  {bar(task.start_ms, task.end_ms)}  "
            f"{task.start_ms:.1f}-{task.end_ms:.1f} ms  {task.outcome}{node}"
        )
    return "\n".join(lines)
