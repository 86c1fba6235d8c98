"""The docs' layout page (docs/contributing/layout.md) is the code's: the tree scripts/layout.py makes from the
modules' docstrings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout():
    spec = importlib.util.spec_from_file_location("layout_script", ROOT / "scripts" / "layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_layout_page_is_made_from_the_docstrings():
    layout = _layout()
    text = (ROOT / "docs" / "contributing" / "layout.md").read_text(encoding="utf-8")
    assert layout.page_with(text, layout.layout()) == text, "run: python3 scripts/layout.py --write"


def test_every_module_says_what_it_is_for():
    """The layout is only as good as the docstrings: a module without one is a blank line there."""
    layout = _layout()
    blank = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "inspector").rglob("*.py")) if not layout.first_line(p)]
    assert blank == []
