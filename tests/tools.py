"""The programs from Debian's packages that some tests drive, and what to do when one is missing.

A test names what it needs with ``@pytest.mark.needs("nginx")``. Where a program is
missing, the test is skipped with the line that installs it: a developer without root
(``nox -s tests`` installs them only as root) still runs the rest of the suite. CI sets
``TRIO_BOOKS_REQUIRE_TOOLS=1``: there a missing program fails the test instead, so no
test silently stops running.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = os.environ.get("TRIO_BOOKS_CHROMIUM", "/usr/bin/chromium")
# Each program: where to find it, and the Debian package that brings it.
TOOLS = {
    "chromium": (CHROMIUM, "chromium"),
    "curl": ("curl", "curl"),
    "nginx": ("nginx", "nginx"),
    "prometheus": ("prometheus", "prometheus"),
    "wrk": ("wrk", "wrk"),
    "systemd-analyze": ("systemd-analyze", "systemd"),
}
REQUIRED = os.environ.get("TRIO_BOOKS_REQUIRE_TOOLS") == "1"


def find(tool: str) -> str | None:
    """The program's path, or None; /usr/sbin too, often missing from a user's PATH."""
    where, _ = TOOLS[tool]
    if os.path.isabs(where):
        return where if Path(where).exists() else None
    return shutil.which(where) or shutil.which(where, path="/usr/sbin:/sbin")


def missing_reason(tool: str) -> str | None:
    """Why a test that needs *tool* cannot run, or None when it can."""
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}: add it to tests/tools.py")
    if find(tool) is not None:
        return None
    package = TOOLS[tool][1]
    return f"needs {tool}: sudo apt-get install {package} (nox -s tests installs it as root)"
