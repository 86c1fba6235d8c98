"""A lesson's facts above its prose: `describes:` (the library versions the prose is true of) beside
the installed ones, `live:` (how long it trains live, measured), and what prepare records for it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from inspector.core.errors import InspectorError
from inspector.core.lessons import facts
from inspector.core.lessons.model import LiveTime, load_lessons, parse_lesson

ROOT = Path(__file__).resolve().parents[2]

LESSON = """---
id: demo
title: A demo
view: training
strategy: mask
demo: eos-padding
{extra}
---
# Demo

Some prose.
"""


def lesson(extra: str = ""):
    return parse_lesson(LESSON.format(extra=extra), "99-demo.md")


def test_describes_and_live_parse():
    got = lesson('describes: {trl: "1.16", transformers: "5.25"}\n'
                 'live: {seconds: 95, demo: 40, setup: "Gemma 3 270M, 2-core CPU", date: 2026-12-07}')
    assert got.describes == (("trl", "1.16"), ("transformers", "5.25"))
    assert got.live == LiveTime(95.0, "Gemma 3 270M, 2-core CPU", "2026-12-07", 40.0)
    assert lesson().describes == () and lesson().live is None


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("describes: {trl: 1.16}", "write it in quotes"),  # YAML would read 1.10 as 1.1
        ('describes: {peft: "0.13"}', "name only trl, transformers"),
        ('describes: {trl: "one"}', "major.minor"),
        ('describes: "1.16"', "mapping of libraries"),
        ("live: 35", "must be a mapping"),
        ('live: {seconds: 35, setup: "x"}', "lacks 'date'"),
        ('live: {seconds: -1, setup: "x", date: 2026-12-07}', "'seconds' is -1"),
        ('live: {seconds: 35, setup: "x", date: 2026-12-07, minutes: 1}', "unknown setting 'minutes'"),
        ('live: {seconds: 35, demo: 50, setup: "x", date: 2026-12-07}', "more than 'seconds'"),
        ('live: {seconds: 35, setup: "x", date: yesterday}', "'date' is 'yesterday'"),
        ('live: {seconds: 35, setup: "", date: 2026-12-07}', "'setup'"),
    ],
)
def test_a_bad_describes_or_live_names_the_file_and_what_to_write(extra, words):
    with pytest.raises(InspectorError) as info:
        lesson(extra)
    assert "99-demo.md" in str(info.value) and words.lower() in str(info.value).lower()


def test_a_differing_major_minor_is_a_warning_in_words(monkeypatch):
    installed = {"trl": "1.16.0", "transformers": "5.25.0"}
    monkeypatch.setattr(facts, "installed_version", lambda lib: installed.get(lib))
    two = lesson('describes: {trl: "1.16", transformers: "5.25"}')
    assert facts.version_lines(facts.version_notes(two)) == ["describes TRL 1.16, transformers 5.25 · installed 1.16.0, 5.25.0"]
    assert facts.version_lines(facts.version_notes(two), form="narrow") == ["TRL 1.16 = 1.16.0"]
    assert facts.version_lines(facts.version_notes(two), form="pane") == [  # the wide pane: 39 columns a line
        "describes TRL 1.16 · installed 1.16.0", "transformers 5.25 · installed 5.25.0"]
    installed["trl"] = "1.17.2"  # a patch release never warns, a minor one does
    notes = facts.version_notes(two)
    assert [n.differs for n in notes] == [True, False]
    wide = facts.version_lines(notes)
    assert wide == ["describes transformers 5.25 · installed 5.25.0",
                    "⚠ TRL 1.17.2 installed: this lesson describes 1.16, details may differ"]
    assert facts.version_lines(notes, form="narrow") == ["⚠ TRL 1.17.2, lesson 1.16"]
    del installed["trl"]
    assert "⚠ TRL is not installed" in facts.version_lines(facts.version_notes(two))[-1]
    assert facts.major_minor("1.16.0.dev0") == (1, 16) == facts.major_minor("1.16")


def test_the_installed_versions_are_read_without_importing_them():
    import subprocess
    import sys
    from importlib.metadata import version

    assert facts.installed_version("trl") == version("trl")
    assert facts.installed_version("no-such-distribution-here") is None
    # (Loading the shipped lessons imports TRL to check their batch settings: a lesson without any here.)
    text = LESSON.format(extra='describes: {trl: "1.16"}')
    code = ("import sys; from inspector.core.lessons.model import parse_lesson; "
            "from inspector.core.lessons.facts import header_lines; "
            f"print(header_lines(parse_lesson({text!r}), 3)); "
            "print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    shown, imported = done.stdout.strip().splitlines()
    assert "describes TRL 1.16 · installed" in shown and imported == "[]"


def test_the_speaker_line_says_how_long_and_what_is_prepared():
    measured = lesson('live: {seconds: 95, demo: 40, setup: "Gemma 3 270M, 2-core CPU", date: 2026-12-07}')
    none = facts.PreparedState(("mask run", "demo eos-padding"), ("mask run", "demo eos-padding"))
    assert facts.speaker_lines(measured, 10, prepared=none) == [
        "live ≈ 95 s (Gemma 3 270M, 2-core CPU)",
        "prepared run: none: causallm-inspect prepare --lessons 10",
    ]
    some = facts.PreparedState(none.needed, ("mask run",), 1.8e9)
    assert facts.speaker_lines(measured, 10, prepared=some)[1] == (
        "prepared run: mask run missing: causallm-inspect prepare --lessons 10")
    done = facts.PreparedState(none.needed, (), 1.8e9)
    assert facts.speaker_lines(measured, 10, prepared=done)[1] == f"prepared run: yes, recorded {done.date}"
    # The demo ran live here in 50 s: its measured 40 s are replaced.
    assert facts.speaker_lines(measured, 10, measured=50.0)[0] == "live ≈ 105 s, its demo as it ran here"
    only_demo = lesson('live: {seconds: 40, setup: "Gemma 3 270M, 2-core CPU", date: 2026-12-07}')
    assert facts.speaker_lines(only_demo, 10, measured=12.4)[0] == "live: 12 s, as it ran here"
    assert facts.speaker_lines(lesson(), 10) == ["live: not measured (scripts/lesson_times.py)"]
    # The wide pane's: the prepared line within its 39 columns, the command short.
    pane = [facts.speaker_lines(measured, 10, prepared=state, form="pane")[1] for state in (none, some, done)]
    assert pane == ["prepared: none · prepare --lessons 10", "prepared: some · prepare --lessons 10",
                    f"prepared: yes, recorded {done.date}"]
    assert all(len(line) <= 39 for line in pane)
    # The narrow pane's line: one, 17 columns at most.
    for state in (None, none, some, done):
        for shown, ran in ((measured, None), (measured, 500.0), (only_demo, 12.0), (only_demo, 599.0), (lesson(), None)):
            (line,) = facts.speaker_lines(shown, 10, prepared=state, form="narrow", measured=ran)
            assert len(line) <= 17, line
    assert facts.speaker_lines(measured, 10, prepared=none, form="narrow") == ["live 95 s ⟲ no"]
    assert facts.speaker_lines(only_demo, 10, prepared=done, form="narrow", measured=12.0) == ["took 12 s ⟲ yes"]


def test_what_a_shipped_lesson_trains_and_records():
    lessons = {lesson.id: lesson for lesson in load_lessons()}
    assert facts.lesson_bursts(lessons["copy"]) == ("copy",)
    assert facts.lesson_bursts(lessons["mask"]) == ("copy", "mask")
    assert facts.lesson_bursts(lessons["eos-padding"]) == ("mask",)  # its view trains mask beside the demo
    assert facts.prepared_demo(lessons["eos-padding"]) == "eos-padding"
    assert facts.prepared_demo(lessons["shift"]) is None  # a quick demo: never stored
    assert [lid for lid, lesson in lessons.items() if facts.trains(lesson)] == [
        "copy", "mask", "chat-template", "eos-padding", "packing", "truncation", "weights", "tool-calls"]
    for lid, shipped in lessons.items():  # each lesson that trains says how long it takes live
        assert (shipped.live is not None) == facts.trains(shipped), f"{lid}: run scripts/lesson_times.py --write"
    described = {lid: dict(lesson.describes) for lid, lesson in lessons.items() if lesson.describes}
    assert sorted(described) == sorted(["mask", "trl", "chat-template", "template-pitfall", "eos-padding", "packing",
                                        "truncation", "weights", "reasoning", "tool-calls"])
    assert "transformers" in described["weights"]


def test_the_timing_script_rewrites_the_front_matter_only():
    spec = importlib.util.spec_from_file_location("lesson_times", ROOT / "scripts" / "lesson_times.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    import datetime

    text = LESSON.format(extra='live: {seconds: 1, setup: "old", date: 2020-01-01}\ncode: x.py').replace("code: x.py\n", "")
    line = script.live_line({"bursts": 54.6, "demo": 40.2}, 'Gemma 3 270M, 2-core "CPU"', datetime.date(2026, 12, 7))
    out = script.with_live(text, line)
    assert out.split("---", 2)[2] == text.split("---", 2)[2]  # the body untouched
    assert out.count("live:") == 1
    assert parse_lesson(out, "x.md").live == LiveTime(95.0, 'Gemma 3 270M, 2-core "CPU"', "2026-12-07", 40.0)
    assert parse_lesson(script.with_live(LESSON.format(extra=""), line), "x.md").live.seconds == 95  # added
    assert "demo" not in script.live_line({"demo": 12.0}, "x", datetime.date(2026, 12, 7))
