"""No network unless asked: the CLI commands and the app's start run with sockets blocked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCK = Path(__file__).parent / "offline"


def _run(*argv, cwd, cache):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BLOCK), env.get("PYTHONPATH", "")])
    env["CAUSALLM_INSPECT_CACHE"] = str(cache)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.pop(var, None)  # the tool must not rely on these being set
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_the_block_works(tmp_path):
    r = _run("-c", "import urllib.request; urllib.request.urlopen('http://example.org', timeout=2)", cwd=tmp_path, cache=tmp_path)
    assert r.returncode != 0 and "network blocked by the test" in r.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["labels", "--strategy", "trl"],
        ["train", "--strategy", "mask", "--epochs", "1", "--lr", "0.01"],
        ["predict"],
        ["models"],
    ],
    ids=lambda a: a[0],
)
def test_commands_make_no_network_call(tiny_path, tmp_path, argv):
    extra = [] if argv[0] == "models" else ["--model", str(tiny_path)]
    r = _run("-m", "inspector", *argv, *extra, cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "network blocked" not in r.stderr


def test_an_uncached_hub_id_fails_fast_with_a_message(tmp_path):
    r = _run("-m", "inspector", "labels", "--model", "someone/not-downloaded", cwd=tmp_path, cache=tmp_path / "c")
    assert r.returncode == 2
    assert "not in the Hugging Face cache" in r.stderr and "Traceback" not in r.stderr


def test_the_app_starts_and_loads_offline(tiny_path, tmp_path):
    code = (
        "import asyncio\n"
        "from inspector.app import InspectorApp\n"
        "async def main():\n"
        f"    app = InspectorApp(model={str(tiny_path)!r}, device='cpu')\n"
        "    async with app.run_test(size=(120, 40)) as pilot:\n"
        "        for _ in range(1500):\n"
        "            if app.loaded is not None or app.errors: break\n"
        "            await pilot.pause(0.02)\n"
        "        assert app.loaded is not None and not app.errors, app.errors\n"
        "        print('loaded offline')\n"
        "asyncio.run(main())\n"
    )
    r = _run("-c", code, cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "loaded offline" in r.stdout
