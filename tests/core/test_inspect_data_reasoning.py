"""inspect-data over rows with reasoning, tool calls and per-message flags: each problem kind on
exactly the rows planted with it, bad rows counted, and the reasoning share exact."""

from __future__ import annotations

import json
import re

import pytest
from sample_rows import jsonl

from inspector.core.data.conversations import read_chat_template
from inspector.core.reports.data_report import format_report, inspect_data

KINDS = (
    "reasoning-context-differs",
    "reasoning-not-trained",
    "empty-reasoning-trained",
    "reasoning-prefilled",
    "tool-result-trained",
    "message-flags-ignored",
)


def user(text):
    return {"role": "user", "content": text}


def answer(text, reasoning=None, **flags):
    return {"role": "assistant", "content": text, **({"reasoning_content": reasoning} if reasoning else {}), **flags}


def call(reasoning=None, **flags):
    fn = {"name": "get_weather", "arguments": {"city": "Paris"}}
    m = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": fn}], **flags}
    return {**m, "reasoning_content": reasoning} if reasoning else m


TOOL_ROW = [user("Weather?"), call("Call it."), {"role": "tool", "content": "sunny"}, answer("Sunny.", "It is sunny.")]
CLEAN = {  # row number -> messages: nothing to report under qwen3_training beside qwen3
    1: [user("dog?"), answer("perro", "Dog is perro.")],
    4: TOOL_ROW,  # the call carries reasoning: qwen3 keeps it after the last user message, as training does
    6: [user("dog?"), answer("<think>Dog is perro.</think>perro")],  # inline reasoning
}
ROWS = {
    **CLEAN,
    2: [user("dog?"), answer("perro", "Dog is perro."), user("water?"), answer("agua", "Water is agua.")],
    3: [user("dog?"), answer("perro")],  # no reasoning: qwen3_training writes an empty think block
    5: [user("Weather?"), call("Call it.", weight=0), *TOOL_ROW[2:]],  # the call flagged "do not train"
    7: [user("dog?"), answer("perro", None) | {"reasoning_content": 5}],
    8: [user("dog?"), answer("<think>Dog is perro. perro")],
    9: [user("dog?"), {"role": "tool", "content": "sunny"}, answer("perro")],
}


def write(tmp_path, rows, name="d.jsonl"):
    return jsonl(tmp_path, [{"messages": rows[n]} for n in sorted(rows)], name)


def found(report):
    return {kind: report.rows_with(kind) for kind in KINDS if report.rows_with(kind)}


def test_each_kind_on_exactly_its_rows_qwen3(tiny, tmp_path):
    report = inspect_data(write(tmp_path, ROWS), tiny, chat_template=read_chat_template("qwen3"))
    assert report.inference_template == "qwen3 (TRL's original of qwen3_training)"
    assert found(report) == {
        "reasoning-context-differs": [2],  # turn 2 trained after turn 1's think block, which qwen3 drops
        "empty-reasoning-trained": [3],
        "message-flags-ignored": [5],
    }
    # Bad input: one counted bad row each, naming the message and what to do.
    bad = {p.row: p.detail for p in report.problems if p.kind == "bad-row"}
    assert sorted(bad) == [7, 8, 9] and report.counts["bad-row"] == 3
    assert 'message 2 (assistant) has "reasoning_content" that is a int' in bad[7] and "write the reasoning as text" in bad[7]
    assert "message 2 (assistant) opens <think> and never closes it" in bad[8] and "close the reasoning" in bad[8]
    assert "message 2 is a tool result (tool) with no tool call before it" in bad[9] and "drop the row" in bad[9]
    assert report.rows_read == 9 and report.examples == 6
    text = format_report(report)
    assert "reasoning-context-differs (1)" in text and "--turn-policy split" in text
    assert "reasoning share of trained tokens (5 rows carry reasoning" in text


def test_the_turn_policy_and_the_inference_template_are_honoured(tiny, tmp_path):
    path = write(tmp_path, ROWS)
    split = inspect_data(path, tiny, chat_template=read_chat_template("qwen3"), turn_policy="split")
    # Every trained turn in inference's own prompt: no context differs; the flagged call is no row of its own.
    assert found(split) == {"empty-reasoning-trained": [3], "message-flags-ignored": [5]}
    assert split.examples == 1 + 2 + 1 + 2 + 1 + 1 and split.turn_policy == "split"
    same = inspect_data(path, tiny, chat_template=read_chat_template("qwen3"), inference_template="qwen3_training")
    assert "reasoning-context-differs" not in found(same)  # compared with the training template itself


@pytest.mark.parametrize("policy", ["all", "split"])
def test_an_inference_template_that_raises_on_tools_is_counted(tiny, tmp_path, policy):
    refuses = tmp_path / "no_tools.jinja"
    refuses.write_text(
        "{% for m in messages %}{% if m.tool_calls %}{{ raise_exception('no tool calls here') }}{% endif %}"
        "<s>{{ m.role }}\n{{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<s>assistant\n{% endif %}"
    )
    rows = {1: ROWS[1], 2: TOOL_ROW}
    report = inspect_data(write(tmp_path, rows), tiny, chat_template=read_chat_template("qwen3"),
                          inference_template=str(refuses), turn_policy=policy)  # fmt: skip
    (bad,) = [p for p in report.problems if p.kind == "bad-row"]
    assert bad.row == 2 and "no tool calls here" in bad.detail and "pass --inference-template" in bad.detail


def test_each_kind_on_exactly_its_rows_deepseek(tiny, tmp_path):
    rows = {
        1: [user("dog?"), answer("perro", "Dog is perro.")],  # the template reads no reasoning_content
        2: [user("dog?"), answer("<think>\nDog is perro.\n</think>\n\nperro")],
        3: [user("dog?"), answer("perro")],
        4: [user("dog?"), answer("perro", ["not", "text"])],
    }
    report = inspect_data(write(tmp_path, rows), tiny, chat_template=read_chat_template("deepseek_r1_distill"))
    assert found(report) == {"reasoning-not-trained": [1], "reasoning-prefilled": [1, 2, 3]}
    assert "inference prefills '<｜Assistant｜><think>\\n'" in next(p.detail for p in report.problems if p.kind == "reasoning-prefilled")
    assert report.rows_with("bad-row") == [4]
    think = _expected_share(tiny.tokenizer, [rows[n] for n in (1, 2, 3)], "deepseek_r1_distill_training")
    assert report.to_dict()["reasoning_share"]["mask"] == think


def test_tool_results_trained_by_a_template_that_marks_them(tiny, tmp_path):
    template = (
        "{% for m in messages %}{% if m.role == 'user' %}<s>user\n{{ m.content }}</s>\n"
        "{% elif m.role == 'tool' %}<s>tool\n{% generation %}{{ m.content }}</s>{% endgeneration %}\n"
        "{% else %}<s>assistant\n{% generation %}{{ m.content }}{% for c in m.tool_calls or [] %}"
        "call {{ c.function.name }}{% endfor %}</s>{% endgeneration %}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
    )
    rows = {1: [user("dog?"), answer("perro")], 2: [user("Weather?"), call(), *TOOL_ROW[2:3], answer("Sunny.")]}
    report = inspect_data(write(tmp_path, rows), tiny, chat_template=template)
    assert found(report) == {"tool-result-trained": [2]}
    assert next(p.detail for p in report.problems if p.kind == "tool-result-trained").endswith("of tool results are trained")


def _expected_share(tok, conversations, template_name, every=False):
    """Trained think-block tokens and trained tokens, from transformers' own assistant mask (or
    every token: the copy strategy) and the `<think>…</think>` blocks found in the rendering
    (position 0 is never predicted)."""
    from inspector.core.data.trl_templates import shipped

    template = shipped()[template_name].read_text(encoding="utf-8")
    reasoning = trained = 0
    for msgs in conversations:
        out = tok.apply_chat_template(msgs, chat_template=template, return_dict=True, return_assistant_tokens_mask=True)
        text = tok.apply_chat_template(msgs, chat_template=template, tokenize=False)
        enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
        assert enc["input_ids"] == out["input_ids"]
        blocks = [m.span() for m in re.finditer(r"<think>.*?</think>", text, re.DOTALL)]
        for pos, ((a, b), kept) in enumerate(zip(enc["offset_mapping"], out["assistant_masks"])):
            if pos == 0 or not (kept or every):
                continue
            trained += 1
            reasoning += any(s <= (a + b) / 2 < e for s, e in blocks)
    return {"trained_reasoning_tokens": reasoning, "trained_tokens": trained, "share": reasoning / trained}


def test_the_reasoning_share_is_exact(tiny, tmp_path):
    path = write(tmp_path, {n: ROWS[n] for n in (1, 2, 3, 4, 6)})
    report = inspect_data(path, tiny, strategies=("copy", "mask", "trl"), chat_template=read_chat_template("qwen3"))
    data = report.to_dict()
    conversations = [ROWS[n] for n in (1, 2, 3, 4, 6)]
    expected = _expected_share(tiny.tokenizer, conversations, "qwen3_training")
    assert data["reasoning_share"]["mask"] == expected
    assert data["reasoning_share"]["trl"] == expected  # TRL's assistant_only_loss trains the same tokens
    assert data["reasoning_share"]["copy"] == _expected_share(tiny.tokenizer, conversations, "qwen3_training", every=True)
    assert expected["trained_tokens"] == report.totals["mask"].trained_tokens
    assert 0 < expected["trained_reasoning_tokens"] < expected["trained_tokens"]
    assert data["reasoning_rows"] == 4  # row 3 has none


def test_the_same_report_in_worker_processes(tiny, tmp_path):
    rows = [json.dumps({"messages": ROWS[n]}) for n in sorted(ROWS)] * 4
    path = jsonl(tmp_path, rows)
    kwargs = dict(chat_template=read_chat_template("qwen3"), turn_policy="split", batch_size=5)
    one = inspect_data(path, tiny, num_proc=1, **kwargs).to_dict()
    two = inspect_data(path, tiny, num_proc=2, **kwargs).to_dict()
    one.pop("seconds"), two.pop("seconds")
    assert one == two and one["problem_counts"]["message-flags-ignored"] == 4


def test_the_cli_json(tiny_path, tmp_path, capsys):
    from inspector.cli import main

    path = write(tmp_path, {n: ROWS[n] for n in (1, 2, 3)})
    assert main(["inspect-data", str(path), "--model", str(tiny_path), "--chat-template", "qwen3", "--json",
                 "--fail-on", "reasoning-context-differs"]) == 1  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["problem_counts"]["reasoning-context-differs"] == 1 and data["turn_policy"] == "all"
    assert set(data["reasoning_share"]["mask"]) == {"trained_reasoning_tokens", "trained_tokens", "share"}
