"""What a load tells people as it runs: progress, and every record it could not index."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import BinaryIO, TextIO

import trio

from trio_books.core.progress import LoadStats, progress_bar, progress_line
from trio_books.errors import UsageError
from trio_books.load.sources import Reject

# Rejects printed on the console; all of them go to the rejects file.
CONSOLE_REJECTS = 50


class RejectsLog:
    """Every reject to an NDJSON file (made at the first reject), the first few to the console.

    Args:
        path: the rejects file; ``None`` for console only.
        console: where rejects are printed, one line each.
        show: how many to print before only counting.
    """

    def __init__(
        self,
        path: Path | None,
        console: TextIO,
        show: int = CONSOLE_REJECTS,
        *,
        overwrite: bool = False,
    ) -> None:
        self.path = path
        self.console = console
        self.show = show
        self.overwrite = overwrite
        self.count = 0

    def check(self) -> None:
        """Refuse, before a load starts, to clobber an existing rejects file (unless *overwrite*)."""
        if self.path is not None and not self.overwrite and os.path.lexists(self.path):
            raise UsageError(
                f"{self.path} exists: move it, name another --rejects, or pass --rejects-overwrite"
            )

    def _open(self) -> BinaryIO:
        """The rejects file, never through a symbolic link: made at the first reject, then appended."""
        assert self.path is not None
        if self.count:
            flags = os.O_WRONLY | os.O_APPEND
        else:
            flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if self.overwrite else os.O_EXCL)
        try:
            fd = os.open(self.path, flags | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            raise UsageError(
                f"{self.path} appeared during the load: the rejects were not written"
            ) from None
        except OSError as error:
            raise UsageError(f"cannot write the rejects to {self.path}: {error.strerror}") from None
        return os.fdopen(fd, "wb")

    async def write(self, rejects: list[Reject]) -> None:
        # File and console writes block: do them in a worker thread, off the loop.
        await trio.to_thread.run_sync(self._write, rejects)

    def _write(self, rejects: list[Reject]) -> None:
        for reject in rejects[: max(0, self.show - self.count)]:
            print(reject.describe(), file=self.console)
        if self.count < self.show <= self.count + len(rejects):
            where = f" in {self.path}" if self.path else ""
            print(f"... further rejects are not printed; all are{where}", file=self.console)
        if self.path is not None:
            with self._open() as file:
                file.writelines(reject.to_json() for reject in rejects)
        self.count += len(rejects)


async def show_progress(stats: LoadStats, out: TextIO, *, tty: bool, every: float) -> None:
    """Redraw a bar (on a terminal) or print a line (otherwise) every *every* seconds, until cancelled."""
    started = trio.current_time()
    try:
        while True:
            await trio.sleep(every)
            # A copy with the time so far: the load's own ``seconds`` ends with its last request.
            now = dataclasses.replace(stats, seconds=trio.current_time() - started)
            if tty:
                out.write("\r" + progress_bar(now))
                out.flush()
            else:
                print(progress_line(now), file=out, flush=True)
    finally:
        if tty:
            out.write("\n")
            out.flush()
