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


def check_cache_folder(cache_dir: Path) -> None:
    """As root, refuse a cache folder other users can write.

    Root unpacks, configures and hands over node folders there: another user
    who can rename or replace its entries (``/tmp``, sticky or not) could
    point root's writes elsewhere.
    """
    if os.geteuid() != 0 or not cache_dir.exists():
        return
    if cache_dir.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LocalElasticsearchError(
            f"{cache_dir} is writable by other users: as root, the local engine needs a cache "
            "folder only root can write (set TRIO_BOOKS_CACHE_DIR to one)"
        )


def open_for_traversal(folder: Path) -> None:
    """Let the server's user walk through *folder*: add execute for group and others, remove nothing."""
    mode = stat.S_IMODE(folder.stat().st_mode)
    wanted = mode | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    if wanted != mode:
        folder.chmod(wanted)


def check_reachable(path: Path) -> None:
    """The server's user must be able to walk down to *path*."""
    for parent in [*reversed(path.parents), path]:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            raise LocalElasticsearchError(
                f"{parent} is closed to other users, so the search engine (user {ES_USER}) cannot "
                "reach its files: set TRIO_BOOKS_CACHE_DIR to a folder outside it"
            )


def hand_over(root: Path, owner: Owner) -> None:
    """Give the node's folder to the server's user, never following a symbolic link.

    That user controls the tree (it could swap a folder for a link between two
    runs, or during this walk): the walk holds each folder open by descriptor
    (``os.fwalk``, which does not follow links, not even at *root*) and changes
    each entry relative to it, so no path is ever resolved again.
    """
    for folder, dirs, files, folder_fd in os.fwalk(root, follow_symlinks=False):
        os.chown(folder_fd, owner.uid, owner.gid)
        for name in dirs + files:
            if folder == str(root) and name == security.SECURE_FILE:
                continue  # the passwords stay the invoking user's alone
            os.chown(name, owner.uid, owner.gid, dir_fd=folder_fd, follow_symlinks=False)
