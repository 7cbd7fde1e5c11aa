"""Finding a Java for Elasticsearch: ``TRIO_BOOKS_ES_JAVA_HOME``, else a JDK 17-25 on this machine."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from trio_books.errors import LocalElasticsearchError

JAVA_MAJORS = range(17, 26)
# Elasticsearch 8.19 runs on 17 (this machine's default) and 21; prefer those.
JAVA_PREFERENCE = (21, 17)


def java_major(java_home: Path) -> int | None:
    """The major version of the JDK at *java_home*, from its ``release`` file."""
    release = java_home / "release"
    if not (java_home / "bin" / "java").exists() or not release.exists():
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.M)
    return int(match.group(1)) if match else None


def _java_candidates() -> list[Path]:
    found: list[Path] = []
    if home := os.environ.get("JAVA_HOME"):
        found.append(Path(home))
    if java := shutil.which("java"):
        found.append(Path(java).resolve().parent.parent)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        found.extend(sorted(p for p in jvm.iterdir() if p.is_dir()))
    return found


def find_java_home(candidates: Iterable[Path] | None = None) -> Path:
    """``TRIO_BOOKS_ES_JAVA_HOME`` if set, else a JDK 17-25 found on this machine.

    Args:
        candidates: JDK folders to choose from; by default ``JAVA_HOME``, the
            ``java`` on the PATH and the folders of ``/usr/lib/jvm``.

    Raises:
        LocalElasticsearchError: no usable JDK.
    """
    if configured := os.environ.get("TRIO_BOOKS_ES_JAVA_HOME"):
        home = Path(configured)
        major = java_major(home)
        if major is None:
            raise LocalElasticsearchError(
                f"TRIO_BOOKS_ES_JAVA_HOME={configured} is not a JDK (no bin/java and release file)"
            )
        return home
    by_major: dict[int, Path] = {}
    for home in _java_candidates() if candidates is None else candidates:
        major = java_major(home)
        if major is not None and major in JAVA_MAJORS:
            by_major.setdefault(major, home.resolve())
    if not by_major:
        raise LocalElasticsearchError(
            "no Java found for Elasticsearch: install a JDK 17-25 or set TRIO_BOOKS_ES_JAVA_HOME"
        )
    for major in JAVA_PREFERENCE:
        if major in by_major:
            return by_major[major]
    return by_major[max(by_major)]
