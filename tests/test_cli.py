"""The command line's own manners: its version, its grouped help, its name, a port in use."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from trio_books import __version__
from trio_books.cli import GROUPS, main, program_name


def test_version_is_printed_under_the_name_typed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trio_books", "--version"], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (0, f"python -m trio_books {__version__}\n")


@pytest.mark.parametrize(
    ("argv0", "name"),
    [
        ("/usr/lib/python3/site-packages/trio_books/__main__.py", "python -m trio_books"),
        ("/opt/trio_books/venv/bin/trio-books", "trio-books"),
    ],
)
def test_usage_names_the_command_as_typed(argv0: str, name: str) -> None:
    assert program_name(argv0) == name


def test_help_lists_every_command_once_in_its_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    positions = [text.index(f"\n{title}:\n") for title in GROUPS]
    assert positions == sorted(positions)
    for title, names in GROUPS.items():
        section = text.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0]
        assert [line.split()[0] for line in section.splitlines()] == list(names)
    # Not a second time in argparse's flat list.
    assert "{es,serve" not in text
    assert text.count("serve the search API") == 1


def test_a_port_in_use_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"python -m trio_books: error: cannot listen on 127.0.0.1:{port}: ")
    assert "Address already in use" in error
    assert error.count("\n") == 1
