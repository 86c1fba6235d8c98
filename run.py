#!/usr/bin/env python3
"""Set up on first use, then run causallm-inspect or its tests. Needs only Python 3.10+ and pip.

    python3 run.py [ARGS...]       # the app (or any causallm-inspect command: run.py labels --json)
    python3 run.py test [ARGS...]  # the test suite (pytest; ARGS go to pytest)
    python3 run.py docs [ARGS...]  # build the docs site strictly (mkdocs.yml), then serve it on 127.0.0.1:8000
    python3 run.py docs build      # only build it, into site/: any warning (a broken link...) fails it

The first run makes `.venv/` beside this file and installs the project into it, within the
versions of constraints.txt (those the test suite last passed with); later runs reinstall only
when pyproject.toml or constraints.txt changed. CAUSALLM_INSPECT_CONSTRAINTS=none installs the
newest releases within pyproject.toml's ranges instead (scripts/constraints.py --refresh uses it).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("CAUSALLM_INSPECT_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
# torch is installed first and on its own: 2.13.0 is the release this project is tested
# with (the CPU build where the machine provides it); any torch >= 2.4 already in the
# environment is kept.
TORCH = "torch==2.13.0"
# The versions CI tested: pip installs within them (a constraint, not a requirement: a package
# nothing asks for is not installed).
CONSTRAINTS = os.environ.get("CAUSALLM_INSPECT_CONSTRAINTS", str(ROOT / "constraints.txt"))


def _constraints() -> list[str]:
    if CONSTRAINTS.lower() in ("", "none"):
        return []
    return ["-c", CONSTRAINTS]


def _say(msg: str) -> None:
    print(f"[run.py] {msg}", file=sys.stderr, flush=True)


def _pip(*args: str) -> None:
    subprocess.check_call([str(PY), "-m", "pip", "--disable-pip-version-check", *args])


def setup(extras: str) -> None:
    stamp = VENV / f".installed-{extras or 'app'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    if _constraints():
        digest.update(Path(CONSTRAINTS).read_bytes())
    want = digest.hexdigest()
    if stamp.exists() and stamp.read_text() == want and PY.exists():
        return
    if not PY.exists():
        _say(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    has_torch = subprocess.run([str(PY), "-c", "import torch"], capture_output=True).returncode == 0
    if not has_torch:
        _say(f"installing {TORCH} (once)")
        _pip("install", "-q", TORCH, *_constraints())
    _say("installing causallm-inspect and its dependencies (once)")
    _pip("install", "-q", *_constraints(), "-e", f"{ROOT}[{extras}]" if extras else str(ROOT))
    stamp.write_text(want)


def docs(args: list[str]) -> int:
    """Build the site strictly; then serve it, unless `build` (or --build-only) was asked. ARGS go to mkdocs."""
    build_only = args[:1] in (["build"], ["--build-only"])
    rest = args[1:] if build_only else args
    setup("docs")
    mkdocs = [str(PY), "-m", "mkdocs"]
    config = ["--config-file", str(ROOT / "mkdocs.yml")]
    rc = subprocess.call([*mkdocs, "build", "--strict", *config, *(rest if build_only else [])], cwd=ROOT)
    if rc:
        _say("the site did not build: mkdocs.yml is strict, so each warning above is an error")
        return rc
    if build_only:
        _say(f"built {ROOT / 'site'}: open site/index.html, or serve it with `python3 run.py docs`")
        return 0
    if not any(a in ("-a", "--dev-addr") or a.startswith("--dev-addr=") for a in rest):
        rest = [*rest, "--dev-addr", "127.0.0.1:8000"]
        _say("serving the docs on http://127.0.0.1:8000/ (Ctrl+C stops; a saved page is rebuilt)")
    return subprocess.call([*mkdocs, "serve", "--strict", *config, *rest], cwd=ROOT)


def main(argv: list[str]) -> int:
    if argv[:1] == ["test"]:
        setup("test")
        return subprocess.call([str(PY), "-m", "pytest", *argv[1:]], cwd=ROOT)
    if argv[:1] == ["docs"]:
        return docs(argv[1:])
    setup("")
    return subprocess.call([str(BIN / "causallm-inspect"), *argv])


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        _say(f"setup failed ({exc}); see pip's message above")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
