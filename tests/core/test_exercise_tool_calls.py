"""Exercise 15: `final_answer_labels`, the final answer after the tools, checked on conversations
rendered at check time through qwen3_training and glm4moe_training."""

from __future__ import annotations

from label_functions import (  # tests/ is on the path
    AFTER_THE_TOOLS,
    FINAL_ANSWER,
    LAST_TURN,
    NO_FINAL_RAISES,
    NO_REASONING,
    check_code,
    course,
)

from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.exercises.final_answer import place
from inspector.core.exercises.registry import EXERCISES, find_exercise, starter_text, write_starter
from inspector.core.exercises.tool_conversations import CONVERSATIONS, FAMILIES, build_cases
from inspector.core.labels.process.protocol import FunctionKind


def check(tmp_path, code, lm):
    return check_code(tmp_path, code, lm, "tool-calls")


def _oracle(template: str, message: dict) -> str:
    """The final answer's generation block as each template's source writes it (read from TRL's
    qwen3_training.jinja and glm4moe_training.jinja), for these conversations (one user message
    before the answer's reasoning, ASCII text)."""
    reasoning, content = message.get("reasoning_content", ""), message["content"]
    if template == "qwen3_training":
        return f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{content.lstrip(chr(10))}<|im_end|>\n"
    assert template == "glm4moe_training"
    return f"\n<think>{reasoning.strip()}</think>\n{content.strip()}<|user|>"


def test_the_reference_is_the_final_answers_generation_block_through_both_families(tiny):
    """The labels the check expects (the mask strategy under the core's `final` policy) train the
    final answer's whole generation block, end-of-turn included, and nothing else; nothing where
    every assistant message calls a tool."""
    tok = tiny.tokenizer
    cases = build_cases(tok)
    assert len(cases) == len(CONVERSATIONS) * len(FAMILIES) == 16
    assert {c.template for c in cases} == {"qwen3_training", "glm4moe_training"}
    assert [c.case.hidden for c in cases[:2]] == [False, False] and all(c.case.hidden for c in cases[2:])
    for c in cases:
        trained = [p for p, x in enumerate(c.expected) if x != IGNORE_INDEX]
        assert all(c.expected[p] == c.input_ids[p] for p in trained)
        if c.final is None:
            assert trained == [] and "no final answer" in c.case.name
            continue
        assert trained == list(range(trained[0], trained[-1] + 1)), c.case.name  # one block
        assert tok.decode([c.input_ids[p] for p in trained]) == _oracle(c.template, c.messages[c.final]), c.case.name
        assert {c.fields["message"][p] for p in trained} == {c.final}
        assert c.closing and c.closing[-1] == trained[-1]  # the end-of-turn closes the block
        # The function's assistant_mask is every generation block: the final one among them.
        assert all(c.fields["assistant_mask"][p] for p in trained)
        assert sum(c.fields["assistant_mask"]) > len(trained) or "no tools" in c.case.name
    last_calls = [c for c in cases if "last assistant message calls a tool" in c.case.name]
    assert [c.final for c in last_calls] == [1, 1]  # "Hola.", before the question whose call is the last message


def test_the_reference_solution_passes_every_conversation(tiny, tmp_path):
    report = check(tmp_path, FINAL_ANSWER, tiny)
    assert report.passed, report.text()
    assert report.text().splitlines()[-1] == "16 of 16 conversations pass: all match the reference"
    assert report.results[0].line() == "✓ example: a tool call, then the answer (qwen3_training)"


def test_the_starter_trains_every_turn_and_fails_with_the_tool_call_named(tiny, tmp_path):
    report = check(tmp_path, starter_text(EXERCISES["tool-calls"]), tiny)
    assert [r.case.name for r in report.results if r.passed] == [
        "hidden: an answer with no tools (qwen3_training)", "hidden: an answer with no tools (glm4moe_training)"]
    first = report.results[0]
    d = first.differences[0]
    assert d.expected == IGNORE_INDEX and d.got != IGNORE_INDEX
    assert d.where == f"position {d.position} (message 2, assistant, which calls a tool: its reasoning)"
    assert first.line().startswith(f"✗ example: a tool call, then the answer (qwen3_training): {len(first.differences)} "
                                   f"positions differ: position {d.position} (message 2, assistant, which calls a tool")
    assert "the final answer is the last assistant message that calls no tool" in first.hint
    none = next(r for r in report.results if "no final answer" in r.case.name)
    assert "there is no final answer yet, so nothing is trained" in none.hint


def test_a_planted_bug_training_the_tool_results_is_caught_and_named(tiny, tmp_path):
    report = check(tmp_path, AFTER_THE_TOOLS, tiny)
    assert not any(r.passed for r in report.results)
    with_tools = [r for r in report.results if "no tools" not in r.case.name and "last assistant" not in r.case.name]
    for r in with_tools:
        d = r.differences[0]
        assert "the tool's result" in d.where and d.expected == IGNORE_INDEX, r.line()
        assert "tool-result-trained" in r.hint
    assert "position 0 (message 1, user)" in next(r for r in report.results if "no tools" in r.case.name).line()


def test_the_last_turn_is_not_the_final_answer_when_it_calls_a_tool(tiny, tmp_path):
    report = check(tmp_path, LAST_TURN, tiny)
    failed = [r for r in report.results if not r.passed]
    assert [r.case.name.split(" (")[0] for r in failed] == [
        "hidden: the last assistant message calls a tool"] * 2 + ["hidden: every assistant message calls a tool"] * 2
    d = failed[0].differences[0]
    assert d.got == IGNORE_INDEX and "message 2, assistant, the final answer" in d.where
    assert "the final answer is message 2: the last assistant message (message 4) calls a tool" in failed[0].hint


def test_a_masked_reasoning_and_an_error_on_no_final_answer_say_why(tiny, tmp_path):
    report = check(tmp_path, NO_REASONING, tiny)
    assert not any(r.passed for r in report.results if r.case.name.split(" (")[0] != "hidden: every assistant "
                   "message calls a tool")
    r = report.results[0]
    assert "its reasoning" in r.differences[0].where and "the final answer's reasoning is masked" in r.hint
    report = check(tmp_path, NO_FINAL_RAISES, tiny)
    errors = [r for r in report.results if r.error is not None]
    assert [r.case.name for r in errors] == [c.case.name for c in build_cases(tiny.tokenizer) if c.final is None]
    assert "ValueError" in errors[0].error.message and "return -100 for every token" in errors[0].hint
    assert sum(r.passed for r in report.results) == 14


def test_places_in_words(tiny):
    c = next(c for c in build_cases(tiny.tokenizer) if c.case.name.startswith("hidden: a tool call with reasoning (qwen3"))
    roles = c.fields["roles"]
    where = {place(c, p) for p in range(len(roles))}
    assert {"message 2, assistant: its call of get_time", "message 3, tool: the tool's result",
            "message 4, assistant, the final answer: its reasoning", "message 4, assistant, the final answer",
            "message 4, assistant, the final answer: its end-of-turn", "message 1, user",
            "message 2, assistant, which calls a tool: its reasoning"} <= where
    assert "message 4, assistant, the final answer: the template's text before it" in where  # <|im_start|>assistant


def test_the_exercise_is_found_by_its_starter_and_named_as_its_kind(tmp_path):
    ex = EXERCISES["tool-calls"]
    assert ex.function == "final_answer_labels" and ex.function_kind is FunctionKind.FINAL_ANSWER_LABELS
    assert not ex.strategy and not ex.needs_model and ex.unit == "conversations"
    lessons = course()
    number = next(i + 1 for i, les in enumerate(lessons) if les.id == "tool-calls")
    f = write_starter(ex, tmp_path / ex.file_name(number))
    assert f.name == "exercise_15_tool_calls.py" and number == 15
    found = find_exercise(f, lessons)
    assert found is not None and (found.number, found.exercise) == (15, ex)


def test_the_labs_host_checks_the_file_on_every_save_and_never_trains_it(tiny, tmp_path, monkeypatch):
    """What the app does with `--labels-from exercise_15_tool_calls.py`: the file is followed as
    `final_answer_labels` (not a strategy), and each save is checked again."""
    import contextlib

    from inspector.cli.app import exercise_reloader
    from inspector.core.data.chat_format import ARTICLE_MARKERS
    from inspector.core.lab.label_host import LabelHost
    from inspector.core.lessons import model

    lessons = course()
    monkeypatch.setattr(model, "load_lessons", lambda *a, **k: lessons)
    file = write_starter(EXERCISES["tool-calls"], tmp_path / "exercise_15_tool_calls.py")
    reloader = exercise_reloader(str(file))
    assert reloader is not None and not reloader.strategy and reloader.kind is FunctionKind.FINAL_ANSWER_LABELS
    reloader.load()
    host = LabelHost(reloader, exercise=find_exercise(file, lessons))
    assert host.custom is None and host.function is not None  # checked, not a custom strategy

    def trainer_turn():
        raise AssertionError("exercise 15 needs no trainer")

    report = host.check(tiny, ARTICLE_MARKERS, trainer_turn)
    assert report is not None and report.number == 15 and sum(r.passed for r in report.results) == 2
    file.write_text(file.read_text().split("def final_answer_labels")[0] + FINAL_ANSWER.lstrip())
    assert host.reload(tiny, []) is not None  # the save is seen
    report = host.check(tiny, ARTICLE_MARKERS, contextlib.nullcontext)
    assert report.passed, report.text()
