"""The docs site (mkdocs.yml, docs/): what the code can say is on its pages, and the site builds strictly.

No model is loaded: the command reference is rendered from the parsers (as the site's build hook
does), the problem kinds are read from the code's own lists, and the build is mkdocs's, offline.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _hook():
    """docs/hooks/reference.py, loaded by its path as mkdocs loads it."""
    spec = importlib.util.spec_from_file_location("docs_reference_hook", DOCS / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(name: str) -> str:
    path = DOCS / name
    assert path.is_file(), f"docs/{name} is missing: it is in mkdocs.yml's nav"
    return path.read_text(encoding="utf-8")


def _typed(action) -> list[str]:
    """How an option is written on the page: each of its flags, or a positional's metavar."""
    if action.option_strings:
        return list(action.option_strings)
    return [action.metavar or action.dest]


# --- the command reference ---------------------------------------------------------------------------


def test_every_command_and_every_option_is_in_the_generated_reference():
    import argparse

    from inspector.cli import COMMANDS, build_parser

    hook = _hook()
    text = hook.reference()
    parser = build_parser()
    assert list(parser.commands) and len(parser.commands) >= len(COMMANDS)
    missing = []
    for name, command in [("", parser), *parser.commands.items()]:
        if name and f"## causallm-inspect {name} {{ #{name} }}" not in text:
            missing.append(f"the command {name}")
        section = text.split(f"{{ #{name or 'app'} }}", 1)[1].split("\n## ", 1)[0]
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            for typed in _typed(action):
                if f"`{typed}`" not in section:
                    missing.append(f"{name or 'the app'}: {typed}")
    assert not missing, f"not in the command reference: {missing}"


def test_the_reference_page_holds_the_place_the_hook_fills_once():
    hook = _hook()
    page = _page(hook.PAGE)
    assert page.count(hook.MARKER) == 1


# --- the problem kinds -------------------------------------------------------------------------------


def _kind_constants(node: ast.AST) -> set[str]:
    """The string constants an expression can give as a kind (`exc.kind or "bad-row"`, an if-else)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.BoolOp):
        return set().union(*(_kind_constants(v) for v in node.values))
    if isinstance(node, ast.IfExp):
        return _kind_constants(node.body) | _kind_constants(node.orelse)
    return set()


def _called(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _kinds_written_in_the_code() -> dict[str, set[str]]:
    """Each problem kind written as a literal where a problem is made: Problem(row, KIND, ...),
    RowProblem(KIND, ...), an error's kind=KIND, an error class's `kind = KIND`, and
    `kind = exc.kind or KIND`; by kind, the modules."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "inspector" / "core").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        errors = {
            n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
            and any(isinstance(b, ast.Name) and b.id.endswith(("Error", "Problem")) for b in n.bases)
        }
        for node in ast.walk(tree):
            kinds: set[str] = set()
            if isinstance(node, ast.Call):
                called = _called(node)
                if called == "Problem" and len(node.args) > 1:
                    kinds |= _kind_constants(node.args[1])
                if called == "RowProblem" and node.args:
                    kinds |= _kind_constants(node.args[0])
                if called.endswith(("Error", "Problem")):
                    kinds |= set().union(*(_kind_constants(k.value) for k in node.keywords if k.arg == "kind"))
            if isinstance(node, ast.ClassDef) and node.name in errors:
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "kind" for t in stmt.targets):
                        kinds |= _kind_constants(stmt.value)
            if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "kind" for t in node.targets)
                    and isinstance(node.value, ast.BoolOp) and isinstance(node.value.values[0], ast.Attribute)
                    and node.value.values[0].attr == "kind"):
                kinds |= _kind_constants(node.value)
            for kind in kinds:
                found.setdefault(kind, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_code_makes_only_the_problem_kinds_inspect_data_lists():
    from inspector.core.reports.data_report import FIXES, PROBLEMS, DataReport, Problem

    assert list(PROBLEMS) == list(FIXES), "each kind has its meaning (PROBLEMS) and its fix (FIXES), in one order"
    written = _kinds_written_in_the_code()
    assert len(written) >= 15, f"the scan found too few kinds to be reading the code: {sorted(written)}"
    unlisted = {kind: sorted(where) for kind, where in written.items() if kind not in PROBLEMS}
    assert not unlisted, f"problem kinds made in the code but not in data_report.PROBLEMS: {unlisted}"
    report = DataReport("data.jsonl", "jsonl", "tiny", ["mask"])
    report.add(Problem(3, "no-trained-tokens", "all 9 labels are -100"))
    with pytest.raises(ValueError, match="not in PROBLEMS"):
        report.add(Problem(3, "no-such-kind", "a kind no list names"))


def test_every_problem_kind_inspect_data_reports_is_in_the_data_page_table():
    from inspector.core.reports.data_report import PROBLEMS

    page = _page("data.md")
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", page, re.M))  # a table row whose first cell is `kind`
    missing = [kind for kind in PROBLEMS if kind not in rows]
    assert not missing, f"docs/data.md has no table row `| \\`kind\\` | ...` for: {missing}"
    unknown = sorted(k for k in rows if re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", k) and k not in PROBLEMS)
    assert not unknown, f"docs/data.md documents kinds inspect-data does not report: {unknown}"


def _audit(share_band=None):
    import numpy as np

    from inspector.core.recorder.audit import judge
    from inspector.core.recorder.capture import MicroRecord
    from inspector.core.recorder.rank_stats import rank_stats

    rec = MicroRecord(1, 0, 0, other_inputs={})
    rec.arrays = {"input_ids": np.array([[5, 6, 1, 7, 8, 1]]), "labels": np.array([[-100, 6, 1, -100, 8, 1]]),
                  "position_ids": np.array([[0, 1, 2, 0, 1, 2]])}
    stats = rank_stats([rec], rank=0, stop_ids=[1], shifts=True, implementation="sdpa", config_use_cache=False,
                       epoch=([[0]], "given"))
    band = {"share_band": share_band} if share_band else {}
    return judge([stats], step=1, backward_divides_by=1, stop_tokens={1: "</s>"}, **band)


def test_the_recorder_audit_makes_only_its_listed_checks():
    from inspector.core.recorder.audit import CHECKS, OK, Check

    assert [c.name for c in _audit().checks] == list(CHECKS)
    assert [c.name for c in _audit((0.5, 0.6)).checks] == list(CHECKS), "a check's name does not depend on settings"
    with pytest.raises(ValueError, match="not in CHECKS"):
        Check("a check no list names", OK, "")


def test_every_check_of_the_recorder_audit_is_on_the_recording_page():
    from inspector.core.recorder.audit import CHECKS

    page = _page("recording.md")
    missing = [name for name in CHECKS if f"`{name}`" not in page]
    assert not missing, f"docs/recording.md does not name these audit checks, in backticks: {missing}"


# --- no issue tracker --------------------------------------------------------------------------------

# A pointer to any tracker, this project's or another's ("issue 16", "#12", "PR #6363", a link to
# /issues or /pull/): the pages say what is true in words, so nothing depends on a tracker.
TRACKER = re.compile(r"\bissues?\s+#?\d+|\bPRs?\s+#?\d+|(?<![&\w])#\d+\b|/issues\b|/pull/\d+", re.I)


def _tracker_references(text: str) -> list[str]:
    return [m.group(0) for m in TRACKER.finditer(text)]


def test_the_tracker_pattern_finds_every_kind_of_pointer():
    found = _tracker_references("issue 16, Issue 32 lists, see #12, TRL #6361 and PR #6363, github.com/o/r/issues")
    assert found == ["issue 16", "Issue 32", "#12", "#6361", "PR #6363", "/issues"]
    assert _tracker_references("&#124; a heading # 1, lesson 12, step #") == []


def test_no_page_points_to_an_issue_tracker():
    pages = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
    found = {str(p.relative_to(ROOT)): refs for p in pages if (refs := _tracker_references(p.read_text(encoding="utf-8")))}
    if generated := _tracker_references(_hook().reference()):
        found["docs/reference/commands.md (generated)"] = generated
    assert not found, f"pages that point to an issue tracker (write what is true instead): {found}"


# --- the build ---------------------------------------------------------------------------------------


def test_the_config_is_strict_and_asks_for_nothing_from_the_network():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True and config["docs_dir"] == "docs" and config["site_dir"] == "site"
    levels = [v for group in config["validation"].values() for v in group.values()]
    assert len(levels) == 7 and set(levels) == {"warn"}, "every link, anchor and nav check warns, and strict fails on it"
    assert config["theme"]["font"] is False, "no Google Fonts"
    assert "docs/hooks/reference.py" in config["hooks"]


def test_the_test_extra_installs_the_docs_extra():
    """`python3 run.py test` (CI's command) installs the test extra: the build test above needs mkdocs."""
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as tests/test_constraints.py
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    test = [Requirement(r) for r in project["optional-dependencies"]["test"]]
    assert any(r.name == project["name"] and "docs" in r.extras for r in test)
    assert {Requirement(r).name for r in project["optional-dependencies"]["docs"]} >= {"mkdocs", "mkdocs-material"}


def test_run_py_docs_builds_strictly_then_serves_or_stops(monkeypatch):
    spec = importlib.util.spec_from_file_location("run_py_docs_under_test", ROOT / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    calls, rc = [], {"build": 0}
    monkeypatch.setattr(run, "setup", lambda extras: calls.append(("setup", extras)))
    monkeypatch.setattr(run.subprocess, "call", lambda argv, **_: calls.append(argv[3:]) or rc.get(argv[3], 0))
    assert run.main(["docs", "build"]) == 0
    assert calls == [("setup", "docs"), ["build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]]
    calls.clear()
    run.main(["docs"])
    assert [c[0] for c in calls] == ["setup", "build", "serve"] and calls[2][-2:] == ["--dev-addr", "127.0.0.1:8000"]
    calls.clear()
    rc["build"] = 1  # a warning in strict mode: nothing is served
    assert run.main(["docs"]) == 1 and [c[0] for c in calls] == ["setup", "build"]


# An asset the browser would fetch from elsewhere: a script, style, image, frame or font of another host.
REMOTE = re.compile(r"<(?:script|link|img|iframe|source|video|audio)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//", re.I)
REMOTE_CSS = re.compile(r"@import\s+(?:url\()?[\"']?(?:https?:)?//|url\([\"']?(?:https?:)?//", re.I)


def test_the_site_builds_strictly_offline_with_every_page(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, (
        "the docs site does not build strictly (mkdocs: install the docs extra; python3 run.py test does):\n"
        + done.stdout[-4000:] + done.stderr[-4000:]
    )
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from pages(value) if isinstance(value, list) else [value]

    built = {p: site / p.replace(".md", ".html") for p in pages(config["nav"])}
    assert not [p for p, html in built.items() if not html.is_file()]
    reference = built["reference/commands.md"].read_text(encoding="utf-8")
    from inspector.cli import build_parser

    assert not [n for n in build_parser().commands if f'id="{n}"' not in reference], "the hook did not run"
    remote = [str(p.relative_to(site)) for p in site.rglob("*.html") if REMOTE.search(p.read_text(encoding="utf-8"))]
    remote += [str(p.relative_to(site)) for p in site.rglob("*.css") if REMOTE_CSS.search(p.read_text(encoding="utf-8"))]
    assert not remote, f"pages that would fetch an asset from the network: {remote}"


def test_the_readme_is_one_screen_with_the_picture_the_commands_and_links_that_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 120
    for command in ("python3 run.py ", "python3 run.py test", "python3 run.py docs"):
        assert command in text
    links = re.findall(r"\]\(((?!https?:)[^)#\s]+)", text)
    assert "docs/images/labels.svg" in links
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"README links to files that are not in the repository: {missing}"
    from inspector.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.choices and isinstance(a.choices, dict)).choices
    assert [c for c in commands if f"| `{c}` |" not in text] == []  # every command, one line each
