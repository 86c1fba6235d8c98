"""For a speaker: `prepare --lessons` records what the chosen lessons train, and `lesson N --plain`
prints the lines the app shows above the prose (versions described and installed, the live time,
whether a prepared run exists)."""

from __future__ import annotations

import json
import time
from importlib.metadata import version

import pytest

from inspector.cli import main

NO_MODEL = "/nonexistent/model-folder"  # a command that loads it fails on it: these must not get that far


@pytest.mark.parametrize(("wanted", "named"), [("3,16", "lesson 16"), ("copy,nope", "lesson 'nope'"), (",", "no lesson")])
def test_a_bad_lesson_in_prepare_is_one_line_naming_it_and_the_valid_ones(capsys, wanted, named):
    assert main(["prepare", "--lessons", wanted, "--model", NO_MODEL]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--lessons" in err and named in err
    assert "1 to 15" in err and (wanted == "," or "eos-padding" in err)  # the valid ones
    assert main(["prepare", "--lessons", "3", "--strategies", "copy", "--model", NO_MODEL]) == 2
    assert "Give one of them" in capsys.readouterr().err


def test_lessons_with_nothing_to_prepare_say_so_in_one_line_and_load_nothing(capsys):
    assert main(["prepare", "--lessons", "1,shift,5", "--model", NO_MODEL]) == 0
    out, err = capsys.readouterr()
    assert out == "nothing to prepare for lessons 1 (shift), 5 (trl): they train nothing, and what they show is " \
                  "computed when they open\n"
    assert "loading" not in err


def test_prepare_records_only_what_the_chosen_lessons_train(capsys, tiny_path, tiny):
    from inspector.cli.prepare import chosen_lessons, lesson_plan
    from inspector.core.lessons.facts import seconds_text
    from inspector.core.lessons.model import load_lessons

    strategies, demos, idle = lesson_plan(chosen_lessons("1,3,4,5,10", load_lessons()))
    assert strategies == ["copy", "mask"] and [d.demo for d in demos] == ["step-timing", "eos-padding"]
    assert idle.startswith("nothing to prepare for lessons 1 (shift), 5 (trl):")

    assert main(["prepare", "--lessons", "copy,1", "--epochs", "3", "--model", str(tiny_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in out["runs"]] == ["copy"] and out["demos"] == []
    assert out["nothing_to_prepare"].startswith("nothing to prepare for lesson 1 (shift): it trains nothing")
    # The Lab finds it for lesson 3 (copy); lesson 4 (copy and mask, and its demo) lacks some of what it needs.
    from inspector.core.data.chat_format import ARTICLE_EXAMPLES, ARTICLE_MARKERS
    from inspector.core.lab import Lab
    from inspector.core.training.burst import BurstSettings

    lessons = load_lessons()
    with Lab.around(tiny, list(ARTICLE_EXAMPLES), ARTICLE_MARKERS, train_rows=5) as lab:
        copy = lab.prepared_state(lessons[2], BurstSettings(epochs=3))
        mask = lab.prepared_state(lessons[3], BurstSettings(epochs=3))
        longer = lab.prepared_state(lessons[2], BurstSettings(epochs=4))
    assert copy.complete and copy.needed == ("copy run",) and copy.date == time.strftime("%Y-%m-%d")
    assert mask.needed == ("copy run", "mask run", "demo step-timing") and mask.missing == mask.needed[1:]
    assert longer.missing == ("copy run",)  # three epochs stored: a burst of four is not prepared
    # and lesson 3 says so above its prose
    assert main(["lesson", "3", "--plain", "--model", str(tiny_path)]) == 0
    text = capsys.readouterr().out
    head = text.split("\n\n")[1].splitlines()
    live = lessons[2].live  # measured by scripts/lesson_times.py
    assert head[0] == f"live ≈ {seconds_text(live.seconds)} ({live.setup})"
    assert head[1] == f"prepared run: yes, recorded {time.strftime('%Y-%m-%d')}"


def test_lesson_plain_prints_the_versions_it_describes_above_the_prose(capsys, tiny_path):
    assert main(["lesson", "5", "--plain", "--model", str(tiny_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Lesson 5: ") and lines[1] == ""
    assert lines[2] == f"describes TRL 1.16 · installed {version('trl')}" and lines[3] == ""
    assert main(["lesson", "5", "--json", "--model", str(tiny_path)]) == 0
    versions = json.loads(capsys.readouterr().out)["versions"]
    assert versions == [{"library": "trl", "describes": "1.16", "installed": version("trl"), "differs": False}]
