"""Load from wrk, the benchmark's own generator, with the answers counted by status.

A load generator written in Python, at hundreds of concurrent clients, runs
out of CPU before the service does, and then measures its own queue; beside
thousands of slow clients in the same process, it measures their scheduling.
wrk, a separate process in C, does neither: the load reaches the service and
its latencies are the service's. A Lua script counts the answers by status,
and the 503s that came without ``Retry-After``. It runs for a bounded time
against a loopback address only.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from trio_books.bench.wrk import lua_string
from trio_books.errors import UsageError

SCRIPT = """-- trio_books drill load: answers by status, and 503s without Retry-After.
local paths = {paths}
local next_path = 0
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, shed, late, other, bare = 0, 0, 0, 0, 0
end

request = function()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path])
end

response = function(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 503 then
    shed = shed + 1
    if headers["Retry-After"] == nil and headers["retry-after"] == nil then
      bare = bare + 1
    end
  elseif status == 504 then
    late = late + 1
  else
    other = other + 1
  end
end

done = function(summary, latency, requests)
  local ok_, shed_, late_, other_, bare_ = 0, 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    ok_ = ok_ + thread:get("ok")
    shed_ = shed_ + thread:get("shed")
    late_ = late_ + thread:get("late")
    other_ = other_ + thread:get("other")
    bare_ = bare_ + thread:get("bare")
  end
  local errors = summary.errors
  io.write(string.format(
    '{{"requests":%d,"ok":%d,"shed":%d,"late":%d,"other":%d,"bare_503":%d,"socket_errors":%d,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}}\\n',
    summary.requests, ok_, shed_, late_, other_, bare_,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


@dataclass(frozen=True)
class WrkLoad:
    """What wrk saw: every answer, by status, and its latencies (all answers together)."""

    requests: int
    ok: int
    shed: int
    # 504: admitted, but the search deadline passed first.
    late: int
    other: int
    bare_503: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def line(self) -> str:
        return (
            f"wrk: {self.requests} answers: {self.ok} ok, {self.shed} shed (503, "
            f"{self.bare_503} without Retry-After), {self.late} past the deadline (504), "
            f"{self.other} other, {self.socket_errors} "
            f"socket errors; all answers p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms"
        )


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise UsageError("the drills load the service with wrk: apt-get install wrk")
    return found


async def wrk_load(url: str, paths: Sequence[str], *, connections: int, seconds: float) -> WrkLoad:
    """Keep *connections* requests in flight against *url* for *seconds* (loopback only)."""
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise UsageError(f"drill load goes to loopback addresses only, not {url}")
    with tempfile.TemporaryDirectory(prefix="trio_books-wrk-") as folder:
        script = Path(folder) / "load.lua"
        listed = "{" + ",".join(lua_string(path.encode()) for path in paths) + "}"
        script.write_text(SCRIPT.format(paths=listed))
        done = await trio.run_process(
            [
                wrk_path(),
                "--threads",
                "1",
                "--connections",
                str(connections),
                "--duration",
                f"{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "--script",
                str(script),
                url,
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise UsageError(f"wrk failed: {done.stderr.decode(errors='replace')[-300:]}")
    return WrkLoad(**json.loads(lines[-1]))
