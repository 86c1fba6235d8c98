#!/usr/bin/env python3
"""The package's layout, made from its own docstrings: every package and module with the first line
of its docstring, so the docs' layout page (docs/contributing/layout.md) cannot drift from the code.

    python3 scripts/layout.py            # print the layout
    python3 scripts/layout.py --write    # write it into docs/contributing/layout.md between the layout markers
    python3 scripts/layout.py --check    # exit 1 when that page's layout is not the code's

tests/test_layout.py runs the check.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "contributing" / "layout.md"
START = "<!-- layout: made by scripts/layout.py from the docstrings; edit those, then run it with --write -->"
END = "<!-- layout end -->"
WIDTH = 34  # the name column


def first_line(path: Path) -> str:
    """The first sentence of a module's docstring (its summary, joined where it wraps), or ''."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(line.strip() for line in doc.strip().split("\n\n")[0].splitlines())
    sentence, dot, _ = paragraph.partition(". ")
    return sentence + dot.strip()


def _entries(folder: Path, depth: int) -> list[str]:
    lines = []
    indent = "  " * depth
    for module in sorted(p for p in folder.glob("*.py") if p.name != "__init__.py"):
        lines.append(f"{indent}{module.name}".ljust(WIDTH) + f"  {first_line(module)}".rstrip())
    for package in sorted(p for p in folder.iterdir() if (p / "__init__.py").exists()):
        lines.append(f"{indent}{package.name}/".ljust(WIDTH) + f"  {first_line(package / '__init__.py')}".rstrip())
        lines.extend(_entries(package, depth + 1))
    return lines


def layout() -> str:
    package = ROOT / "inspector"
    lines = ["inspector/".ljust(WIDTH) + f"  {first_line(package / '__init__.py')}", *_entries(package, 1)]
    return "```\n" + "\n".join(lines) + "\n```"


def page_with(text: str, block: str) -> str:
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{PAGE.relative_to(ROOT)} has no layout markers: put {START!r} and {END!r} where the layout goes")
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str]) -> int:
    block = layout()
    if not argv:
        print(block)
        return 0
    text = PAGE.read_text(encoding="utf-8")
    if argv == ["--write"]:
        PAGE.write_text(page_with(text, block), encoding="utf-8")
        return 0
    if argv == ["--check"]:
        if page_with(text, block) != text:
            print(f"{PAGE.relative_to(ROOT)}'s layout is not the code's: run python3 scripts/layout.py --write", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
