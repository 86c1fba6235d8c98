"""Killing the GGUF conversion at any moment leaves the old state or the new one, never a
half cache that is later used; two copies converting at once share the cache safely."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

CONVERT = (
    "from inspector.core.models import ensure_embedded, cache_is_complete\n"
    "folder, cached = ensure_embedded()\n"
    "assert cache_is_complete(folder)\n"
    "print('DONE', cached, flush=True)\n"
)


def _start(cache):
    env = dict(os.environ, CAUSALLM_INSPECT_CACHE=str(cache))
    return subprocess.Popen([sys.executable, "-c", CONVERT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _state(cache):
    from inspector.core.models import cache_is_complete, embedded_cache_path

    before = os.environ.get("CAUSALLM_INSPECT_CACHE")
    os.environ["CAUSALLM_INSPECT_CACHE"] = str(cache)
    try:
        target = embedded_cache_path()
        return target.exists(), cache_is_complete(target)
    finally:
        if before is None:
            del os.environ["CAUSALLM_INSPECT_CACHE"]
        else:
            os.environ["CAUSALLM_INSPECT_CACHE"] = before


def test_killed_conversions_never_leave_a_usable_half_cache(tmp_path):
    cache = tmp_path / "cache"
    rng = random.Random(7)
    for delay in sorted(rng.uniform(1, 40) for _ in range(3)):  # a bounded number of kills
        proc = _start(cache)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        exists, complete = _state(cache)
        # Either nothing was renamed into place yet, or the finished cache is there, whole.
        assert exists == complete
    proc = _start(cache)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert _state(cache) == (True, True)
    from inspector.core.models import load_model

    os.environ["CAUSALLM_INSPECT_CACHE"] = str(cache)
    try:
        lm = load_model(device="cpu")
        assert lm.from_cache and lm.tokenizer.bos_token == "<bos>"
        # A damaged cache (a truncated weights file) is detected and converted again.
        from inspector.core.models import embedded_cache_path, ensure_embedded

        weights = embedded_cache_path() / "model.safetensors"
        with weights.open("r+b") as f:
            f.truncate(weights.stat().st_size // 2)
        folder, cached = ensure_embedded()
        assert not cached and _state(cache) == (True, True)
        assert load_model(device="cpu").from_cache
    finally:
        os.environ.pop("CAUSALLM_INSPECT_CACHE", None)


def test_two_copies_converting_at_once_share_the_cache(tmp_path):
    cache = tmp_path / "cache"
    a, b = _start(cache), _start(cache)
    outs = [p.communicate(timeout=900) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, [e[-1000:] for _, e in outs]
    assert all("DONE" in o for o, _ in outs)
    assert _state(cache) == (True, True)
    leftovers = [p.name for p in (cache / "models").iterdir() if p.name.startswith(".")]
    assert leftovers == []
