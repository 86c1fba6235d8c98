"""The article's add_special_tokens, turn by turn, and the spans the mask strategy trains."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import (
    ARTICLE_EXAMPLES,
    TurnMarkers,
    add_special_tokens,
    article_text,
    holdout_text,
    split_turns,
)
from inspector.core.errors import InspectorError


def test_article_example_gets_the_articles_special_tokens():
    fe = add_special_tokens(ARTICLE_EXAMPLES[0], "<s>", "</s>")
    assert fe.text == '\n\n### Human: How do you say "dog" in Spanish?\n\n### Assistant:<s> perro</s>'
    (start, end), = fe.answer_spans
    assert fe.text[start:end] == " perro</s>"
    assert fe.prompt.endswith("### Assistant:<s>")
    assert fe.completion == " perro</s>"


def test_multi_turn_puts_eos_before_every_later_human_turn_and_trains_each_answer():
    text = "\n\n### Human: hi\n\n### Assistant: hola\n\n### Human: dog\n\n### Assistant: perro"
    fe = add_special_tokens(text, "<s>", "</s>")
    assert fe.text == (
        "\n\n### Human: hi\n\n### Assistant:<s> hola</s>\n\n### Human: dog\n\n### Assistant:<s> perro</s>"
    )
    assert [fe.text[a:b] for a, b in fe.answer_spans] == [" hola</s>", " perro</s>"]
    # TRL's prompt/completion split: everything up to the last bos is prompt.
    assert fe.completion == " perro</s>"
    assert " hola</s>" in fe.prompt


def test_preamble_and_trailing_human_turn_are_not_trained():
    text = "System: be brief.\n\n### Human: hi\n\n### Assistant: hola\n\n### Human: thanks"
    fe = add_special_tokens(text, "<s>", "</s>")
    assert fe.text.startswith("System: be brief.</s>\n\n### Human: hi")
    assert fe.text.endswith("### Human: thanks</s>")
    assert [fe.text[a:b] for a, b in fe.answer_spans] == [" hola</s>"]


def test_generation_prompt_ends_at_the_answers_bos():
    fe = add_special_tokens(article_text("good"), "<bos>", "<eos>", final_eos=False)
    assert fe.text.endswith("### Assistant:<bos>")
    assert fe.answer_spans == ((len(fe.text), len(fe.text)),)


def test_bos_equal_to_eos_still_gives_exact_spans():
    fe = add_special_tokens(ARTICLE_EXAMPLES[1], "<|endoftext|>", "<|endoftext|>")
    (a, b), = fe.answer_spans
    assert fe.text[a:b] == " agua<|endoftext|>"


def test_text_without_assistant_turn_is_a_clear_error():
    with pytest.raises(InspectorError, match="no assistant turn") as exc:
        add_special_tokens("\n\n### Human: hello there", "<s>", "</s>")
    # The hint shows the format with its newlines, as escapes on one line.
    assert "'\\n\\n### Human: question\\n\\n### Assistant: answer'" in str(exc.value)


def test_model_without_bos_is_a_clear_error():
    with pytest.raises(InspectorError, match="has no bos token"):
        add_special_tokens(ARTICLE_EXAMPLES[0], None, "</s>", model_name="m")


def test_custom_template():
    t = TurnMarkers("<user>", "<bot>")
    fe = add_special_tokens("<user> hi<bot> hola", "[B]", "[E]", t)
    assert fe.text == "<user> hi<bot>[B] hola[E]"
    assert [t.role for t in split_turns("<user> hi<bot> hola", t)] == ["human", "assistant"]


def test_overlapping_markers_are_refused():
    with pytest.raises(InspectorError, match="overlap"):
        TurnMarkers("### A", "### A:")


@pytest.mark.parametrize(
    ("holdout", "expected"),
    [
        ("good", '\n\n### Human: How do you say "good" in Spanish?\n\n### Assistant:'),
        ("What is 2+2?", "\n\n### Human: What is 2+2?\n\n### Assistant:"),
        ("\n\n### Human: x\n\n### Assistant:", "\n\n### Human: x\n\n### Assistant:"),
    ],
)
def test_holdout_text(holdout, expected):
    assert holdout_text(holdout) == expected


def test_empty_holdout_is_refused():
    with pytest.raises(InspectorError, match="empty"):
        holdout_text("  ")
