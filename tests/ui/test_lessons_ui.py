"""Pilot tests of the lesson track in the app: the show-code dialog and the demo panels."""

from __future__ import annotations

from textual.geometry import Region
from textual.widgets import Static
from ui_helpers import FAST_LR, demo_settled, labels_settled, started, wait_until

from inspector.app import InspectorApp
from inspector.screens.code import CodeScreen

SIZE = (120, 40)


def make_app(tiny_path) -> InspectorApp:
    return InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR)


def lesson_index(app, lesson_id: str) -> int:
    return [lesson.id for lesson in app.lessons].index(lesson_id)


async def test_show_code_opens_the_current_lessons_code(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("s")
        assert isinstance(app.screen, CodeScreen)
        code = app.screen.code
        assert "labels = list(input_ids)  # a plain copy" in code  # lesson 1's own lines
        assert f"MODEL = {str(tiny_path)!r}" in code and "import inspector" not in code
        shown = app.screen.query_one("#code-text", Static)
        assert "create_special_mask" in str(shown.render())  # the whole script, highlighted
        assert app.screen.query_one("#code-scroll").scroll_y > 0  # scrolled to the lesson's own lines
        await pilot.press("escape")
        assert not isinstance(app.screen, CodeScreen)
        # Another lesson, from the command palette: its own code.
        app.goto_lesson(lesson_index(app, "special-tokens"))
        await pilot.pause()
        app.main.action_show_code()
        await pilot.pause()
        assert isinstance(app.screen, CodeScreen)
        assert 'tokenizer.add_special_tokens({"additional_special_tokens": [HUMAN, ASSISTANT]})' in app.screen.code
        await pilot.press("s")
        assert not isinstance(app.screen, CodeScreen)


async def test_the_template_pitfall_panel_shows_both_token_lists(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        panel = app.main.demo_panel
        assert panel.display and panel.border_title == "The shift, computed"  # lesson 1 has one too
        await wait_until(pilot, lambda: "model(input_ids, labels=labels).loss" in panel.text, what="the shift")
        app.goto_lesson(lesson_index(app, "template-pitfall"))
        await wait_until(pilot, lambda: "The first that fails" in panel.text, what="the pitfall panel")
        text = panel.text
        assert "The first that fails: 'Assistant:'" in text
        assert "alone:      As(266) sistan(288) t(87) :(29)" in text
        assert "in context: … ↵(202) ###(264) ␣Assistant(291) :(29)" in text
        await pilot.pause()  # laid out at the panel's width
        body = panel.query_one("#demo-body", Static)
        drawn = "".join(strip.text for strip in body.render_lines(Region(0, 0, body.size.width, body.size.height)))
        assert "✗notfound" in "".join(drawn.split())  # drawn, perhaps wrapped
        app.goto_lesson(lesson_index(app, "copy"))  # no demo: no panel
        await pilot.pause()
        assert not panel.display
        assert not app.main.check_action("run_demo", ())  # and no g key in the footer
        assert app.errors == []


async def test_the_eos_demo_trains_when_asked(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.goto_lesson(lesson_index(app, "eos-padding"))
        await pilot.pause()
        panel = app.main.demo_panel
        assert panel.text == "" and "g" in str(panel.query_one("#demo-status", Static).render())
        assert app.main.check_action("run_demo", ())
        await pilot.press("g")
        await wait_until(pilot, lambda: "mask, eos masked   epoch  3" in panel.text, timeout=60, what="the eos run")
        lines = panel.text.splitlines()
        assert all(line.endswith("stops ✓") for line in lines if line.strip().startswith("mask               epoch"))
        assert all(line.endswith("runs on ✗") for line in lines if line.strip().startswith("mask, eos masked   epoch"))
        assert app.errors == []


async def test_lesson_4_shows_what_a_trained_token_weighs_at_once_and_times_on_g(tiny_path):
    """The step-timing demo trains, so it waits for g; its quick part (each scored label's weight
    under copy and under mask) shows as the lesson opens, and the status says g runs the rest."""
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.goto_lesson(lesson_index(app, "mask"))
        panel = app.main.demo_panel
        await wait_until(pilot, lambda: "an answer token weighs 11.0×" in panel.text, what="the quick part")
        assert "under mask:  2 of 23 tokens scored, each weighs 1/2 = 0.5000 of the loss" in panel.text
        assert "seconds per training step" not in panel.text and not panel.running
        status = str(panel.query_one("#demo-status", Static).render())
        assert "runs the rest (it trains copies of the model)" in status
        assert app.main.check_action("run_demo", ())
        app.goto_lesson(lesson_index(app, "copy"))
        await pilot.pause()
        app.goto_lesson(lesson_index(app, "mask"))  # kept: shown again at once, not computed again
        await pilot.pause()
        assert "an answer token weighs 11.0×" in panel.text and not panel.quick_running
        assert app.errors == []


async def test_a_training_demo_asked_for_during_a_burst_waits_for_it(tiny_path):
    """The eos demo makes trainers; made while a burst ran, they reset accelerate's shared state
    under it and one of the two failed (AttributeError). The demo now waits its turn, and says so."""
    from textual.widgets import Input

    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.goto_lesson(lesson_index(app, "eos-padding"))
        await pilot.pause()
        view = app.main.training_view
        view.query_one("#set-epochs", Input).value = "200"
        await pilot.press("f3", "c")
        panel = view.panel("copy")
        await wait_until(pilot, lambda: len(panel.losses) >= 3 or bool(app.errors), what="a few steps")
        view.query_one("#set-epochs", Input).value = "3"  # the demo's own runs: short
        await pilot.press("g")
        demo = app.main.demo_panel
        status = demo.query_one("#demo-status", Static)
        await wait_until(
            pilot, lambda: "waiting for the running burst" in str(status.render()) or bool(app.errors), what="the wait"
        )
        steps = len(panel.losses)
        await wait_until(pilot, lambda: len(panel.losses) >= steps + 20 or bool(app.errors), what="more steps")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.main.training_view.running, what="the stop")
        await wait_until(pilot, lambda: "mask, eos masked   epoch  3" in demo.text or bool(app.errors), timeout=90)
        assert app.errors == []
        assert view.results["copy"].stopped and panel.state == "stopped"


async def test_a_strategy_trains_on_after_lesson_9_s_demo(tiny_path):
    """Lesson 6's demo asks TRL with a template it refuses; that refusal left accelerate reset,
    and the next burst of a strategy trained before failed (AttributeError)."""
    from textual.widgets import Input

    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        app.main.training_view.query_one("#set-epochs", Input).value = "1"
        await pilot.press("c")
        await wait_until(pilot, lambda: not app.main.training_view.running, what="the first burst")
        app.goto_lesson(lesson_index(app, "chat-template"))
        panel = app.main.demo_panel
        await wait_until(pilot, lambda: demo_settled(app) and labels_settled(app), timeout=60, what="lesson 6")
        app.main.action_run_demo()  # again (the palette's "Run the lesson's demo"): TRL's refusal is the last trainer made
        await wait_until(pilot, lambda: demo_settled(app), timeout=60, what="the demo again")
        assert "raises ValueError" in panel.text
        await pilot.press("f3")
        app.main.training_view.query_one("#set-epochs", Input).value = "1"
        await pilot.press("c")
        await wait_until(pilot, lambda: not app.main.training_view.running, what="the second burst")
        assert app.errors == []
        assert app.main.training_view.results["copy"].epochs_done == 2


async def test_a_demo_reads_the_burst_settings_on_the_ui_thread(tiny_path):
    import threading

    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        panel = app.main.demo_panel
        read = panel.settings
        threads: list[str] = []

        def recorded():
            threads.append(threading.current_thread().name)
            return read()

        panel.settings = recorded
        app.goto_lesson(lesson_index(app, "special-tokens"))
        await pilot.pause()
        await wait_until(pilot, lambda: demo_settled(app), what="the demo")
        assert threads and set(threads) == {threading.main_thread().name}  # widgets are read by the UI thread only
        assert panel.text and app.errors == []
