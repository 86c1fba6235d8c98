"""Lessons 11-13's computations on the tiny model: packing's boundaries and attention, truncation's
counts, and the weights of one optimizer step (the Trainer's gradient is the full batch's)."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import (
    ARTICLE_MARKERS,
    ARTICLE_PAIRS,
    HOLDOUT_ANSWER,
    HOLDOUT_WORD,
    add_special_tokens,
    article_text,
)
from inspector.core.lessons.packing import packing_text, packing_view
from inspector.core.lessons.truncation import (
    default_cut,
    sft_default_max_length,
    truncation_examples,
    truncation_text,
    truncation_view,
)
from inspector.core.lessons.weights import same_within_float_error, step_examples, weights_text, weights_view


def _fe(tok, text):
    return add_special_tokens(text, tok.bos_token, tok.eos_token, ARTICLE_MARKERS)


@pytest.fixture(scope="module")
def packed(tiny):
    tok = tiny.tokenizer
    examples = [_fe(tok, article_text(w, a)) for w, a in ARTICLE_PAIRS]
    held_out = _fe(tok, article_text(HOLDOUT_WORD, HOLDOUT_ANSWER))
    return packing_view(tiny.model, tok, examples, held_out, batch_size=2)


def test_bfd_keeps_the_held_out_example_apart_as_the_trainer_runs_it(packed):
    bfd = packed.strategies["bfd"]
    assert bfd.found and not bfd.first_in_row  # packed after the five others
    assert not bfd.sends_attention_mask and bfd.restarts_positions
    assert bfd.boundary_labels == [-100] * 5  # no example trained to predict the next one's first token
    assert bfd.max_diff < 1e-6 and bfd.depends_on == []
    # A plain call with the model's default cache attends across the pack.
    assert packed.plain_use_cache is True
    assert bfd.max_diff_plain_call > 1e-4 and bfd.depends_on_plain_call == [1, 2, 3, 4, 5]
    assert bfd.loss_trainer["eval"] != bfd.loss_plain_call["eval"]
    assert bfd.loss_trainer["train"] != bfd.loss_plain_call["train"]


def test_wrapped_sends_an_attention_mask_and_sees_earlier_rows_either_way(packed):
    wrapped = packed.strategies["wrapped"]
    assert wrapped.found and wrapped.sends_attention_mask and not wrapped.restarts_positions
    assert wrapped.max_diff > 1e-4 and wrapped.depends_on == wrapped.depends_on_plain_call != []


def test_the_packing_text_says_what_was_found(packed):
    text = packing_text(packed)
    assert "found: inside the bfd pack the trainer's forward equals the example alone" in text
    assert "the trainer's forward looked at earlier rows: none; the plain call: 1, 2, 3, 4, 5" in text
    assert "advice: let the trainer make the call" in text
    # Every article example is the same length on the tiny model: unpacked batches need no padding.
    assert packed.unpacked.sent == packed.unpacked.real and packed.packed.sent == packed.packed.real
    assert "packing saves no padding here" in text


@pytest.fixture(scope="module")
def truncated(tiny):
    tok = tiny.tokenizer
    examples, cap = truncation_examples(lambda w, a: _fe(tok, article_text(w, a)), tok, *ARTICLE_PAIRS[0])
    return truncation_view(tiny.model, tok, examples, cap), cap


def test_max_length_is_chosen_so_each_cut_happens_once(truncated):
    view, cap = truncated
    keeps, loses_eos, loses_all = view.rows
    assert view.max_length == cap == loses_eos.tokens - 1 and keeps.tokens <= cap < loses_all.tokens
    assert view.truncation_mode == "keep_start"
    assert keeps.kept and keeps.eos_trained and keeps.trained_kept == keeps.trained_full
    assert loses_eos.kept and not loses_eos.eos_trained and loses_eos.trained_kept == loses_eos.trained_full - 1
    assert not loses_all.kept and loses_all.trained_full > 0
    assert view.dropped == 1


def test_packing_drops_nothing_but_leaves_pieces_that_train_nothing(truncated):
    view, _ = truncated
    by = {p.strategy: p for p in view.packed}
    assert set(by) == {"bfd_split", "wrapped"}
    total = sum(c.tokens for c in view.rows)
    for p in by.values():
        assert p.tokens == total and p.pieces > p.sequences - 1 and p.untrained >= 1
        assert p.untrained_tokens >= p.untrained
    # bfd_split puts row 2's cut eos in a piece of its own: position_ids restart there, the collator masks its label
    assert by["bfd_split"].cut_eos == "first of its piece" and by["wrapped"].cut_eos == "trained"
    text = truncation_text(view)
    assert "rows dropped: 1 of 3" in text and "row 2 is kept and trains its answer, never the stop" in text
    assert "row 3 has no trained token left: without packing TRL drops it" in text
    assert "row 2's cut eos under bfd_split: keeps it as the first token of a piece" in text


def test_sft_config_s_default_max_length_against_the_training_rows(tiny):
    from trl import SFTConfig

    tok = tiny.tokenizer
    examples = [_fe(tok, article_text(w, a)) for w, a in ARTICLE_PAIRS]
    assert sft_default_max_length() == SFTConfig(output_dir="unused", report_to="none", use_cpu=True, bf16=False).max_length
    d = default_cut(tiny.model, tok, examples)
    assert (d.max_length, d.rows, d.longer) == (sft_default_max_length(), 5, 0)
    assert d.longest == max(len(tok(fe.text)["input_ids"]) for fe in examples)
    long = _fe(tok, article_text("dog", " ".join(["perro"] * (d.max_length + 1))))  # past the default
    d = default_cut(tiny.model, tok, [*examples, long])
    assert (d.rows, d.longer) == (6, 1) and d.longest > d.max_length


@pytest.fixture(scope="module")
def weighed(tiny):
    tok = tiny.tokenizer
    formatted = [_fe(tok, article_text(w, a)) for w, a in step_examples(ARTICLE_PAIRS)]
    return weights_view(tiny.model, tok, formatted)


def test_every_trained_token_weighs_one_over_n_of_the_whole_step(weighed):
    assert weighed.micro_batches == 4 and weighed.world_size == 2
    n = sum(e.trained_tokens for e in weighed.shares)
    assert weighed.num_items_in_batch == n
    for scheme in ("trainer", "per_micro_batch", "per_sequence"):
        assert sum(e.weights[scheme] for e in weighed.shares) == pytest.approx(1.0, abs=1e-12)
    for e in weighed.shares:
        assert e.weights["trainer"] == pytest.approx(e.trained_tokens / n, abs=1e-12)
        assert e.weights["per_sequence"] == pytest.approx(1 / len(weighed.shares), abs=1e-12)
    assert len({e.trained_tokens for e in weighed.shares}) > 1  # the answers differ in length


def test_num_items_in_batch_is_used_where_the_model_s_forward_accepts_loss_kwargs(tiny, weighed, monkeypatch):
    from transformers import LlamaForCausalLM

    assert weighed.accepts_loss_kwargs and not weighed.compute_loss_func
    assert weighed.num_items_used == "num_items_in_batch: used (LlamaForCausalLM's forward accepts loss kwargs)"
    # A model that says it takes no loss kwargs (as Gemma3Model does): the Trainer passes no count, each
    # micro-batch's mean is used, and the Trainer's gradient is the per-micro-batch one.
    monkeypatch.setattr(LlamaForCausalLM, "accepts_loss_kwargs", False, raising=False)
    tok = tiny.tokenizer
    off = weights_view(tiny.model, tok, [_fe(tok, article_text(w, a)) for w, a in step_examples(ARTICLE_PAIRS)])
    assert not off.accepts_loss_kwargs and off.num_items_in_batch is None
    assert off.num_items_used.startswith("num_items_in_batch: not used (LlamaForCausalLM's forward takes no loss kwargs")
    assert "each micro-batch's mean loss" in weights_text(off)
    for e in off.shares:
        assert e.weights["trainer"] == pytest.approx(e.weights["per_micro_batch"], abs=1e-12)
    assert same_within_float_error(off.versus["per_micro_batch vs trainer"])
    assert not same_within_float_error(off.versus["trainer vs full batch"])


def test_the_trainer_s_gradient_is_the_full_batch_s_and_the_per_micro_batch_one_is_not(weighed):
    trainer = weighed.versus["trainer vs full batch"]
    per_mb = weighed.versus["per_micro_batch vs full batch"]
    assert same_within_float_error(trainer) and trainer.cosine == pytest.approx(1.0, abs=1e-6)
    assert not same_within_float_error(per_mb) and per_mb.cosine < 0.999


def test_copy_labels_weigh_a_row_by_its_full_length(weighed):
    n = weighed.copy_items
    assert n == sum(e.trained_tokens for e in weighed.copy_shares) > weighed.num_items_in_batch
    for e in weighed.copy_shares:
        assert e.trained_tokens == weighed.lengths[e.row] - 1  # every token but the first is a target
        assert e.weights["trainer"] == pytest.approx(e.trained_tokens / n, abs=1e-12)
