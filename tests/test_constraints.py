"""constraints.txt (the versions the suite passed with, which run.py and CI install within) agrees
with pyproject.toml: every dependency it declares is pinned there, inside its declared range, so a
range moved without the suite run, or a new dependency nobody pinned, fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_is_pinned_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    every = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    # the project itself is no dependency: the test extra names the docs one (causallm-inspect[docs])
    declared = [r for r in map(Requirement, every) if _name(r.name) != _name(project["name"])]
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"constraints.txt pins exact versions: {line}"
            pinned[_name(req.name)] = spec.version
    missing = [r.name for r in declared if _name(r.name) not in pinned]
    assert missing == [], f"declared in pyproject.toml but not pinned in constraints.txt: {missing}"
    outside = [f"{r.name}=={pinned[_name(r.name)]} not in {r.specifier}" for r in declared
               if not r.specifier.contains(pinned[_name(r.name)], prereleases=True)]
    assert outside == []


def _run_py(monkeypatch, tmp_path, constraints: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_py_under_test", ROOT / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    monkeypatch.setattr(run, "VENV", venv)
    monkeypatch.setattr(run, "PY", venv / "bin" / "python")
    monkeypatch.setattr(run, "CONSTRAINTS", str(constraints))
    calls = []
    monkeypatch.setattr(run, "_pip", lambda *args: calls.append(args))
    monkeypatch.setattr(run.subprocess, "run", lambda *a, **k: type("Done", (), {"returncode": 1})())
    return run, calls


def test_run_py_installs_within_the_constraints_and_again_when_they_change(monkeypatch, tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text((ROOT / "constraints.txt").read_text(encoding="utf-8"), encoding="utf-8")
    run, calls = _run_py(monkeypatch, tmp_path, constraints)
    run.setup("test")
    assert len(calls) == 2  # torch first, then the project, both within the constraints
    assert all(call[call.index("-c") + 1] == str(constraints) for call in calls)
    run.setup("test")
    assert len(calls) == 2  # nothing changed: nothing installed
    constraints.write_text(constraints.read_text(encoding="utf-8") + "# moved on purpose\n", encoding="utf-8")
    run.setup("test")
    assert len(calls) == 4


def test_run_py_without_constraints_installs_within_the_ranges(monkeypatch, tmp_path):
    run, calls = _run_py(monkeypatch, tmp_path, Path("none"))
    run.setup("")
    assert calls and all("-c" not in call for call in calls)
