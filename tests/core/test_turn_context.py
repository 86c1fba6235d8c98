"""Reasoning, tool calls, turn policies and training beside inference (labels.turn_context, labels.turn_policy, data.roles)."""

from __future__ import annotations

import pytest

from inspector.core.data.conversations import render_chat
from inspector.core.data.roles import token_roles
from inspector.core.data.trl_templates import shipped
from inspector.core.errors import InspectorError
from inspector.core.labels import turn_context as T
from inspector.core.labels.strategies import encode, label_examples, mask_labels

REASONED = [
    {"role": "user", "content": "How do you say dog?"},
    {"role": "assistant", "reasoning_content": "Dog is perro.", "content": "perro"},
    {"role": "user", "content": "And water?"},
    {"role": "assistant", "reasoning_content": "Water is agua.", "content": "agua"},
]
TOOLS = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    },
    {"role": "tool", "content": "sunny"},
    {"role": "assistant", "content": "It is sunny."},
]


def inline(msgs):
    """The reasoning written inline, as DeepSeek-R1-Distill's templates read it."""
    out = []
    for m in msgs:
        m = dict(m)
        if "reasoning_content" in m:
            m["content"] = f"<think>\n{m.pop('reasoning_content')}\n</think>\n\n{m['content']}"
        out.append(m)
    return out


def template(name):
    return shipped()[name].read_text(encoding="utf-8")


def labelled(fe, tok):
    ids, offsets = encode(fe, tok)
    return ids, offsets, mask_labels(ids, offsets, fe)


def segments(fe, tok):
    ids, offsets, _ = labelled(fe, tok)
    out: list[list[str]] = []
    for (a, b), role in zip(offsets, token_roles(fe, offsets, tok)):
        if not out or out[-1][0] != role:
            out.append([role, ""])
        out[-1][1] += fe.text[a:b]
    return [tuple(x) for x in out]


def reports(fe, tok, inference=None):
    ids, offsets, labels = labelled(fe, tok)
    inf = T.inference_template_for(tok, fe.chat_template, inference)
    return T.turn_reports(fe, ids, offsets, labels, tok, inf), ids, labels


def test_roles_name_reasoning_tool_calls_and_results(tiny):
    tok = tiny.tokenizer
    fe = render_chat(TOOLS, tok, template("qwen3_training"))
    assert segments(fe, tok) == [
        ("user", "<|im_start|>user\nWeather in Paris?<|im_end|>\n"),
        ("assistant", "<|im_start|>assistant\n"),
        ("reasoning", "<think>\n\n</think>"),
        ("assistant", "\n\n"),
        ("tool_call", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'),
        ("assistant", "<|im_end|>\n"),
        ("tool_result", "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"),
        ("assistant", "<|im_start|>assistant\n"),
        ("reasoning", "<think>\n\n</think>"),
        ("assistant", "\n\nIt is sunny.<|im_end|>\n"),
    ]


def test_training_variant_keeps_earlier_reasoning_that_inference_drops(tiny):
    tok = tiny.tokenizer
    fe = render_chat(REASONED, tok, template("qwen3_training"))
    turns, ids, labels = reports(fe, tok)
    assert [t.context_matches_inference for t in turns] == [True, False]
    two = turns[1]
    differing = tok.decode([ids[p] for p in two.training_only])
    assert differing.strip() == "<think>\nDog is perro.\n</think>"
    assert two.inference_only == ()
    assert "earlier reasoning (message 2) is in the training context" in two.verdict
    # every turn trains its reasoning and answer: what TRL's assistant_only_loss trains
    assert [t.reasoning_trained == t.reasoning_tokens > 0 for t in turns] == [True, True]
    kinds = [k for k, _ in T.findings(fe, turns, token_roles(fe, encode(fe, tok)[1], tok), labels)]
    assert kinds == ["reasoning-context-differs"]


def test_original_template_drops_earlier_reasoning_untrained(tiny):
    tok = tiny.tokenizer
    fe = render_chat(REASONED, tok, template("qwen3"))
    assert "Dog is perro." not in fe.text and "Water is agua." in fe.text
    turns, _, labels = reports(fe, tok, "qwen3")
    assert [t.context_matches_inference for t in turns] == [True, True]
    assert [t.reasoning_rendered for t in turns] == [False, True]
    kinds = [k for k, _ in T.findings(fe, turns, None, labels)]
    assert kinds == ["reasoning-not-trained"]


def test_deepseek_prefills_think_and_its_training_variant_ignores_reasoning_content(tiny):
    tok = tiny.tokenizer
    fe = render_chat(inline(REASONED), tok, template("deepseek_r1_distill_training"))
    turns, _, labels = reports(fe, tok)
    assert turns[0].prefilled == "<｜Assistant｜><think>\n"
    assert turns[0].context_matches_inference is False
    kinds = [k for k, _ in T.findings(fe, turns, None, labels)]
    assert kinds == ["reasoning-prefilled", "reasoning-context-differs", "reasoning-prefilled"]
    dropped = render_chat(REASONED, tok, template("deepseek_r1_distill_training"))  # reasoning_content not read
    turns, _, labels = reports(dropped, tok)
    assert [t.reasoning_rendered for t in turns] == [False, False]
    assert ("reasoning-not-trained") in [k for k, _ in T.findings(dropped, turns, None, labels)]


@pytest.mark.parametrize("name, inline_reasoning", [("qwen3_training", False), ("deepseek_r1_distill_training", True)])
def test_split_rows_train_each_turn_in_the_inference_context(tiny, name, inline_reasoning):
    tok = tiny.tokenizer
    msgs = inline(REASONED) if inline_reasoning else REASONED
    fe = render_chat(msgs, tok, template(name))
    _, rows = T.policy_examples([None], [fe], "split", tok)
    assert [r.part for r in rows] == [(1, 2), (2, 2)]
    for n, row in enumerate(rows, start=1):
        turns, ids, labels = reports(row, tok)
        trained = [t for t in turns if t.trained]
        assert [t.number for t in trained] == [n]
        assert trained[0].context_matches_inference is True
        reasoning = REASONED[2 * n - 1]["reasoning_content"]
        assert reasoning in tok.decode([i for i, lab in zip(ids, labels) if lab != -100])


def test_policies_last_and_final_train_one_turn(tiny):
    tok = tiny.tokenizer
    fe = render_chat(
        TOOLS
        + [
            {"role": "user", "content": "Thanks"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"type": "function", "function": {"name": "log", "arguments": {}}}],
            },
        ],
        tok,
        template("qwen3_training"),
    )
    for policy, message in (("last", 6), ("final", 4)):
        _, (row,) = T.policy_examples([None], [fe], policy, tok)
        turns, _, _ = reports(row, tok)
        assert [t.message for t in turns if t.trained] == [message]
        assert row.completion_from == message - 1
    assert T.trained_messages(TOOLS, "all") == [1, 3]


def test_per_message_flags_are_honoured_by_mask_and_named(tiny):
    tok = tiny.tokenizer
    msgs = [dict(m) for m in REASONED]
    msgs[1]["weight"] = 0
    fe = render_chat(msgs, tok, template("qwen3_training"))
    _, (row,) = T.policy_examples([None], [fe], "all", tok)
    turns, _, labels = reports(row, tok)
    assert [t.trained > 0 for t in turns] == [False, True]
    assert turns[0].flag == '"weight": 0'
    found = dict(T.findings(row, turns, None, labels))
    assert found["message-flags-ignored"].startswith('TRL\'s SFTTrainer trains message 2 ("weight": 0)')


def test_trl_trains_what_the_mask_does_turn_by_turn(tiny):
    tok = tiny.tokenizer
    for name, msgs in (("qwen3_training", REASONED), ("deepseek_r1_distill_training", inline(REASONED))):
        fe = render_chat(msgs, tok, template(name))
        (trl,) = label_examples("trl", [fe], tok, tiny.model)
        assert trl.labels == mask_labels(*encode(fe, tok), fe)


@pytest.mark.parametrize(
    "message, said",
    [
        ({"role": "assistant", "content": "x", "reasoning_content": 42}, '"reasoning_content" that is a int'),
        ({"role": "assistant", "content": "<think>never closed"}, "opens <think> and never closes it"),
        ({"role": "tool", "content": "sunny"}, "tool result (tool) with no tool call before it"),
        ({"role": "assistant", "content": "x", "weight": "zero"}, "not a number or true/false"),
    ],
)
def test_bad_reasoning_rows_are_named(tiny, message, said):
    with pytest.raises(InspectorError) as err:
        render_chat_checked([{"role": "user", "content": "hi"}, message], tiny.tokenizer)
    assert said in err.value.problem and "message 2" in err.value.problem


def render_chat_checked(msgs, tok):
    from inspector.core.data.conversations import format_messages

    return format_messages(msgs, tok, chat_template=template("qwen3_training"), where="row 7")


def test_inference_template_order(tiny):
    tok = tiny.tokenizer
    assert T.inference_template_for(tok, template("qwen3_training")).text == template("qwen3")
    assert T.inference_template_for(tok, template("qwen3_training"), "qwen3_training").text == template(
        "qwen3_training"
    )
    assert T.inference_template_for(tok, template("qwen3")).name.startswith("the training template")
    with pytest.raises(InspectorError, match="no such file"):
        T.inference_template_for(tok, None, "nope")


def test_parallel_calls_and_their_results_keep_their_roles(tiny):
    """Qwen 3 closes a group of tool results only after the last: rendering up to the first is not
    a prefix of the whole, and that message alone is found by its text."""
    tok = tiny.tokenizer
    calls = [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"type": "function", "function": {"name": "get_time", "arguments": {"city": "Rome"}}},
    ]
    msgs = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "content": "sunny"},
        {"role": "tool", "content": "noon"},
        {"role": "assistant", "content": "Sunny at noon."},
    ]
    fe = render_chat(msgs, tok, template("qwen3_training"))
    got = dict((role, text) for role, text in segments(fe, tok) if role in ("tool_call", "tool_result"))
    assert got["tool_call"].endswith('"arguments": {"city": "Rome"}}\n</tool_call>')
    assert got["tool_result"] == (
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nnoon\n</tool_response><|im_end|>\n"
    )
    ids, offsets, labels = labelled(fe, tok)
    assert not [
        k
        for k, _ in T.findings(fe, reports(fe, tok)[0], token_roles(fe, offsets, tok), labels)
        if k == "tool-result-trained"
    ]
