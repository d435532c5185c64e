"""Each benchmark script owns one marked section of docs/benchmarks.md and rewrites only that."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: str | Path, key: str, text: str) -> None:
    """Replace the text between `<!-- begin KEY -->` and `<!-- end KEY -->`, or append the section."""
    path = Path(path)
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    current = path.read_text() if path.is_file() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else current.rstrip() + f"\n\n{block}\n"
    path.write_text(updated)
    print(f"wrote section '{key}' of {path}")


def table_section(title: str, intro: str, header: list[str], rows: list[str]) -> str:
    """A benchmark section: its heading, what was run and how, and the measured table."""
    return "\n".join(
        [f"## {title}", "", intro, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows]
    )
