#!/usr/bin/env python3
"""Keep constraints.txt: the library versions the test suite last passed with.

run.py and CI install within constraints.txt, so a fresh machine gets what CI tested rather than
whatever was released this week (the code patches library internals: TRL's collator, accelerate's
sharding). Moving to newer releases is done on purpose, with the suite run:

    python3 scripts/constraints.py --refresh                 # newest releases, whole suite, then write
    python3 scripts/constraints.py --refresh -m "not integration"   # pytest arguments pass through
    python3 scripts/constraints.py --from-venv .venv         # write what a venv that passed holds

--refresh makes a fresh venv in a temporary folder, installs the project there within
pyproject.toml's ranges only (CAUSALLM_INSPECT_CONSTRAINTS=none), runs `run.py test` in it, and
rewrites constraints.txt only if the suite passed; it prints which versions moved.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
HEADER = """\
# The versions the test suite last passed with (python3 run.py test, Python {python}, CPU), on {date}.
# run.py and CI install within them, so a fresh machine gets what CI tested, not whatever was released
# this week. They apply on Python {python} only (the marker); elsewhere pyproject.toml's ranges decide.
# `pip install causallm-inspect` ignores this file: its ranges are in pyproject.toml.
# Move to newer releases on purpose: `python3 scripts/constraints.py --refresh` installs the newest
# releases within pyproject.toml's ranges in a fresh venv, runs the suite there, and rewrites this file
# only if it passes.
"""
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)==(?P<version>[^\s;+]+)")


def _python_of(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pins(text: str) -> dict[str, str]:
    """name (normalised) -> version, of a freeze or of constraints.txt."""
    found = {}
    for line in text.splitlines():
        m = _PIN.match(line.strip())
        if m:
            found[re.sub(r"[-_.]+", "-", m["name"]).lower()] = m["version"]
    return found


def freeze(venv: Path) -> tuple[str, list[str]]:
    """The venv's Python version (major.minor) and its packages as `name==version`, the project left out."""
    py = str(_python_of(venv))
    version = subprocess.check_output([py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], text=True).strip()
    out = subprocess.check_output([py, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
                                  text=True)
    lines = []
    for line in out.splitlines():
        m = _PIN.match(line.strip())
        if m and m["name"].lower() != "causallm-inspect":
            # a local build label (torch's +cpu) is the machine's, not the release's
            lines.append(f"{m['name']}=={m['version']}")
    return version, sorted(lines, key=str.lower)


def write(venv: Path) -> None:
    old = pins(CONSTRAINTS.read_text(encoding="utf-8")) if CONSTRAINTS.exists() else {}
    python, lines = freeze(venv)
    marker = f' ; python_version == "{python}"'
    text = HEADER.format(python=python, date=datetime.date.today().isoformat())
    text += "".join(line + marker + "\n" for line in lines)
    CONSTRAINTS.write_text(text, encoding="utf-8")
    new = pins(text)
    moved = [f"  {n}: {old.get(n, '-')} -> {new.get(n, '-')}" for n in sorted(set(old) | set(new))
             if old.get(n) != new.get(n)]
    print(f"wrote {CONSTRAINTS.name} ({len(lines)} packages, Python {python})")
    print("\n".join(moved) if moved else "  no version moved")


def refresh(pytest_args: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-refresh-") as tmp:
        venv = Path(tmp) / "venv"
        env = dict(os.environ, CAUSALLM_INSPECT_VENV=str(venv), CAUSALLM_INSPECT_CONSTRAINTS="none")
        print(f"installing the newest releases within pyproject.toml's ranges into {venv}, then the suite",
              file=sys.stderr)
        rc = subprocess.call([sys.executable, str(ROOT / "run.py"), "test", *pytest_args], cwd=ROOT, env=env)
        if rc != 0:
            print(f"the suite failed (exit {rc}) on the newest releases: {CONSTRAINTS.name} is unchanged",
                  file=sys.stderr)
            return rc
        write(venv)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--refresh", action="store_true", help="newest releases in a fresh venv, the suite, then write")
    what.add_argument("--from-venv", metavar="DIR", type=Path, help="write the versions of a venv the suite passed in")
    args, pytest_args = parser.parse_known_args(argv)
    if args.from_venv:
        if pytest_args:
            parser.error(f"unrecognized arguments: {' '.join(pytest_args)} (pytest arguments go with --refresh)")
        if not _python_of(args.from_venv).exists():
            parser.error(f"{args.from_venv} is not a virtual environment (no {_python_of(args.from_venv)})")
        write(args.from_venv)
        return 0
    print(f"platform: {platform.platform()}", file=sys.stderr)
    return refresh(pytest_args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
