"""No network unless asked: the CLI commands and the app's start make no DNS lookup, connect or
datagram (an audit hook writes down and refuses every one, `offline/sitecustomize.py`), TRL's
trainers' usage ping included: the package sets HF_HUB_OFFLINE and HF_HUB_DISABLE_TELEMETRY."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCK = Path(__file__).parent / "offline"
# Variables that would hide a ping from the test: the tool must not rely on a user setting them.
# TRL skips its ping when CI is set, so a CI run would pass without the tool's own settings.
UNSET = (
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "DISABLE_TELEMETRY",
    "DO_NOT_TRACK", "CI",
)


def _run(*argv, cwd, cache, env_extra=None):
    """Run in a subprocess under the audit hook; fail on any network call it wrote down."""
    log = Path(cwd) / "network.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BLOCK), env.get("PYTHONPATH", "")])
    env["CAUSALLM_INSPECT_CACHE"] = str(cache)
    env["CAUSALLM_INSPECT_NET_LOG"] = str(log)
    for var in UNSET:
        env.pop(var, None)
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    r.network = log.read_text().splitlines() if log.exists() else []
    return r


def test_the_block_works(tmp_path):
    r = _run("-c", "import urllib.request; urllib.request.urlopen('http://example.org', timeout=2)", cwd=tmp_path, cache=tmp_path)
    assert r.returncode != 0 and "network blocked by the test" in r.stderr
    assert r.network and r.network[0].startswith("socket.getaddrinfo ('example.org', 80)")


def test_the_audit_catches_a_ping_from_a_thread_that_swallows_the_refusal(tmp_path):
    """What TRL's trainers do without the tool's settings: Hugging Face's telemetry thread, whose
    connection errors are swallowed, and whose daemon thread an exit would cut short."""
    code = (
        "from huggingface_hub.utils import send_telemetry\n"
        "send_telemetry('trl/SFTTrainer', library_name='trl', library_version='0')\n"
    )
    r = _run("-c", code, cwd=tmp_path, cache=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert any("socket.getaddrinfo" in line and "huggingface.co" in line for line in r.network), r.network


def test_the_package_sets_offline_and_no_telemetry_before_any_hugging_face_import(tmp_path):
    code = (
        "import os, sys\n"
        "import inspector\n"
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['HF_HUB_DISABLE_TELEMETRY'])\n"
        "print([m for m in ('huggingface_hub', 'transformers', 'trl', 'datasets') if m in sys.modules])\n"
    )
    r = _run("-c", code, cwd=tmp_path, cache=tmp_path)
    assert r.stdout.splitlines() == ["1 1", "[]"], r.stderr[-2000:]
    own = {"HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "0"}
    mine = _run("-c", code, cwd=tmp_path, cache=tmp_path, env_extra=own)
    assert mine.stdout.splitlines()[0] == "0 0"  # a user's own value stays


def _data(folder: Path) -> Path:
    rows = [{"prompt": 'How do you say "dog" in Spanish?', "completion": "perro"},
            {"prompt": 'How do you say "cat" in Spanish?', "completion": "gato"}]
    path = folder / "two.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["labels", "--strategy", "trl"],
        ["train", "--strategy", "trl", "--epochs", "1", "--lr", "0.01", "--data", "{data}"],
        ["train", "--strategy", "mask", "--epochs", "1", "--lr", "0.01"],
        ["inspect-data", "{data}", "--strategy", "copy,mask,trl", "--num-proc", "1"],
        ["predict"],
        ["models"],
    ],
    ids=lambda a: "-".join(x for x in a[:3] if not x.startswith("{")),
)
def test_commands_make_no_network_call(tiny_path, tmp_path, argv):
    data = _data(tmp_path)
    argv = [str(data) if a == "{data}" else a for a in argv]
    extra = [] if argv[0] == "models" else ["--model", str(tiny_path)]
    r = _run("-m", "inspector", *argv, *extra, cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.network == [] and "network blocked" not in r.stderr, r.network


def test_an_uncached_hub_id_fails_fast_with_a_message(tmp_path):
    r = _run("-m", "inspector", "labels", "--model", "someone/not-downloaded", cwd=tmp_path, cache=tmp_path / "c")
    assert r.returncode == 2
    assert "not in the Hugging Face cache" in r.stderr and "Traceback" not in r.stderr
    assert r.network == []


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
    assert r.network == []
