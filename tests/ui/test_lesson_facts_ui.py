"""The lines above a lesson's prose: the TRL version it describes beside the installed one, and for a
lesson that trains, how long it takes live and whether a prepared run exists; short in the narrow pane."""

from __future__ import annotations

from importlib.metadata import version

from ui_helpers import FAST_LR, demo_settled, started, wait_until

from inspector.app import InspectorApp
from inspector.core.lessons import facts as core_facts
from inspector.core.lessons.facts import seconds_text


def make_app(tiny_path) -> InspectorApp:
    return InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR)


def lesson_index(app, lesson_id: str) -> int:
    return [lesson.id for lesson in app.lessons].index(lesson_id)


def checked(facts) -> bool:
    """The Lab was asked whether a prepared run exists (a worker), and the answer is on show."""
    return any(line.startswith("prepared:") for line in facts.lines)


async def test_the_lesson_pane_shows_the_version_and_the_speakers_lines(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        main = app.main
        facts = main.lesson_facts
        assert not facts.display and facts.lines == []  # lesson 1 describes no version and trains nothing
        app.goto_lesson(lesson_index(app, "eos-padding"))
        await wait_until(pilot, lambda: checked(facts), what="the prepared-run check")
        await pilot.pause()
        lesson = app.lessons[lesson_index(app, "eos-padding")]
        assert facts.lines == [
            f"describes TRL 1.16 · installed {version('trl')}",
            f"live ≈ {seconds_text(lesson.live.seconds)} ({lesson.live.setup})",
            "prepared: none · prepare --lessons 10",
        ]
        assert "prepared run: none: causallm-inspect prepare --lessons 10" in str(facts.tooltip)  # in full on hover
        assert facts.display and facts.region.bottom <= main.query_one("#lesson-scroll").region.y  # above the prose
        assert not facts.query_one("#facts-versions").has_class("-differs")
        # A demo run live here (chat templates: it builds TRL trainers when the lesson opens): its own time.
        app.goto_lesson(lesson_index(app, "chat-template"))
        await wait_until(pilot, lambda: demo_settled(app) and any("as it ran here" in x for x in facts.lines),
                         timeout=60, what="the demo's time")
        assert facts.lines[1].startswith("live: ") and facts.lines[1].endswith(" s, as it ran here")
        # The narrow pane at 80x24: the short form, each line on one line of the pane.
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert main.pane == "narrow"
        assert facts.lines[0] == f"TRL 1.16 = {version('trl')}" and facts.lines[1].startswith("took ")
        assert facts.size.height == len(facts.lines) == 2  # nothing wraps
        assert app.errors == []


async def test_an_installed_version_that_differs_is_a_warning_in_words(tiny_path, monkeypatch):
    monkeypatch.setattr(core_facts, "installed_version", lambda library: "1.99.0")
    app = make_app(tiny_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        app.goto_lesson(lesson_index(app, "trl"))
        await pilot.pause()
        facts = app.main.lesson_facts
        assert facts.lines == ["⚠ TRL 1.99.0 installed: this lesson describes 1.16, details may differ"]
        assert facts.query_one("#facts-versions").has_class("-differs")  # bold, and the theme's warning colour
        assert app.errors == []
