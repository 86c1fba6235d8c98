"""The shipped lessons load, and a broken lesson file names the file and the key."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import ARTICLE_MARKERS, add_special_tokens
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import STRATEGIES
from inspector.core.lessons.demos import DEMOS
from inspector.core.lessons.model import CODE_FOLDER, VIEWS, Lesson, lessons_dir, load_lessons, parse_lesson, read_code

GOOD = """---
id: demo
title: A demo
view: labels
strategy: mask
example: "\\n\\n### Human: hi\\n\\n### Assistant: hola"
epochs: 2
strategies: [copy, mask]
demo: template-pitfall
code: 06-template-pitfall.py
---
# Demo

Some prose.
"""


TRACK = [
    "shift",
    "tokens",
    "copy",
    "mask",
    "trl",
    "chat-template",
    "special-tokens",
    "multi-turn",
    "template-pitfall",
    "eos-padding",
    "packing",
    "truncation",
    "weights",
    "reasoning",
    "tool-calls",
]


def test_every_shipped_lesson_loads_with_its_fields():
    lessons = load_lessons()
    assert [lesson.id for lesson in lessons] == TRACK
    for lesson in lessons:
        assert isinstance(lesson, Lesson)
        assert lesson.title and lesson.body.strip()
        assert lesson.view in VIEWS and lesson.strategy in STRATEGIES
        assert "TODO" not in lesson.body and "lorem" not in lesson.body.lower()
        assert lesson.body.count("\n\n") >= 2, f"{lesson.source} should have a few paragraphs"
        assert lesson.code and read_code(lesson.code).strip(), f"{lesson.source} needs its code"
        assert lesson.demo is None or lesson.demo in DEMOS
        assert set(lesson.trains) <= set(STRATEGIES)
        if lesson.example is not None:  # the example is a chat text the app can format
            fe = add_special_tokens(lesson.example, "<s>", "</s>", ARTICLE_MARKERS)
            assert fe.answer_spans


# About two screens of the 42-column lesson pane; what does not fit goes to docs/lessons/.
MAX_WORDS = 300


@pytest.mark.parametrize("lesson", load_lessons(), ids=lambda lesson: lesson.source)
def test_every_lesson_body_fits_in_two_screens(lesson):
    words = len(lesson.body.split())
    assert words <= MAX_WORDS, f"lesson {lesson.source} ({lesson.id}) has {words} words, over {MAX_WORDS}"


def test_the_track_covers_the_views_and_demos():
    by_id = {lesson.id: lesson for lesson in load_lessons()}
    assert by_id["shift"].view == "labels" and by_id["shift"].strategy == "copy" and by_id["shift"].demo == "shift"
    assert by_id["copy"].view == "training" and by_id["copy"].trains == ("copy",)
    assert by_id["mask"].view == "predictions" and by_id["mask"].trains == ("copy", "mask")
    assert by_id["mask"].demo == "step-timing" and DEMOS["step-timing"].on_demand
    assert by_id["trl"].strategy == "trl" and by_id["trl"].demo == "old-collator"
    assert by_id["multi-turn"].example.count("### Assistant:") == 2  # TRL trains only the last answer
    assert by_id["template-pitfall"].demo == "template-pitfall"
    assert by_id["special-tokens"].demo == "special-tokens"
    assert by_id["chat-template"].demo == "chat-template"
    assert by_id["eos-padding"].demo == "eos-padding" and DEMOS["eos-padding"].covers_view
    assert by_id["packing"].view == "batch" and by_id["packing"].batch_settings["packing_strategy"] == "bfd"
    assert by_id["weights"].view == "batch" and by_id["weights"].batch_world_size == 2
    assert by_id["truncation"].demo == "truncation" and not DEMOS["truncation"].on_demand and DEMOS["truncation"].prepared
    assert by_id["reasoning"].demo == "reasoning" and not DEMOS["reasoning"].prepared  # the tokenizer only
    assert by_id["tool-calls"].demo == "tool-calls" and DEMOS["tool-calls"].prepared  # TRL's SFTTrainer
    # Every demo is used by a lesson, and every lesson has its own code file.
    assert {lesson.demo for lesson in by_id.values()} - {None} == set(DEMOS)
    assert len({lesson.code for lesson in by_id.values()}) == len(by_id)


def test_a_lesson_s_batch_settings_are_kept_in_order():
    text = GOOD.replace("epochs: 2", "batch: {packing: true, max_length: 64, world_size: 2}")
    lesson = parse_lesson(text, "99-demo.md")
    assert lesson.batch == (("packing", True), ("max_length", 64), ("world_size", 2))
    assert lesson.batch_settings == {"packing": True, "max_length": 64} and lesson.batch_world_size == 2
    assert parse_lesson(GOOD, "99-demo.md").batch_world_size == 1


def test_lessons_are_found_in_the_checkout():
    assert any(f.name == "01-shift.md" for f in lessons_dir().iterdir())
    assert (lessons_dir() / CODE_FOLDER / "_common.py").is_file()


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
        strategies=("copy", "mask"),
        demo="template-pitfall",
        code="06-template-pitfall.py",
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
        (lambda t: t.replace("demo: template-pitfall", "demo: magic-trick"), "'demo'"),
        (lambda t: t.replace("code: 06-template-pitfall.py", "code: ../../etc/passwd"), "'code'"),
        (lambda t: t.replace("code: 06-template-pitfall.py", "code: notes.txt"), "'code'"),
        (lambda t: t.replace("strategies: [copy, mask]", "strategies: [copy, magic]"), "'strategies'"),
        (lambda t: t.replace("strategies: [copy, mask]", "strategies: []"), "'strategies'"),
        (lambda t: t.replace("strategies: [copy, mask]", "strategies: copy"), "'strategies'"),
        (lambda t: t.replace("epochs: 2", "batch: [packing]"), "'batch'"),
        (lambda t: t.replace("epochs: 2", "batch: {packing: yes please}"), "'packing'"),
        (lambda t: t.replace("epochs: 2", "batch: {packign: true}"), "'packign'"),
        (lambda t: t.replace("epochs: 2", "batch: {max_length: 0}"), "max_length 0"),
        (lambda t: t.replace("epochs: 2", "batch: {packing_strategy: best}"), "'best'"),
        (lambda t: t.replace("epochs: 2", "batch: {world_size: 0}"), "'world_size'"),
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
    (tmp_path / CODE_FOLDER).mkdir()
    (tmp_path / CODE_FOLDER / "06-template-pitfall.py").write_text("print()\n")
    (tmp_path / "01-a.md").write_text(GOOD)
    (tmp_path / "02-b.md").write_text(GOOD)
    with pytest.raises(InspectorError, match="02-b.md.*'id'"):
        load_lessons(tmp_path)


def test_a_missing_code_file_names_the_lesson_and_the_key(tmp_path):
    (tmp_path / "01-a.md").write_text(GOOD.replace("06-template-pitfall.py", "01-missing.py"))
    (tmp_path / CODE_FOLDER).mkdir()
    with pytest.raises(InspectorError, match="01-a.md.*'code'.*01-missing.py"):
        load_lessons(tmp_path)


def test_a_lesson_conversation_is_shown_through_its_chat_template(tiny):
    """`messages:` and `chat_template:` (lessons 14 and 15): the labels view's example is the
    conversation as the template renders it, roles and all; a bad one names the key."""
    from inspector.core.lab.context import lesson_chat_example, lesson_text

    lesson = next(x for x in load_lessons() if x.id == "reasoning")
    chat = lesson_chat_example(lesson)
    assert chat is not None and chat.messages == lesson.messages and "<think>" in (chat.chat_template or "")

    class Lab:
        added: list = []

        def add_example(self, ex):
            self.added.append(ex)

    lab = Lab()
    assert lesson_text(lesson, lab) == chat.text and lab.added[0].messages == lesson.messages
    head = GOOD.split("---\n")[1]
    for extra, said in (
        ("messages: [{role: user}]\n", "key 'messages'"),
        ("chat_template: qwen3\n", "'chat_template' without 'messages'"),
    ):
        with pytest.raises(InspectorError, match=said):
            parse_lesson(GOOD.replace(head, head + extra), "99-demo.md")
