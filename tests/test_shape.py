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
