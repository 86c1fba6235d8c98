"""The dataset report: exact counts and the problem rows, on fixture datasets made here."""

from __future__ import annotations

import pytest
from sample_rows import CHAT_MULTI, CHAT_OK, LATE_EOS, NO_ANSWER, jsonl, many_problems

from inspector.core.reports.data_report import inspect_data


def test_broken_rows_are_each_named(tiny, tmp_path):
    path = jsonl(tmp_path, [CHAT_OK, NO_ANSWER, "not json", CHAT_MULTI, {"prompt": "x", "completion": "y"}, {"messages": "oops"}])
    report = inspect_data(path, tiny)
    assert report.rows_read == 6 and report.examples == 2
    assert {(p.row, p.kind) for p in report.problems} == {
        (2, "no-trained-tokens"), (3, "bad-row"), (5, "mixed-format"), (6, "bad-row"),
    }
    assert report.row_kinds == {"messages": 3}
    mask = report.totals["mask"]
    assert mask.trained_tokens == 6  # " perro</s>", " agua</s>", " árbol</s>" in the tiny BPE


def test_trained_fraction_is_exact(tiny, tmp_path):
    from inspector.core.data.chat_format import ARTICLE_EXAMPLES

    path = jsonl(tmp_path, [{"text": t} for t in ARTICLE_EXAMPLES])
    report = inspect_data(path, tiny)
    assert report.tokens == 115 and report.examples == 5
    assert report.totals["mask"].trained_tokens == 10
    assert report.totals["mask"].trained_fraction == pytest.approx(10 / 115)
    assert report.totals["copy"].trained_tokens == 110  # every position but the first
    assert report.counts == {}


def test_text_rows_without_the_template(tiny, tmp_path):
    path = jsonl(tmp_path, [{"text": "User: hi\nBot: hola"}, {"text": "\n\n### Human: a\n\n### Assistant: b"}])
    report = inspect_data(path, tiny)
    assert [(p.row, p.kind) for p in report.problems] == [(1, "template-not-found")]


def test_eos_not_trained_when_the_template_closes_turns_late(tiny, tmp_path):
    path = jsonl(tmp_path, [CHAT_OK])
    report = inspect_data(path, tiny, chat_template=LATE_EOS)
    # The mask audit sees it too: prefix rendering trains the "</s>" the located answer leaves out.
    assert [(p.row, p.kind, p.strategy) for p in report.problems] == [
        (1, "mask-methods-disagree", None), (1, "eos-not-trained", "mask"),
    ]
    assert "'</s>' (prefix rendering only)" in report.problems[0].detail


def test_an_added_special_end_of_turn_counts_as_trained_eos(fresh_tiny, tmp_path):
    """Gemma's <end_of_turn> is an added special token that `all_special_ids` does not list."""
    from tokenizers import AddedToken

    tok = fresh_tiny.tokenizer
    tok.add_tokens([AddedToken("<eot>", special=True, normalized=False)])
    eot = tok.convert_tokens_to_ids("<eot>")
    assert eot not in tok.all_special_ids
    template = (
        "{% for m in messages %}{{ m['role'] }}\n{{ m['content'] }}<eot>\n{% endfor %}"
        "{% if add_generation_prompt %}assistant\n{% endif %}"
    )
    path = jsonl(tmp_path, [CHAT_OK, CHAT_MULTI])
    report = inspect_data(path, fresh_tiny, chat_template=template)
    # each answer's tokens and the <eot> that closes it
    trained = sum(len(tok(w, add_special_tokens=False)["input_ids"]) + 1 for w in ("perro", "agua", "árbol"))
    assert report.counts == {}
    assert report.totals["mask"].trained_tokens == trained
    # The labels view marks it as special too.
    from inspector.core.labels.strategies import make_rows

    (row,) = make_rows(tok, [eot], [eot])
    assert row.special and row.text == "<eot>"


def test_truncation_into_an_answer(tiny, tmp_path):
    long = {"prompt": "dog " * 30, "completion": "perro"}
    path = jsonl(tmp_path, [CHAT_OK["messages"] and {"prompt": "dog", "completion": "perro"}, long])
    report = inspect_data(path, tiny, max_length=20)
    assert [(p.row, p.kind) for p in report.problems if p.strategy == "mask"] == [(2, "truncated-answer")]


def test_pad_equal_to_eos_is_a_dataset_wide_problem(tiny_gpt2_path, tmp_path):
    from inspector.core.models import load_model

    lm = load_model(str(tiny_gpt2_path), tokenizer_only=True)
    report = inspect_data(jsonl(tmp_path, [{"prompt": "dog", "completion": "perro"}]), lm)
    assert [(p.row, p.kind) for p in report.problems] == [(None, "pad-equals-eos")]


def test_trl_in_the_report(tiny, tmp_path):
    path = jsonl(tmp_path, [{"text": "\n\n### Human: a\n\n### Assistant: b\n\n### Human: c\n\n### Assistant: d"}])
    report = inspect_data(path, tiny, strategies=("mask", "trl"))
    assert report.totals["trl"].trained_tokens < report.totals["mask"].trained_tokens  # TRL: the last answer only


def test_num_proc_gives_the_same_report(tiny, tmp_path):
    path = many_problems(tmp_path)
    one = inspect_data(path, tiny, batch_size=16, num_proc=1, chat_template=LATE_EOS).to_dict()
    two = inspect_data(path, tiny, batch_size=16, num_proc=2, chat_template=LATE_EOS).to_dict()
    one.pop("seconds"), two.pop("seconds")
    assert one == two
    assert len(one["problem_counts"]) >= 5 and one["rows"] == 230
