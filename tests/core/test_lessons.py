"""The shipped lessons load, and a broken lesson file names the file and the key."""

from __future__ import annotations

import pytest

from inspector.core.chat import ARTICLE_TEMPLATE, add_special_tokens
from inspector.core.errors import InspectorError
from inspector.core.labels import STRATEGIES
from inspector.core.lessons import VIEWS, Lesson, lessons_dir, load_lessons, parse_lesson

GOOD = """---
id: demo
title: A demo
view: labels
strategy: mask
example: "\\n\\n### Human: hi\\n\\n### Assistant: hola"
epochs: 2
---
# Demo

Some prose.
"""


def test_every_shipped_lesson_loads_with_its_fields():
    lessons = load_lessons()
    assert [lesson.id for lesson in lessons][:5] == ["labels", "mask", "trl", "training", "predictions"]
    assert len({lesson.id for lesson in lessons}) == len(lessons)
    for lesson in lessons:
        assert isinstance(lesson, Lesson)
        assert lesson.title and lesson.body.strip()
        assert lesson.view in VIEWS and lesson.strategy in STRATEGIES
        assert "TODO" not in lesson.body and "lorem" not in lesson.body.lower()
        assert lesson.body.count("\n\n") >= 2, f"{lesson.source} should have a few paragraphs"
        if lesson.example is not None:  # the example is a chat text the app can format
            fe = add_special_tokens(lesson.example, "<s>", "</s>", ARTICLE_TEMPLATE)
            assert fe.answer_spans


def test_the_lessons_cover_the_three_views():
    by_id = {lesson.id: lesson for lesson in load_lessons()}
    assert by_id["mask"].view == "labels" and by_id["mask"].strategy == "mask"
    assert by_id["trl"].view == "labels" and by_id["trl"].strategy == "trl"
    assert by_id["trl"].example.count("### Assistant:") == 2  # multi-turn: TRL trains only the last answer
    assert by_id["training"].view == "training"
    assert by_id["predictions"].view == "predictions"


def test_lessons_are_found_in_the_checkout():
    assert any(f.name == "01-labels.md" for f in lessons_dir().iterdir())


def test_a_good_lesson_parses():
    lesson = parse_lesson(GOOD, "99-demo.md")
    assert lesson == Lesson(
        id="demo",
        title="A demo",
        view="labels",
        strategy="mask",
        body="# Demo\n\nSome prose.\n",
        example="\n\n### Human: hi\n\n### Assistant: hola",
        epochs=2,
        source="99-demo.md",
    )


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda t: t.replace("view: labels\n", ""), "'view'"),
        (lambda t: t.replace("id: demo\n", ""), "'id'"),
        (lambda t: t.replace("view: labels", "view: charts"), "'view'"),
        (lambda t: t.replace("strategy: mask", "strategy: magic"), "'strategy'"),
        (lambda t: t.replace("epochs: 2", "epochs: zero"), "'epochs'"),
        (lambda t: t.replace("epochs: 2", "colour: red"), "'colour'"),
        (lambda t: t.replace("title: A demo", "title: [1, 2]"), "'title'"),
    ],
)
def test_a_bad_front_matter_names_the_file_and_the_key(change, key):
    with pytest.raises(InspectorError) as info:
        parse_lesson(change(GOOD), "07-broken.md")
    assert "07-broken.md" in str(info.value)
    assert key in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["# no front matter\n", "---\nid: x\n", "---\nid: [unclosed\n---\nbody\n", "---\n- a list\n---\nbody\n"],
)
def test_a_malformed_file_names_the_file(text):
    with pytest.raises(InspectorError, match="07-broken.md"):
        parse_lesson(text, "07-broken.md")


def test_duplicate_ids_are_refused(tmp_path):
    (tmp_path / "01-a.md").write_text(GOOD)
    (tmp_path / "02-b.md").write_text(GOOD)
    with pytest.raises(InspectorError, match="02-b.md.*'id'"):
        load_lessons(tmp_path)
