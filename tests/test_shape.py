"""The package keeps its shape: the import-linter contracts of pyproject.toml hold.

They say that core imports no UI and no front end, that the app does not import the command
line, and that there is no import cycle between modules or packages (imports inside functions
count). The test beside them, that importing the app loads no torch, is in tests/ui/test_app.py.
"""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_import_contracts_hold(capsys):
    status = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    assert status == EXIT_STATUS_SUCCESS, capsys.readouterr().out


def test_the_views_are_registered_once_in_the_lessons_order():
    """A view is registered once, in widgets/views.py, in the order of the lessons' VIEWS."""
    from inspector.core.lessons.model import VIEWS
    from inspector.widgets.views import VIEW_CLASSES

    assert tuple(v.VIEW for v in VIEW_CLASSES) == VIEWS
    assert all(v.TITLE and v.ACTIONS is not None for v in VIEW_CLASSES)
    # every key a view says it answers is one the main screen sends
    from inspector.screens.main import VIEW_ACTIONS, VIEW_KEYS

    assert set().union(*(v.ACTIONS for v in VIEW_CLASSES)) <= (set(VIEW_ACTIONS) | set(VIEW_KEYS)) - {"view_key"}


def test_no_type_ignore_in_the_package():
    root = PYPROJECT.parent / "inspector"
    found = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "type: ignore" in line]
    assert found == []


def test_no_module_over_500_lines():
    """A module a newcomer can read: past 500 lines it holds more than one concern (split it by one)."""
    root = PYPROJECT.parent / "inspector"
    long = {str(p.relative_to(root)): n for p in root.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def test_no_two_modules_share_a_name_across_the_core_parts():
    """`lab/predictions.py` beside `training/predictions.py` made readers open the wrong one: within
    inspector/core a module's name says which it is (the CLI's modules are named after their commands)."""
    root = PYPROJECT.parent / "inspector" / "core"
    seen: dict[str, list[str]] = {}
    for p in root.rglob("*.py"):
        if p.name not in ("__init__.py", "bench.py"):  # each part's bench is its `bench --…` flag
            seen.setdefault(p.name, []).append(str(p.relative_to(root)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
