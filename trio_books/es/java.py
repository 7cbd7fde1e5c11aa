"""Finding a Java for the local engine: ``TRIO_BOOKS_ES_JAVA_HOME``, else a fitting JDK on this machine.

Which majors fit depends on the engine and its version
(:meth:`trio_books.es.engines.Engine.java_majors`): Elasticsearch 9 needs 21 or
newer, OpenSearch 2 stops at 21, Elasticsearch 8.19 runs on 17 to 25.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from trio_books.errors import LocalElasticsearchError

# Elasticsearch 8.19's, the default engine's: 21 and 17 first.
DEFAULT_MAJORS = (21, 17, 25, 24, 23, 22, 20, 19, 18)


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


def _span(majors: Sequence[int]) -> str:
    return f"{min(majors)}-{max(majors)}"


def find_java_home(
    candidates: Iterable[Path] | None = None,
    *,
    majors: Sequence[int] = DEFAULT_MAJORS,
    needed_by: str = "Elasticsearch",
) -> Path:
    """``TRIO_BOOKS_ES_JAVA_HOME`` if set, else the JDK of the first of *majors* found here.

    Args:
        candidates: JDK folders to choose from; by default ``JAVA_HOME``, the
            ``java`` on the PATH and the folders of ``/usr/lib/jvm``.
        majors: the Java majors that fit, the preferred first.
        needed_by: what needs it, for messages ("Elasticsearch 9.5.0").

    Raises:
        LocalElasticsearchError: no fitting JDK, or ``TRIO_BOOKS_ES_JAVA_HOME``
            names one that does not fit.
    """
    if configured := os.environ.get("TRIO_BOOKS_ES_JAVA_HOME"):
        home = Path(configured)
        major = java_major(home)
        if major is None:
            raise LocalElasticsearchError(
                f"TRIO_BOOKS_ES_JAVA_HOME={configured} is not a JDK (no bin/java and release file)"
            )
        if major not in majors:
            raise LocalElasticsearchError(
                f"TRIO_BOOKS_ES_JAVA_HOME={configured} is Java {major}; "
                f"{needed_by} needs Java {_span(majors)}"
            )
        return home
    by_major: dict[int, Path] = {}
    for home in _java_candidates() if candidates is None else candidates:
        major = java_major(home)
        if major is not None and major in majors:
            by_major.setdefault(major, home.resolve())
    for major in majors:
        if major in by_major:
            return by_major[major]
    raise LocalElasticsearchError(
        f"no Java found for {needed_by}: install a JDK {_span(majors)} "
        "or set TRIO_BOOKS_ES_JAVA_HOME"
    )
