"""``python -m app``: the ``mnemo`` command line (``python -m app --help``); with no command,
``mnemo serve``."""

from __future__ import annotations

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["serve"]))
