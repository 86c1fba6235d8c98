"""The embedded Gemma 3 270M, for real: its labels for the article's example, and the
article's result (masked training answers the held-out "good" in Spanish).

The first run converts the GGUF once (about a minute); later runs load the cache.
"""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.data.examples import article_examples, format_examples
from inspector.core.labels.strategies import label_example, label_examples
from inspector.core.training.burst import BurstSettings
from inspector.core.training.session import TrainingSession

pytestmark = pytest.mark.integration

# Gemma's tokenizer puts its own <bos> (id 2) in front; the article's format adds another
# after "### Assistant:" and <eos> (id 1) at the end.
ARTICLE_IDS = [2, 108, 10354, 11096, 236787, 2088, 776, 611, 1879, 623, 21029, 236775, 528, 14361, 236881,
               108, 10354, 22083, 236787, 2, 83588, 1]


@pytest.fixture(scope="module")
def gemma():
    from inspector.core.models import load_model

    return load_model(device="cpu")


def test_embedded_model_loads_from_the_package(gemma):
    assert gemma.source == "embedded"
    assert gemma.tokenizer.bos_token == "<bos>" and gemma.tokenizer.eos_token == "<eos>"
    assert next(gemma.model.parameters()).dtype.is_floating_point


def test_article_example_labels_on_gemma(gemma):
    fe = add_special_tokens(ARTICLE_EXAMPLES[0], gemma.tokenizer.bos_token, gemma.tokenizer.eos_token)
    copy = label_example("copy", fe, gemma.tokenizer)
    mask = label_example("mask", fe, gemma.tokenizer)
    assert copy.input_ids == ARTICLE_IDS
    assert copy.labels == ARTICLE_IDS
    assert mask.labels == [-100] * 20 + [83588, 1]
    assert [r.text for r in mask.rows if not r.masked] == ["␣perro", "<eos>"]
    (trl,) = label_examples("trl", [fe], gemma.tokenizer, gemma.model)
    assert trl.labels == mask.labels


def test_masked_training_answers_good_in_spanish(gemma):
    import copy

    model = copy.deepcopy(gemma.model)
    fes = format_examples(article_examples(), gemma.tokenizer)
    with TrainingSession(model, gemma.tokenizer, fes, "mask", BurstSettings()) as session:
        result = session.run()
    answers = [e.holdout for e in result.epochs]
    assert answers[-1].strip().lower().startswith("buen"), answers


def test_the_default_path_makes_no_network_call(gemma, tmp_path):
    """The embedded model, the shipped lessons and local data, with sockets blocked."""
    import json
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
    from test_offline import _run

    from inspector.core.models import cache_dir

    r = _run("-m", "inspector", "labels", "--json", cwd=tmp_path, cache=cache_dir())
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["examples"][0]["trained_tokens"] == 2
    assert r.network == []
    r = _run("-m", "inspector", "lesson", "1", "--plain", cwd=tmp_path, cache=cache_dir())
    assert r.returncode == 0, r.stderr[-2000:]


def test_qwen_s_template_on_gemma_is_named_as_another_family_s(gemma, tmp_path):
    """The report that advised a _training variant for TRL's qwen2_5_training: Qwen's markers are
    six pieces each in Gemma's vocabulary, and that is what it says now."""
    import json

    from inspector.core.data.conversations import read_chat_template
    from inspector.core.reports.data_report import inspect_data

    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "dog?"}, {"role": "assistant", "content": "perro"}]}))
    report = inspect_data(path, gemma, chat_template=read_chat_template("qwen2_5"))
    (problem,) = report.problems
    assert problem.kind == "template-not-for-this-model"
    assert "<|im_end|> → '<', '|', 'im', '_', 'end', '|>'" in problem.detail
    assert "<|im_start|> → '<', '|', 'im', '_', 'start', '|>'" in problem.detail
    gemma3 = inspect_data(path, gemma, chat_template=read_chat_template("gemma3"))
    assert "template-not-for-this-model" not in gemma3.counts
