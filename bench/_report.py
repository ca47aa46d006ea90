"""What both suites share: logging to stderr, the text table, cProfile hot spots."""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
from collections.abc import Sequence


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def hot_spots(profiler: cProfile.Profile, title: str, lines: int = 18) -> str:
    """The functions ``profiler`` saw spend the most time in themselves."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats(pstats.SortKey.TIME).print_stats(lines)
    text = out.getvalue()
    return f"\n=== profile: {title}\n" + text[text.index("   ncalls") :].rstrip()
