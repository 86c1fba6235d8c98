"""Shared fixtures: tiny models saved to disk once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny_model  # noqa: E402

THREADS = "CAUSALLM_INSPECT_TEST_THREADS"


def pytest_sessionstart(session) -> None:
    """`CAUSALLM_INSPECT_TEST_THREADS=1`: torch's sums in one thread, in this process and in the
    commands the tests start, to check that no test depends on one machine's summation order.
    Torch is imported only then: without the variable the session starts as it always did."""
    threads = os.environ.get(THREADS)
    if not threads:
        return
    import torch

    torch.set_num_threads(int(threads))
    os.environ.setdefault("OMP_NUM_THREADS", threads)  # the subprocesses' torch starts with as many


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory) -> Path:
    """A tiny Llama-shaped model whose tokenizer adds nothing (like Bloom in the article)."""
    return tiny_model.build(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_bos_path(tmp_path_factory) -> Path:
    """The same, but its tokenizer prepends its own bos (like Gemma and Llama)."""
    return tiny_model.build(tmp_path_factory.mktemp("tinybos"), prepend_bos=True)


@pytest.fixture(scope="session")
def tiny_gpt2_path(tmp_path_factory) -> Path:
    """bos == eos == <|endoftext|> and no pad token, as in GPT-2."""
    return tiny_model.build(tmp_path_factory.mktemp("tinygpt2"), gpt2_style=True)


@pytest.fixture(scope="session")
def tiny(tiny_path):
    from inspector.core.models import load_model

    return load_model(str(tiny_path), device="cpu")


@pytest.fixture(scope="session")
def tiny_bos(tiny_bos_path):
    from inspector.core.models import load_model

    return load_model(str(tiny_bos_path), device="cpu")


@pytest.fixture
def fresh_tiny(tiny_path):
    """A model of its own, for tests that train it."""
    from inspector.core.models import load_model

    return load_model(str(tiny_path), device="cpu")


@pytest.fixture(autouse=True)
def _isolated_cache(request, tmp_path, monkeypatch):
    """Unit tests get an empty cache; the integration tests use the real one (the conversion is slow)."""
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setenv("CAUSALLM_INSPECT_CACHE", str(tmp_path / "cache"))

from sample_rows import WORDS12  # noqa: E402 (tests/ is on the path)


@pytest.fixture
def rows12(tmp_path):
    """Twelve examples in custom turn markers (more than the 8 training rows): the front ends' agreement."""
    import json

    f = tmp_path / "rows.jsonl"
    f.write_text("\n".join(
        json.dumps({"text": f'\n\n### User: How do you say "{w}" in Spanish?\n\n### Bot: {w[::-1]}'}) for w in WORDS12
    ))
    return f
