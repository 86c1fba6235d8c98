"""A chat template made for another model family: its turn markers are not tokens of this
vocabulary, and that is the cause named (template-not-for-this-model), not the stop token."""

from __future__ import annotations

from dataclasses import replace

import tiny_model
from sample_rows import CHAT_MULTI, CHAT_OK, jsonl

from inspector.core.data.conversations import read_chat_template
from inspector.core.data.template_fit import FIX, not_single_tokens, special_strings
from inspector.core.reports.data_report import format_report, inspect_data

CHATML = ["<|im_start|>", "<|im_end|>"]


def test_the_template_s_special_strings_are_what_it_writes_around_the_turns(tiny):
    assert special_strings(tiny.tokenizer, read_chat_template("qwen2_5")) == CHATML
    # {{ bos_token }} writes the tokenizer's own bos: one of its tokens.
    assert special_strings(tiny.tokenizer, read_chat_template("gemma3")) == ["<s>", "<start_of_turn>", "<end_of_turn>"]
    assert special_strings(tiny.tokenizer, "{% for m in messages %}{{ m['content'] }}{% endfor %}") == []
    assert special_strings(tiny.tokenizer, "{{ raise_exception('no') }}") == []  # renders nothing: the rows say why


def test_markers_that_are_not_tokens_here_are_named_with_their_pieces(tiny):
    tok = tiny.tokenizer
    found = not_single_tokens(tok, read_chat_template("qwen2_5"))
    assert [f.text for f in found] == CHATML
    for f in found:
        assert len(f.pieces) > 1 and "".join(f.pieces) == f.text
        assert list(f.pieces) == [tok.decode([i]) for i in tok(f.text, add_special_tokens=False)["input_ids"]]


def _chatml_tiny(tiny):
    """The tiny model with Qwen's markers added as special tokens: the template is made for it."""
    tok = tiny_model.make_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": CHATML})
    return replace(tiny, tokenizer=tok)


def test_markers_that_are_single_tokens_raise_nothing(tiny):
    own = _chatml_tiny(tiny)
    assert not_single_tokens(own.tokenizer, read_chat_template("qwen2_5")) == []
    assert not_single_tokens(tiny.tokenizer, None) == []


def test_the_data_report_names_the_cause_instead_of_the_stop_token(tiny, tmp_path):
    path = jsonl(tmp_path, [CHAT_OK, CHAT_MULTI])
    report = inspect_data(path, tiny, chat_template=read_chat_template("qwen2_5"))
    (problem,) = [p for p in report.problems if p.kind == "template-not-for-this-model"]
    assert problem.row is None and report.counts["template-not-for-this-model"] == 1
    assert "TRL's qwen2_5_training" in problem.detail  # the name given resolves to the training variant
    for text in CHATML:
        assert f"{text} → " in problem.detail
    assert "another model family" in problem.detail
    # The stop-token advice (use a _training variant) is not given for this cause: it already is one.
    assert "stop-token-not-trained" not in report.counts and "eos-not-trained" not in report.counts
    summary = "\n".join(report.summary())
    assert FIX in summary and "_training" not in summary
    text = format_report(report)
    assert "template-not-for-this-model (1)" in text and "dataset: the chat template (TRL's qwen2_5_training)" in text
    data = report.to_dict()
    assert data["problem_counts"]["template-not-for-this-model"] == 1
    # The same rows through a tokenizer that has the markers as tokens: nothing to say about the template.
    own = inspect_data(path, _chatml_tiny(tiny), chat_template=read_chat_template("qwen2_5"))
    assert "template-not-for-this-model" not in own.counts


def test_text_rows_do_not_use_the_tokenizer_s_template(tiny, tmp_path):
    """The tokenizer's own template only renders conversations: text rows raise nothing about it."""
    tok = tiny_model.make_tokenizer()
    tok.chat_template = read_chat_template("qwen2_5")
    other = replace(tiny, tokenizer=tok)
    texts = inspect_data(jsonl(tmp_path, [{"text": "\n\n### Human: a\n\n### Assistant: b"}]), other)
    assert "template-not-for-this-model" not in texts.counts
    chats = inspect_data(jsonl(tmp_path, [CHAT_OK], "c.jsonl"), other)
    assert chats.counts["template-not-for-this-model"] == 1
