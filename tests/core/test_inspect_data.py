"""The dataset report: exact counts and the problem rows, on fixture datasets made here."""

from __future__ import annotations

import json

import pytest

from inspector.cli import main
from inspector.core.reports.data_report import inspect_data

CHAT_OK = {"messages": [{"role": "user", "content": "dog?"}, {"role": "assistant", "content": "perro"}]}
CHAT_MULTI = {"messages": [
    {"role": "user", "content": "water?"}, {"role": "assistant", "content": "agua"},
    {"role": "user", "content": "tree?"}, {"role": "assistant", "content": "árbol"},
]}
NO_ANSWER = {"messages": [{"role": "user", "content": "cat?"}]}
# The answer's end-of-turn comes after a newline: the token closing the answer is not special.
LATE_EOS = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}\n</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def jsonl(tmp_path, rows, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


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


def test_cli_json_and_fail_on(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, [CHAT_OK, NO_ANSWER])
    code = main(["inspect-data", str(path), "--model", str(tiny_path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["problems"] == [{"row": 2, "kind": "no-trained-tokens", "detail": "the conversation has no assistant message", "strategy": None}]
    assert set(data["strategies"]) == {"copy", "mask"} and 0 < data["strategies"]["mask"]["trained_fraction"] < 1
    assert main(["inspect-data", str(path), "--model", str(tiny_path), "--fail-on", "no-trained-tokens"]) == 1
    out = capsys.readouterr().out
    assert "no-trained-tokens: 1 (rows 2)" in out
    assert main(["inspect-data", str(path), "--model", str(tiny_path), "--fail-on", "truncated-answer"]) == 0
    capsys.readouterr()
    assert main(["inspect-data", str(path), "--fail-on", "typo"]) == 2
    assert "--fail-on has unknown problems: typo" in capsys.readouterr().err


def _many_problems(tmp_path, n=230):
    """Rows with problems spread through the file: bad JSON, no answer, empty answers, wrong types."""
    good = [CHAT_OK, CHAT_MULTI]
    bad = ["not json", NO_ANSWER, {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]},
           {"prompt": "x", "completion": "y"}, {"messages": "oops"}]
    rows = [bad[i % len(bad)] if i % 7 == 3 else good[i % 2] for i in range(n)]
    return jsonl(tmp_path, rows)


def test_num_proc_gives_the_same_report(tiny, tmp_path):
    path = _many_problems(tmp_path)
    one = inspect_data(path, tiny, batch_size=16, num_proc=1, chat_template=LATE_EOS).to_dict()
    two = inspect_data(path, tiny, batch_size=16, num_proc=2, chat_template=LATE_EOS).to_dict()
    one.pop("seconds"), two.pop("seconds")
    assert one == two
    assert len(one["problem_counts"]) >= 5 and one["rows"] == 230


def test_num_proc_on_the_command_line(capsys, tiny_path, tmp_path):
    path = _many_problems(tmp_path, 600)  # three batches of 256: the workers start
    reports = []
    for n in ("1", "2"):
        assert main(["inspect-data", str(path), "--model", str(tiny_path), "--num-proc", n, "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
        reports[-1].pop("seconds")
    assert reports[0] == reports[1]
    with pytest.raises(SystemExit) as exit_:
        main(["inspect-data", str(path), "--model", str(tiny_path), "--num-proc", "0"])
    assert exit_.value.code == 2 and "--num-proc" in capsys.readouterr().err
