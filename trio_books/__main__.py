"""``python -m trio_books``: the command line."""

from __future__ import annotations

import sys

from trio_books.cli import main

sys.exit(main())
