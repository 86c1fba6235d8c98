"""Exact labels of each strategy on the tiny tokenizers, single- and multi-turn."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.data.tokens import IGNORE_INDEX, visible
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import differing_positions, label_example, label_examples

M = IGNORE_INDEX
MULTI = "\n\n### Human: hi\n\n### Assistant: hola\n\n### Human: dog\n\n### Assistant: perro"


def fmt(lm, text=ARTICLE_EXAMPLES[0]):
    return add_special_tokens(text, lm.tokenizer.bos_token, lm.tokenizer.eos_token)


def ids_of(lm, *pieces):
    """Token ids of pieces tokenized one by one (each piece is a whole token in these tests)."""
    out = []
    for p in pieces:
        out.extend(lm.tokenizer(p, add_special_tokens=False)["input_ids"])
    return out


def test_copy_labels_equal_input_ids(tiny):
    lab = label_example("copy", fmt(tiny), tiny.tokenizer)
    assert lab.labels == lab.input_ids
    assert not any(r.masked for r in lab.rows)


def test_the_labels_table_never_calls_position_0_trained(tiny):
    from inspector.core.reports.tables import labels_table

    lab = label_example("copy", fmt(tiny), tiny.tokenizer)
    lines = labels_table(lab).splitlines()
    assert f"{len(lab.rows) - 1} of {len(lab.rows)} tokens trained" in lines[0]
    assert lines[2].strip().startswith("0 ") and lines[2].endswith("never a target (position 0)")
    assert all(line.endswith("trained") for line in lines[3:])
    assert lab.trained_tokens == len(lab.rows) - 1  # position 0 is never predicted


def test_mask_labels_match_the_articles_create_special_mask(tiny):
    lab = label_example("mask", fmt(tiny), tiny.tokenizer)
    bos, eos = tiny.tokenizer.bos_token_id, tiny.tokenizer.eos_token_id
    ids = lab.input_ids
    # The article's state machine, written out: masked through the bos, then trained through the eos.
    b = ids.index(bos)
    expected = [M] * (b + 1) + ids[b + 1 :]
    assert lab.labels == expected
    assert ids[-1] == eos and lab.labels[-1] == eos
    assert [r.text for r in lab.rows if not r.masked] == ["␣perro", "</s>"]
    assert lab.trained_tokens == 2


def test_mask_ignores_the_bos_a_tokenizer_prepends(tiny_bos):
    lab = label_example("mask", fmt(tiny_bos), tiny_bos.tokenizer)
    assert lab.rows[0].text == "<s>" and lab.rows[0].masked  # the tokenizer's own bos
    assert [r.text for r in lab.rows if not r.masked] == ["␣perro", "</s>"]


def test_mask_multi_turn_trains_every_answer_and_its_eos(tiny):
    lab = label_example("mask", fmt(tiny, MULTI), tiny.tokenizer)
    assert [r.text for r in lab.rows if not r.masked] == ["␣hola", "</s>", "␣perro", "</s>"]


def test_trl_labels_come_from_sfttrainer_and_equal_mask_on_single_turn(tiny):
    fes = [fmt(tiny, t) for t in ARTICLE_EXAMPLES]
    trl = label_examples("trl", fes, tiny.tokenizer, tiny.model)
    mask = label_examples("mask", fes, tiny.tokenizer)
    for t, m in zip(trl, mask):
        assert t.input_ids == m.input_ids
        assert t.labels == m.labels
        assert differing_positions(t, m) == []


def test_trl_completion_only_trains_only_the_last_answer_of_a_multi_turn_text(tiny):
    fe = fmt(tiny, MULTI)
    (trl,) = label_examples("trl", [fe], tiny.tokenizer, tiny.model)
    mask = label_example("mask", fe, tiny.tokenizer)
    assert [r.text for r in trl.rows if not r.masked] == ["␣perro", "</s>"]
    diff = differing_positions(trl, mask)
    assert [mask.rows[i].text for i in diff] == ["␣hola", "</s>"]


def test_trl_labels_do_not_change_the_model(fresh_tiny):
    import copy

    from inspector.core.training.burst import BurstSettings
    from inspector.core.training.session import TrainingSession

    model = fresh_tiny.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.config.use_cache = True  # a fresh model's default
    label_examples("trl", [fmt(fresh_tiny)], fresh_tiny.tokenizer, model)
    assert all((before[k] == v).all() for k, v in model.state_dict().items())
    assert "forward" not in vars(model)  # TRL's fused-head patch is undone
    assert model.config.use_cache is True  # Trainer.__init__ turned it off: put back
    # A copy made afterwards trains itself, not the original (the patch would bind it to the original).
    twin = copy.deepcopy(model)
    with TrainingSession(twin, fresh_tiny.tokenizer, [fmt(fresh_tiny)], "mask", BurstSettings(epochs=1, learning_rate=1e-2)) as s:
        s.run()
    assert any((before[k] != v).any() for k, v in twin.state_dict().items())
    assert all((before[k] == v).all() for k, v in model.state_dict().items())


def test_rows_show_whitespace_and_special_tokens(tiny):
    lab = label_example("copy", fmt(tiny), tiny.tokenizer)
    texts = [r.text for r in lab.rows]
    assert texts[:2] == ["↵", "↵"]
    assert "<s>" in texts and texts[-1] == "</s>"
    assert all(r.special == (r.text in ("<s>", "</s>")) for r in lab.rows)
    assert [r.position for r in lab.rows] == list(range(len(lab.rows)))
    d = lab.to_dict()
    assert set(d["tokens"][0]) >= {"position", "id", "text", "label", "masked"}
    assert d["trained_tokens"] == lab.trained_tokens


def test_visible():
    assert visible(" a\n\tb") == "␣a↵⇥b"
    assert visible("") == "∅"


def test_example_longer_than_the_context_is_a_clear_error(tiny):
    long = "\n\n### Human: " + "dog " * 200 + "\n\n### Assistant: perro"
    with pytest.raises(InspectorError, match=r"example 1 is \d+ tokens long, longer than the model's context of 128"):
        label_examples("mask", [fmt(tiny, long)], tiny.tokenizer, max_length=tiny.max_length)


def test_unknown_strategy(tiny):
    with pytest.raises(InspectorError, match="unknown strategy"):
        label_examples("nope", [fmt(tiny)], tiny.tokenizer)


def test_gpt2_style_tokenizer_with_bos_equal_to_eos_and_no_pad(tiny_gpt2_path):
    from inspector.core.models import load_model
    from inspector.core.training.burst import BurstSettings
    from inspector.core.training.session import TrainingSession

    lm = load_model(str(tiny_gpt2_path))
    assert lm.tokenizer.pad_token == lm.tokenizer.eos_token == lm.tokenizer.bos_token == "<|endoftext|>"
    fe = fmt(lm, MULTI)
    mask = label_example("mask", fe, lm.tokenizer)
    assert [r.text for r in mask.rows if not r.masked] == ["␣hola", "<|endoftext|>", "␣perro", "<|endoftext|>"]
    (trl,) = label_examples("trl", [fe], lm.tokenizer, lm.model)
    assert [r.text for r in trl.rows if not r.masked] == ["␣perro", "<|endoftext|>"]
    with TrainingSession(lm.model, lm.tokenizer, [fe], "trl", BurstSettings(epochs=2, learning_rate=1e-2)) as s:
        result = s.run()
    assert result.trained_tokens == 4 and len(result.epochs) == 2
