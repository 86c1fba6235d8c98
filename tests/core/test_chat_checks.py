"""Tool calls, TRL's shipped chat templates, and the problem kinds of conversations."""

from __future__ import annotations

import json

import pytest

from inspector.core.data.conversations import ToolCallDropped, format_messages, read_chat_template
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import label_example
from inspector.core.reports.data_report import inspect_data

CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
TOOL_CHAT = [
    {"role": "user", "content": "weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": "sunny"},
    {"role": "assistant", "content": "It is sunny."},
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
SHAREGPT_TOOLS = {
    "conversations": [
        {"from": "human", "value": "weather in Paris?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
        {"from": "observation", "value": "sunny"},
        {"from": "gpt", "value": "It is sunny."},
    ]
}
OK = {"messages": [{"role": "user", "content": "dog?"}, {"role": "assistant", "content": "perro"}]}
EMPTY = {"messages": [{"role": "user", "content": "dog?"}, {"role": "assistant", "content": ""}]}
# Templates on the tiny tokenizer's own specials: the answer and its "</s>" inside the markers (right),
# or the "</s>" left outside them (the stop token is never trained).
RIGHT = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}"
    "{% generation %}{{ m['content'] }}</s>{% endgeneration %}{% else %}{{ m['content'] }}</s>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)
STOP_OUTSIDE = RIGHT.replace("{{ m['content'] }}</s>{% endgeneration %}", "{{ m['content'] }}{% endgeneration %}</s>")


def jsonl(tmp_path, rows, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def trained_text(lab):
    return "".join(r.text for r in lab.rows if not r.masked)


@pytest.mark.parametrize("name", ["qwen2_5", "qwen3"])
def test_a_tool_call_is_trained_and_its_result_masked_through_trl_templates(tiny, name):
    template = read_chat_template(name)
    assert "{% generation %}" in template.replace("{%- generation %}", "{% generation %}")  # the _training variant
    fe = format_messages(TOOL_CHAT, tiny.tokenizer, chat_template=template, tools=TOOLS)
    trained = trained_text(label_example("mask", fe, tiny.tokenizer))
    assert '"get_weather"' in trained and '"Paris"' in trained  # the call is what the assistant writes
    assert "sunny" not in trained.replace("It␣is␣sunny", "")  # the tool's result is not
    assert "weather␣in␣Paris" not in trained


def test_a_template_that_drops_tool_calls_is_refused(tiny):
    """TRL's llama3 (the 3.0 template) has no place for tool calls: the row is refused, naming the call."""
    with pytest.raises(ToolCallDropped, match="drops the tool call get_weather of message 2"):
        format_messages(TOOL_CHAT, tiny.tokenizer, chat_template=read_chat_template("llama3"))


def test_the_article_format_refuses_a_tool_call_and_names_it(tiny, tmp_path):
    report = inspect_data(jsonl(tmp_path, [SHAREGPT_TOOLS, OK]), tiny)
    assert [(p.row, p.kind) for p in report.problems] == [(1, "tool-call-dropped")]
    assert "message 2 (assistant) calls get_weather" in report.problems[0].detail
    assert report.examples == 1


def test_tool_call_rows_through_a_trl_template_raise_no_tool_problem(tiny, tmp_path):
    report = inspect_data(jsonl(tmp_path, [SHAREGPT_TOOLS]), tiny, chat_template=read_chat_template("qwen2_5"))
    assert report.examples == 1 and "tool-call-dropped" not in report.counts


def test_load_examples_lists_the_tool_call_as_its_own_kind(tiny, tmp_path):
    from inspector.core.data.examples import format_leniently, load_examples

    examples = load_examples(jsonl(tmp_path, [SHAREGPT_TOOLS, OK]))
    assert examples[0].messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    pairs, problems = format_leniently(examples, tiny.tokenizer)
    assert [(p.row, p.kind) for p in problems] == [(1, "tool-call-dropped")] and len(pairs) == 1


def test_template_names_resolve_to_trl_files(tmp_path):
    from inspector.core.data.trl_templates import families, resolve

    assert resolve("qwen3").used == "qwen3_training"
    assert resolve("llama3_2").used == "llama3_2"  # no training variant shipped
    names = {n for n, *_ in families()}
    assert {"llama3", "qwen2_5", "qwen3", "gemma3"} <= names
    with pytest.raises(InspectorError, match="nor a template TRL ships"):
        read_chat_template("no_such_family")
    with pytest.raises(InspectorError, match="does not exist"):
        read_chat_template(str(tmp_path / "missing.jinja"))


def test_trl_offers_the_training_variant_of_a_template_without_markers(fresh_tiny):
    from inspector.core.data.trl_templates import shipped
    from inspector.core.labels.strategies import label_examples

    plain = shipped()["qwen2_5"].read_text(encoding="utf-8")  # TRL's copy of Qwen 2.5's own, no markers
    fe = format_messages(OK["messages"], fresh_tiny.tokenizer, chat_template=plain)
    with pytest.raises(InspectorError, match="--chat-template qwen2_5_training"):
        label_examples("trl", [fe], fresh_tiny.tokenizer, fresh_tiny.model)


def test_empty_answers_are_named_and_others_not(tiny, tmp_path):
    text_empty = {"text": "\n\n### Human: dog?\n\n### Assistant:"}
    assert [(p.row, p.kind) for p in inspect_data(jsonl(tmp_path, [OK, EMPTY]), tiny).problems] == [(2, "empty-answer")]
    texts = inspect_data(jsonl(tmp_path, [{"text": "\n\n### Human: a\n\n### Assistant: b"}, text_empty], "t.jsonl"), tiny)
    assert [(p.row, p.kind) for p in texts.problems] == [(2, "empty-answer")]
    chat = inspect_data(jsonl(tmp_path, [OK, EMPTY], "c.jsonl"), tiny, chat_template=RIGHT)
    assert [(p.row, p.kind) for p in chat.problems] == [(2, "empty-answer")]


def test_right_markers_raise_nothing(tiny, tmp_path):
    multi = {"messages": OK["messages"] + [{"role": "user", "content": "tree?"}, {"role": "assistant", "content": "árbol"}]}
    report = inspect_data(jsonl(tmp_path, [OK, multi]), tiny, chat_template=RIGHT)
    assert report.counts == {} and report.examples == 2


def test_markers_that_leave_the_stop_token_out(tiny, tmp_path):
    report = inspect_data(jsonl(tmp_path, [OK]), tiny, chat_template=STOP_OUTSIDE)
    kinds = [(p.row, p.kind) for p in report.problems]
    assert (None, "stop-token-not-trained") in kinds  # TRL's is_chat_template_stop_token_trained
    assert (1, "stop-token-not-trained") in kinds
    (audit,) = [p for p in report.problems if p.kind == "mask-methods-disagree"]
    assert audit.row == 1
    # The "</s>" after "perro": prefix rendering trains it, the markers do not.
    ids = tiny.tokenizer(report_text := "<s>user\ndog?</s><s>assistant\nperro</s>", add_special_tokens=False)["input_ids"]
    pos = len(ids) - 1
    assert report_text.endswith("</s>") and f"{pos} '</s>' (prefix rendering only)" in audit.detail and "the markers and prefix rendering" in audit.detail


def test_the_audit_finds_a_template_not_prefix_preserving(tiny, tmp_path):
    # Earlier turns are rendered differently once a later one follows: prefix rendering cannot place them.
    shifting = RIGHT.replace("{{ m['role'] }}\n", "{{ m['role'] }}{{ '*' if not loop.last else '' }}\n")
    multi = {"messages": OK["messages"] + [{"role": "user", "content": "tree?"}, {"role": "assistant", "content": "árbol"}]}
    report = inspect_data(jsonl(tmp_path, [multi]), tiny, chat_template=shifting)
    (audit,) = [p for p in report.problems if p.kind == "mask-methods-disagree"]
    assert "not prefix-preserving" in audit.detail


def test_a_template_that_cannot_render_tool_turns_names_them(tiny, tmp_path):
    """TRL's gemma3 refuses a tool role ("roles must alternate"): the row is a tool call dropped, not a template not found."""
    broken = {"messages": [{"role": "assistant", "content": "hi"}, {"role": "assistant", "content": "again"}]}
    report = inspect_data(jsonl(tmp_path, [SHAREGPT_TOOLS, broken, OK]), tiny, chat_template=read_chat_template("gemma3"))
    kinds = {(p.row, p.kind) for p in report.problems if p.row is not None}
    assert (1, "tool-call-dropped") in kinds and (2, "bad-row") in kinds
    assert "get_weather" in next(p.detail for p in report.problems if p.row == 1)


def test_trl_trains_the_tool_call_as_the_mask_does(fresh_tiny):
    from inspector.core.labels.strategies import label_examples

    fe = format_messages(TOOL_CHAT, fresh_tiny.tokenizer, chat_template=read_chat_template("qwen2_5"), tools=TOOLS)
    (trl,) = label_examples("trl", [fe], fresh_tiny.tokenizer, fresh_tiny.model)
    (mask,) = label_examples("mask", [fe], fresh_tiny.tokenizer)
    assert trl.input_ids == mask.input_ids  # TRL was given the row's tools too: the same text
    assert trained_text(trl) == trained_text(mask) and '"get_weather"' in trained_text(trl)


def test_the_audit_finds_a_generation_prompt_the_template_does_not_write(tiny, tmp_path):
    """TRL's prompt/completion split renders the prompt with add_generation_prompt=True: here that is not
    how the template begins the assistant's message, so the split would see another text."""
    odd_prompt = RIGHT.replace("{% if add_generation_prompt %}<s>assistant\n{% endif %}",
                               "{% if add_generation_prompt %}<s>bot\n{% endif %}")
    report = inspect_data(jsonl(tmp_path, [OK]), tiny, chat_template=odd_prompt)
    (audit,) = [p for p in report.problems if p.kind == "mask-methods-disagree"]
    assert "assistant message 2" in audit.detail and "the generation prompt" in audit.detail


def test_each_token_knows_its_message_s_role_and_a_tool_call_is_a_call(tiny):
    from inspector.core.data.chat_format import add_special_tokens
    from inspector.core.data.roles import token_roles
    from inspector.core.labels.strategies import encode

    tok = tiny.tokenizer
    fe = format_messages(TOOL_CHAT, tok, chat_template=read_chat_template("qwen2_5"), tools=TOOLS)
    ids, offsets = encode(fe, tok)
    roles = token_roles(fe, offsets, tok)
    assert roles is not None and len(roles) == len(ids)
    lab = label_example("mask", fe, tok)
    by_role: dict[str, str] = {}
    for row, role in zip(lab.rows, roles):
        by_role[role] = by_role.get(role, "") + row.text
    assert "get_weather" in by_role["tool_call"] and "Paris" in by_role["tool_call"]
    assert "sunny" in by_role["tool_result"] and "weather␣in␣Paris" in by_role["user"]
    assert "It␣is␣sunny" in by_role["assistant"]
    # The call's tokens are trained, the tool's result is not.
    assert all(not r.masked for r, role in zip(lab.rows, roles) if role == "tool_call" and r.text.strip("␣↵"))
    assert all(r.masked for r, role in zip(lab.rows, roles) if role == "tool_result")
    article = add_special_tokens("\n\n### Human: dog\n\n### Assistant: perro", tok.bos_token, tok.eos_token)
    assert token_roles(article, encode(article, tok)[1], tok) is None  # the article's format: the labels say it all


def test_the_text_shown_of_a_tool_row_names_the_call_and_the_result():
    from inspector.core.data.conversations import to_article_text

    text = to_article_text(TOOL_CHAT)
    assert "### Assistant: [calls get_weather]" in text and "### Human: [tool result] sunny" in text
