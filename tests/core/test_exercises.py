"""Exercises: the starter files, and the check of a user's function against the reference."""

from __future__ import annotations

import pytest
from label_functions import (  # tests/ is on the path
    ARTICLE,
    LAST_ANSWER,
    NO_EOS,
    PADDING,
    PADDING_FROM_IDS,
    RAISES,
    RIGHT,
    WRONG_LENGTH,
    check_code,
    course,
)

from inspector.core.data.tokenizer_variants import tokenizer_adding_bos
from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.errors import InspectorError
from inspector.core.exercises.registry import EXERCISES, exercise_for, find_exercise, starter_text, write_starter
from inspector.core.lessons.model import lessons_dir, load_lessons


def lesson_of(lesson_id):
    lessons = load_lessons()
    n, lesson = next((i + 1, les) for i, les in enumerate(lessons) if les.id == lesson_id)
    return n, lesson


check = check_code  # tests/label_functions.py


def test_the_lessons_with_an_exercise_and_their_starters(tmp_path):
    lessons = course()
    numbers = [i + 1 for i, les in enumerate(lessons) if les.id in EXERCISES]
    assert numbers == [4, 8, 10, 11, 13, 15]
    for ex in EXERCISES.values():
        text = starter_text(ex)
        assert f"def {ex.function}({', '.join(ex.params)}):" in text and "TODO" in text
        assert (lessons_dir() / "exercises" / ex.starter).is_file()  # shipped with the lessons (force-include)
        compile(text, ex.starter, "exec")
    with pytest.raises(InspectorError, match=r"lesson 3 \(.*\) has no exercise. Choose lesson 4, 8, 10, 11, 13 or 15"):
        exercise_for(lessons[2], 3, lessons)
    path = write_starter(EXERCISES["mask"], tmp_path / "ex.py")
    assert path.read_text() == starter_text(EXERCISES["mask"])
    path.write_text("my work")
    with pytest.raises(InspectorError, match="already exists"):
        write_starter(EXERCISES["mask"], path)
    assert path.read_text() == "my work"
    write_starter(EXERCISES["mask"], path, force=True)
    assert "TODO" in path.read_text()


def test_the_one_finder_knows_each_starter_and_refuses_other_files(tmp_path):
    lessons = course()
    for number, lesson in ((i + 1, les) for i, les in enumerate(lessons) if les.id in EXERCISES):
        f = write_starter(EXERCISES[lesson.id], tmp_path / f"{lesson.id}.py")
        found = find_exercise(f, lessons)
        assert found is not None and (found.number, found.lesson, found.exercise) == (number, lesson, EXERCISES[lesson.id])
    plain = tmp_path / "mine.py"
    plain.write_text("def make_labels(example, tokenizer):\n    return example['input_ids']\n")
    not_one = tmp_path / "lesson3.py"
    not_one.write_text('"""Exercise for lesson 3"""\n')  # lesson 3 has no exercise
    assert find_exercise(plain, lessons) is None and find_exercise(not_one, lessons) is None
    assert find_exercise(tmp_path / "missing.py", lessons) is None


def test_the_starters_do_not_pass(tiny, tmp_path):
    for lesson_id, ex in EXERCISES.items():
        report = check(tmp_path, starter_text(ex), tiny, lesson_id)
        assert not report.passed, lesson_id


def test_a_right_function_passes_every_example(tiny, tmp_path):
    report = check(tmp_path, RIGHT, tiny)
    assert report.passed
    names = [r.case.name for r in report.results]
    assert names[:5] == [f"lesson example {i}" for i in range(1, 6)]
    assert any("adds its own bos" in n for n in names) and any("empty answer" in n for n in names)
    assert any("three turns" in n for n in names)
    assert report.results[0].line() == "✓ lesson example 1"
    assert report.text().splitlines()[-1] == "10 of 10 examples pass: all match the reference"


def test_the_articles_function_fails_only_where_the_tokenizer_adds_a_bos(tiny, tmp_path):
    report = check(tmp_path, ARTICLE, tiny)
    failed = [r for r in report.results if not r.passed]
    assert failed and all(r.case.bos_added for r in failed)
    first = failed[0].differences[0]
    assert (first.position, first.expected) == (1, IGNORE_INDEX)  # trained from just after the tokenizer's bos
    assert "position 0 is the tokenizer's own" in failed[0].hint
    assert "position 1 " in failed[0].line()


def test_an_off_by_one_names_the_closing_eos(tiny, tmp_path):
    report = check(tmp_path, NO_EOS, tiny)
    assert not any(r.passed for r in report.results)
    r = report.results[0]
    eos = tiny.tokenizer.eos_token_id
    (d,) = r.differences
    assert (d.token, d.expected, d.got) == ("</s>", eos, IGNORE_INDEX)
    assert r.line() == f"✗ lesson example 1: 1 position differs: position {d.position} '</s>': expected {eos}, got -100"
    assert "closing eos" in r.hint
    two = next(r for r in report.results if r.case.name == "hidden: two turns")
    assert len(two.differences) == 2  # both answers' eos


def test_an_exception_and_a_wrong_return_fail_their_examples_with_the_users_line(tiny, tmp_path):
    report = check(tmp_path, RAISES, tiny)
    r = report.results[0]
    assert not r.passed and r.error.kind == "exception" and r.error.line == 2
    assert r.line().startswith("✗ lesson example 1: label function make_labels: exception at")
    assert "IndexError" in report.text() and 'line 2, in make_labels' in report.text()
    report = check(tmp_path, WRONG_LENGTH, tiny)
    assert all(r.error is not None and r.error.kind == "wrong-return" for r in report.results)
    assert "returned 24 labels for 23 tokens" in report.results[0].line()


def test_exercise_8_is_trls_last_answer_and_the_mask_answer_fails_it(tiny, tmp_path):
    """Exercise 8's reference is the trl strategy (TRL's SFTTrainer asked): only the last answer trained."""
    from inspector.core.data.chat_format import add_special_tokens
    from inspector.core.labels.strategies import label_examples

    ex = EXERCISES["multi-turn"]
    assert ex.needs_model and ex.strategy and ex.compared_with == "trl"
    right = check(tmp_path, LAST_ANSWER, tiny, "multi-turn")
    assert right.passed, right.text()
    assert [r.case.name for r in right.results] == [
        "lesson example", "hidden: one turn", "hidden: three turns",
        "hidden: three turns, a tokenizer that adds its own bos", "hidden: an empty last answer",
    ]
    # Exercise 4's right answer trains every answer: it fails wherever there are two or more.
    mask = check(tmp_path, RIGHT, tiny, "multi-turn")
    assert not mask.passed
    assert [r.case.name for r in mask.results if r.passed] == ["hidden: one turn"]
    _, lesson = lesson_of("multi-turn")
    fe = add_special_tokens(lesson.example, tiny.tokenizer.bos_token, tiny.tokenizer.eos_token)
    (trl,) = label_examples("trl", [fe], tiny.tokenizer, tiny.model)
    first = mask.results[0]
    trained_first = [p for p, (m, t) in enumerate(zip(label_examples("mask", [fe], tiny.tokenizer)[0].labels, trl.labels))
                     if m != t]
    assert [d.position for d in first.differences] == trained_first  # the first answer and its eos
    assert all(d.expected == IGNORE_INDEX and d.got != IGNORE_INDEX for d in first.differences)
    assert first.line().startswith(f"✗ lesson example: {len(trained_first)} positions differ: position {trained_first[0]} ")
    assert "last bos" in first.hint
    # The empty last answer: TRL trains its eos alone.
    empty = next(r for r in right.results if r.case.name == "hidden: an empty last answer")
    assert empty.passed
    # The unedited starter (the one-turn code) passes one turn only.
    starter = check(tmp_path, starter_text(ex), tiny, "multi-turn")
    assert [r.case.name for r in starter.results if r.passed] == ["hidden: one turn"]


def test_exercise_8s_reference_is_the_trl_strategy_on_every_case(tiny, tmp_path):
    """The labels the check expects are the trl strategy's (TRL's collator), case by case, the
    empty last answer training its eos alone."""
    from inspector.core.data.chat_format import ARTICLE_MARKERS, add_special_tokens
    from inspector.core.data.tokenizer_variants import TokenizerVariant, variant_of
    from inspector.core.labels.strategies import label_examples

    ex = EXERCISES["multi-turn"]
    _, lesson = lesson_of("multi-turn")
    rows = ex.kind.build_cases(lesson, tiny.model, tiny.tokenizer, ARTICLE_MARKERS, model_name="tiny", device="cpu")
    cases = [*ex.kind.lesson_cases(lesson), *ex.kind.hidden_cases]
    tok = tiny.tokenizer
    for case, (ids, labels) in zip(cases, rows, strict=True):
        t = variant_of(tok, TokenizerVariant.ADDS_BOS) if case.bos_added else tok
        fe = add_special_tokens(case.text, tok.bos_token, tok.eos_token)
        (trl,) = label_examples("trl", [fe], t, tiny.model)
        assert (ids, labels) == (trl.input_ids, trl.labels), case.name
        last_bos = max(p for p, i in enumerate(ids) if i == tok.bos_token_id)
        assert labels == [IGNORE_INDEX] * (last_bos + 1) + ids[last_bos + 1:], case.name
    *_, (ids, labels) = rows
    assert [x for x in labels if x != IGNORE_INDEX] == [tok.eos_token_id]  # an empty last answer: its eos alone


def test_the_padding_exercise(tiny, tmp_path):
    ex = EXERCISES["eos-padding"]
    starter = check(tmp_path, starter_text(ex), tiny, "eos-padding")
    r = starter.results[0]
    assert not r.passed and [d.token for d in r.differences] == ["</s>"]  # the eos that ends the text
    assert "run of eos at the end of the row" in r.hint
    two = next(r for r in starter.results if r.case.name == "hidden: two turns, padded")
    assert [d.token for d in two.differences] == ["</s>", "</s>"]  # the first answer's eos too
    # No padding, but pad == eos still: the row's one eos is the text's, and the starter masks it.
    unpadded = next(r for r in starter.results if r.case.name == "hidden: not padded")
    assert [d.token for d in unpadded.differences] == ["</s>"] and "run of eos" in unpadded.hint
    assert not any(r.passed for r in starter.results)
    right = check(tmp_path, PADDING_FROM_IDS, tiny, "eos-padding")
    assert right.passed, right.text()
    assert len(right.results) == 9 and any(r.case.name == "hidden: not padded" for r in right.results)
    # The attention_mask is withheld: a function that reads it fails with the user's KeyError, said once.
    by_mask = check(tmp_path, PADDING, tiny, "eos-padding")
    assert not any(r.passed for r in by_mask.results)
    assert all(r.error is not None and r.error.message == "KeyError: 'attention_mask'" for r in by_mask.results)
    text = by_mask.text()
    assert text.count("Traceback (your code only)") == 1 and "✗ 9 examples (lesson example 1, padded," in text
    assert "line 3: KeyError: 'attention_mask'" in text
    assert text.count("hint: this exercise's example has no 'attention_mask'") == 1
    # The mask labels are not what this exercise asks: the prompt is kept here.
    assert not check(tmp_path, RIGHT, tiny, "eos-padding").passed


def test_a_tokenizer_adding_bos(tiny, tiny_bos):
    tok = tokenizer_adding_bos(tiny.tokenizer)
    assert tok is not tiny.tokenizer
    plain = tiny.tokenizer("hola")["input_ids"]
    assert tok("hola")["input_ids"] == [tiny.tokenizer.bos_token_id, *plain]
    assert tiny.tokenizer("hola")["input_ids"] == plain  # the original is untouched
    assert tokenizer_adding_bos(tiny_bos.tokenizer) is tiny_bos.tokenizer  # it adds one already
