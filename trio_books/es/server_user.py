"""The system user a local node runs as when we are root (the engines refuse to run as root).

Created once; the node's folders are handed to it, and every folder above the
distribution must be open for it to walk through.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from trio_books.errors import LocalElasticsearchError
from trio_books.es import security

ES_USER = "trio-books-es"


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int
    name: str


def server_owner() -> Owner | None:
    """The user the server runs as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(ES_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        done = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                ES_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise LocalElasticsearchError(
                f"cannot create the system user {ES_USER} to run the search engine: "
                f"{done.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(ES_USER)
    return Owner(entry.pw_uid, entry.pw_gid, entry.pw_name)


def server_uid() -> int | None:
    """The uid our nodes' servers run as, without creating anyone; None: no such user yet."""
    if os.geteuid() != 0:
        return os.geteuid()
    try:
        return pwd.getpwnam(ES_USER).pw_uid
    except KeyError:
        return None


def check_reachable(path: Path) -> None:
    """The server's user must be able to walk down to *path*."""
    for parent in [*reversed(path.parents), path]:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            raise LocalElasticsearchError(
                f"{parent} is closed to other users, so the search engine (user {ES_USER}) cannot "
                "reach its files: set TRIO_BOOKS_CACHE_DIR to a folder outside it"
            )


def hand_over(root: Path, owner: Owner) -> None:
    for folder, dirs, files in os.walk(root):
        os.chown(folder, owner.uid, owner.gid)
        for name in dirs + files:
            if folder == str(root) and name == security.SECURE_FILE:
                continue  # the passwords stay the invoking user's alone
            os.chown(os.path.join(folder, name), owner.uid, owner.gid, follow_symlinks=False)
