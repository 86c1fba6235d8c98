"""Pilot tests of the app on the tiny model: loading, labels, training, predictions, errors."""

from __future__ import annotations

import os
import subprocess
import sys

from textual.widgets import Input, Markdown
from ui_helpers import FAST_LR, labels_settled, started, wait_until

from inspector.app import InspectorApp
from inspector.core.training.burst import BurstResult, StepLog
from inspector.core.training.step_times import StepSpread
from inspector.messages import BurstFinished
from inspector.screens.help import HelpScreen
from inspector.widgets.comparison_table import COLUMNS
from inspector.widgets.labels_view import ExampleEditor

SIZE = (120, 40)


def make_app(tiny_path, **kw) -> InspectorApp:
    return InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, **kw)


def test_importing_the_app_loads_neither_torch_nor_transformers():
    code = (
        "import sys, inspector.app, inspector.cli; "
        "bad = [m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_the_app_starts_and_loads_the_model(tiny_path, monkeypatch):
    import threading

    from inspector.core import models

    release = threading.Event()
    real_load = models.load_model

    def slow_load(*args, **kwargs):
        release.wait(10)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(models, "load_model", slow_load)
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        assert app.main.model_status.state == "loading"  # the first screen is up before the model
        assert "loading" in app.sub_title
        release.set()
        await started(pilot)
        assert app.loaded is not None and app.errors == []
        assert app.main.model_status.state == "loaded"
        assert "cpu" in app.sub_title and tiny_path.name in app.sub_title and "cached" in app.sub_title
        assert app.main.labels_view.grid.rows  # the first example is on show, as columns


async def test_once_the_model_is_loaded_nothing_animates_unseen(tiny_path):
    """The loading bar (of unknown length) was hidden, not removed, and went on animating."""
    from ui_helpers import running_timers

    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.pause()
        assert [t for t in running_timers(app) if t.startswith("Bar")] == []

async def test_trust_remote_code_is_said_visibly(tiny_path):
    app = make_app(tiny_path, trust_remote_code=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert "trust_remote_code ON" in app.sub_title
        assert app.main.query_one("#model-warning").display


async def test_switching_strategies_changes_the_greyed_columns(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        grid = app.main.labels_view.grid
        await pilot.press("1")
        assert app.main.labels_view.strategy == "copy"
        assert not any(grid.masked_flags)
        await pilot.press("2")
        mask = grid.masked_flags
        assert any(mask) and not all(mask)
        assert mask[-2:] == [False, False]  # " perro" and its eos stay trained
        await pilot.press("3")
        assert app.main.labels_view.strategy == "trl"
        assert grid.masked_flags == mask  # one turn: TRL trains what mask trains
        assert grid.show_differs and not grid.differs


async def test_a_multi_turn_example_shows_where_trl_and_mask_differ(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.goto_lesson(7)  # the multi-turn lesson: a two-exchange example, strategy trl
        view = app.main.labels_view
        await wait_until(pilot, lambda: view.text.count("### Assistant:") == 2 and labels_settled(app))
        await pilot.pause()
        mask, trl = view.labelings["mask"], view.labelings["trl"]
        assert trl.trained_tokens < mask.trained_tokens  # TRL trains only the last answer
        first_answer = {r.position for r in mask.rows if not r.masked} - {r.position for r in trl.rows if not r.masked}
        assert view.grid.differs == first_answer and first_answer
        assert view.grid.cursor == min(first_answer)  # the lesson points at the difference
        await pilot.press("1")
        assert not view.grid.show_differs


async def test_editing_the_text_retokenizes_it(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.labels_view
        before = len(view.grid.rows)
        editor = app.main.query_one(ExampleEditor)
        editor.focus()
        editor.move_cursor(editor.document.end)
        await pilot.press(*" y gato")
        await wait_until(
            pilot, lambda: view.text.endswith("perro y gato") and labels_settled(app), what="the re-tokenized text"
        )
        assert len(view.grid.rows) > before
        # The picker names the edited text, and the original is one pick away.
        picker = app.main.query_one("#example-picker")
        label = dict((i, lab) for i, (lab, _) in enumerate(view.choices))[picker.value]
        assert label.startswith("✎ edited") and "perro y gato" in label
        picker.value = 0
        await wait_until(pilot, lambda: view.text.endswith("perro") and labels_settled(app), what="the original")
        assert view.choices[-1][1].endswith("perro y gato")  # the edit is kept under its entry
        # A text without an assistant turn is a problem shown in place, not a crash.
        editor.load_text("just some words")
        await wait_until(pilot, lambda: view.error is not None, what="the inline error")
        assert "no assistant turn" in view.error
        assert app.main.query_one("#labels-error").display
        assert view.grid.rows == () and app.errors == []


async def test_a_burst_posts_losses_and_fills_the_table(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)  # the trl labels were asked of the untrained model first
        await pilot.press("f3", "c")
        await wait_until(pilot, lambda: "copy" in app.main.training_view.results and not app.main.training_view.running, what="the burst")
        await pilot.pause()
        view = app.main.training_view
        panel = view.panel("copy")
        assert len(panel.losses) == 15 and len(panel.holdouts) == 3
        assert view.table.row_values("copy")["epochs"] == "3"
        assert view.table.row_values("mask")["epochs"] == "0"
        result = view.results["copy"]
        losses = [e.loss for e in result.epochs]
        assert losses[-1] < losses[0]  # the copy of the model really learns
        # Wall time and, beside it, the median step with the fastest and slowest (the warm-up step left out).
        row = view.table.row_values("copy")
        assert list(row) == list(COLUMNS) and COLUMNS.index("s/step (min–max)") == COLUMNS.index("wall s") + 1
        assert row["wall s"] == f"{result.train_runtime:.1f}"
        # The loss every front end shows for a burst: its last epoch's mean, as `train` prints it.
        assert row["epoch loss"] == f"{result.epochs[-1].loss:.4f}" == f"{result.epoch_loss:.4f}"
        assert f"epoch loss {result.epochs[-1].loss:.4f}" in str(panel.query_one(".panel-status").render())
        spread = StepSpread.of(result.step_seconds[1:])
        assert row["s/step (min–max)"].removesuffix(" *") == spread.span() and spread.steps == 14
        assert row["s/step (min–max)"].endswith(" *") == spread.busy
        assert view.table.row_values("mask")["s/step (min–max)"] == "—"
        assert app.errors == []
        # What the panel says while a burst gets ready: only a strategy's first copies the model.
        view.preparing(("copy",))
        assert "next burst" in str(panel.query_one(".panel-status").render())
        view.preparing(("mask",))
        assert "first burst" in str(view.panel("mask").query_one(".panel-status").render())


async def test_the_table_says_when_a_strategys_steps_varied_too_much(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        view = app.main.training_view
        note = view.query_one("#comparison-note")
        assert not note.display

        def burst(strategy, seconds):
            steps = [StepLog(strategy, i + 1, (i + 1) / 5, 1.0, t) for i, t in enumerate(seconds)]
            return BurstResult(strategy, steps=steps, train_runtime=sum(seconds), input_tokens=100, epochs_done=2)

        view.post_message(BurstFinished("copy", burst("copy", [9.0, 0.9, 1.6, 3.1, 1.2, 2.8, 1.0, 1.5, 2.0, 1.7])))
        view.post_message(BurstFinished("mask", burst("mask", [9.0, 1.04, 1.02, 1.05, 1.09, 1.03])))
        await wait_until(pilot, lambda: view.table.totals["mask"].bursts == 1, what="the two rows")
        await pilot.pause()
        # 9.0, the warm-up step, is left out
        assert view.table.row_values("copy")["s/step (min–max)"] == "1.60 (0.900–3.10) *"
        assert view.table.row_values("mask")["s/step (min–max)"] == "1.04 (1.02–1.09)"
        assert note.display
        text = str(note.render())
        assert "copy: its steps varied 3.1× (0.900–2.80 s without the slowest): machine busy?" in text
        assert "mask" not in text
        await pilot.press("x")  # reset: no rows, no note
        await pilot.pause()
        assert not note.display


async def test_escape_stops_a_burst_and_a_key_continues_it(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        view = app.main.training_view
        view.query_one("#set-epochs", Input).value = "200"
        await pilot.press("m")
        await wait_until(pilot, lambda: len(view.panel("mask").losses) >= 3, what="a few steps")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.main.training_view.running, what="the stop")
        await pilot.pause()
        stopped = view.results["mask"]
        assert stopped.stopped and stopped.epochs_done < 200
        assert view.panel("mask").state == "stopped"
        view.query_one("#set-epochs", Input).value = "1"
        await pilot.press("plus")  # again: the same strategy, one more epoch, same session
        await wait_until(pilot, lambda: not app.main.training_view.running, what="the second burst")
        await pilot.pause()
        more = view.results["mask"]
        assert not more.stopped
        assert more.epochs_done > stopped.epochs_done
        assert more.steps[0].step == stopped.steps[-1].step + 1  # continued, not restarted
        assert float(view.table.row_values("mask")["epochs"]) == more.epochs_done


async def test_labels_asked_of_trl_during_a_burst_do_not_break_it(tiny_path):
    """Making an HF trainer resets accelerate's shared state, which a burst reads at every step:
    TRL's labels, asked for a new text while a burst ran, made it fail (AttributeError: the
    AcceleratorState has no distributed_type). They now wait for the burst."""
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        view = app.main.training_view
        view.query_one("#set-epochs", Input).value = "200"
        await pilot.press("m")
        panel = view.panel("mask")
        await wait_until(pilot, lambda: len(panel.losses) >= 3 or bool(app.errors), what="a few steps")
        labels = app.main.labels_view
        labels.set_example(labels.text + " y gato")  # a new text: its trl labels need an SFTTrainer
        steps = len(panel.losses)
        await wait_until(pilot, lambda: len(panel.losses) >= steps + 20 or bool(app.errors), what="more steps")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.main.training_view.running, what="the stop")
        await wait_until(pilot, lambda: "trl" in labels.labelings and not labels.pending, what="the trl labels")
        assert app.errors == []
        assert view.results["mask"].stopped and panel.state == "stopped"  # stopped by Esc, not failed
        assert labels.text.endswith("y gato")


async def test_the_predictions_animation_reaches_the_end(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.goto_lesson(3)  # strategy 2, mask: the predictions view
        view = app.main.views["predictions"]
        await wait_until(pilot, lambda: view.length > 0, what="the predictions")
        assert view.playing or view.finished
        await wait_until(pilot, lambda: view.finished, what="the animation's end")
        assert not view.playing
        assert view.rows["untrained"] and view.rows["copy"] is None
        assert "press c" in view.grid.messages["copy"]
        await pilot.press("space")  # at the end, space plays again from the start
        assert view.playing and view.index < view.length - 1
        await pilot.press("space")
        assert not view.playing
        paused_at = view.index
        await pilot.press("right", "right")
        assert view.index == paused_at + 2 == view.grid.cursor
        # The key the row offers trains that strategy; its row fills in afterwards.
        await pilot.press("c")
        await wait_until(pilot, lambda: not app.main.training_view.running and view.rows.get("copy"), what="copy's row")
        assert len(view.rows["copy"]) == view.length


async def test_without_animations_everything_shows_at_once(tiny_path):
    app = make_app(tiny_path)
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f4")
        view = app.main.views["predictions"]
        await wait_until(pilot, lambda: view.length > 0, what="the predictions")
        assert view.finished and not view.playing


async def test_a_bad_model_path_shows_an_error_and_the_app_keeps_working(tmp_path):
    app = InspectorApp(model=str(tmp_path / "no-such-model"), device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(app.errors), what="the error")
        await pilot.pause()
        assert "no-such-model" in app.errors[0] and "Traceback" not in app.errors[0]
        assert app._notifications  # shown as a notification
        assert app.main.model_status.state == "failed"
        await pilot.press("n")
        assert app.lesson_index == 1
        assert "Tokens, special tokens, padding" in app.main.query_one("#lesson-text", Markdown).source
        assert "no model" in str(app.main.demo_panel.query_one("#demo-status").render())
        await pilot.press("f3", "c")  # training says why it cannot start, and nothing breaks
        assert not app.main.training_view.running
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


async def test_f1_opens_help_for_the_widget_in_focus(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.main.labels_view.grid.focus()
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert "Token grid" in app.screen.markdown and "Keys everywhere" in app.screen.markdown
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_the_help_names_the_models_own_special_tokens(tiny_gpt2_path):
    app = make_app(tiny_gpt2_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.main.labels_view.grid.focus()
        await pilot.press("f1")
        assert "`<|endoftext|>` and `<|endoftext|>` show by name" in app.screen.markdown
        assert "</s>" not in app.screen.markdown


async def test_the_command_palette_jumps_to_a_lesson(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"Strategy 1")
        await wait_until(pilot, lambda: _palette_has(app, "Lesson 3"), what="the palette's hit")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.lesson_index == 2, what="the jump")
        assert app.main.view == "training"


def _palette_has(app, text: str) -> bool:
    from textual.command import CommandList
    from textual.css.query import NoMatches

    try:
        options = app.screen.query_one(CommandList).options
    except NoMatches:
        return False
    return any(text in str(o.prompt) for o in options)


async def test_a_failing_worker_is_a_readable_notification(tiny_path, monkeypatch):
    from inspector.core.training.session import TrainingSession

    def boom(self, *args, **kwargs):
        raise RuntimeError("the accelerator caught fire\nTraceback (most recent call last): ...")

    monkeypatch.setattr(TrainingSession, "run", boom)
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3", "t")
        await wait_until(pilot, lambda: bool(app.errors), what="the error")
        await wait_until(pilot, lambda: not app.main.training_view.running, what="the training flag")
        assert app.errors == ["RuntimeError: the accelerator caught fire"]
        assert app.main.training_view.panel("trl").state == "failed"
        await pilot.press("1", "f2")  # still working
        assert app.main.view == "labels"


async def test_a_failed_prediction_is_shown_and_the_view_stops_waiting(tiny_path, monkeypatch):
    """The predictions worker had no failure branch: its error left "computing…" on screen for good."""
    import inspector.core.training.predictions as predictions

    def boom(*args, **kwargs):
        raise RuntimeError("no logits today")

    monkeypatch.setattr(predictions, "teacher_forced", boom)
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f4")
        await wait_until(pilot, lambda: bool(app.errors), what="the error")
        await pilot.pause()
        view = app.main.views["predictions"]
        assert app.errors == ["RuntimeError: no logits today"]
        assert "computing" not in view.status_text and "could not be computed" in view.status_text
        monkeypatch.undo()  # the next request (the view shown again) works
        view.invalidate()
        await wait_until(pilot, lambda: view.rows.get("untrained") is not None, what="the predictions")
        assert app.errors == ["RuntimeError: no logits today"]


async def test_a_failed_labels_worker_is_shown_and_the_view_stops_waiting(tiny_path, monkeypatch):
    import inspector.core.labels.strategies as strategies

    def boom(*args, **kwargs):
        raise ValueError("the tokenizer melted")

    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        monkeypatch.setattr(strategies, "label_examples", boom)
        view = app.main.labels_view
        view.set_example("\n\n### Human: sun\n\n### Assistant: sol")
        await wait_until(pilot, lambda: bool(app.errors), what="the error")
        await pilot.pause()
        assert app.errors == ["ValueError: the tokenizer melted"]
        assert view.pending == () and "could not be made" in (view.error or "")


def test_run_app_builds_the_app_from_the_command_line(monkeypatch, tmp_path):
    import json

    from inspector import app as app_module
    from inspector.cli import app as app_command
    from inspector.cli import build_parser

    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"prompt": "cat", "completion": "gato"}) + "\n")
    seen = {}

    def fake_run(self, **options):
        seen["app"] = self

    monkeypatch.setattr(app_module.InspectorApp, "run", fake_run)
    args = build_parser().parse_args(["--model", "somewhere", "--device", "cpu", "--data", str(data)])
    assert app_command.run(args) == 0
    app = seen["app"]
    assert app.lab.model_spec == "somewhere" and app.lab.device == "cpu" and app.data_name == str(data)
    assert [e.text for e in app.lab.examples] == ["\n\n### Human: cat\n\n### Assistant: gato"]
    assert app.runs_source == "1" and not app.runs_chosen  # replay as recorded where prepared runs exist
    assert app_command.run(build_parser().parse_args(["--replay-speed", "5"])) == 0
    assert seen["app"].runs_source == "5"
    assert app_command.run(build_parser().parse_args(["--live", "--replay-speed", "5"])) == 0
    assert seen["app"].runs_source == "live"


async def test_data_rows_are_the_examples_and_bad_rows_are_reported(tiny_path):
    from inspector.core.data.examples import Example

    rows = [
        Example("\n\n### Human: cat\n\n### Assistant: gato", 1, "rows.jsonl", unit="line"),
        Example("\n\n### Human: no answer here", 2, "rows.jsonl", unit="line"),
    ]
    app = make_app(tiny_path, examples=rows, data_name="rows.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.labels_view
        await wait_until(pilot, lambda: 2 in view.row_problems, what="row 2's problem")
        assert "rows.jsonl line 2" in view.row_problems[2][0]  # listed, not an error that stops the app
        assert view.grid.rows  # row 1 shows its labels
        predict = app.main.views["predictions"]
        assert [text for _, text in predict.choices] == [r.text for r in rows]  # no held-out "good" with --data
        assert [ex.row for ex in app.lab.train_examples] == [1]  # the bursts train on the row that can be used
        assert app.errors == []


async def test_special_token_overrides_reach_the_app(tiny_path):
    app = make_app(tiny_path, bos_token="</s>")
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        mask = app.main.labels_view.labelings["mask"]
        assert "Assistant:</s>" in mask.formatted.text
        assert [r.text for r in mask.rows if not r.masked] == ["␣perro", "</s>"]


async def test_a_terminal_too_small_gets_a_notice_and_nothing_is_lost(tiny_path):
    from inspector.screens.too_small import TooSmallScreen

    app = make_app(tiny_path)
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TooSmallScreen), what="the notice")
        text = str(app.screen.query_one("#too-small").render())
        assert "60x20" in text and "at least 80x24" in text
        await started(pilot)  # the model loads underneath all the same
        await pilot.resize_terminal(120, 40)
        await wait_until(pilot, lambda: not isinstance(app.screen, TooSmallScreen), what="the notice to go")
        assert app.main.labels_view.grid.rows  # the labels computed meanwhile are there


async def test_a_screenshot_is_saved_where_there_is_no_downloads_folder(tiny_path, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a home without ~/Downloads
    monkeypatch.setenv("XDG_DOWNLOAD_DIR", str(tmp_path / "home" / "Downloads"))
    monkeypatch.chdir(tmp_path)
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.action_screenshot()
        await wait_until(pilot, lambda: list(tmp_path.glob("*.svg")) or app.errors, what="the screenshot")
        await wait_until(pilot, lambda: any("Saved screenshot" in n.message for n in app._notifications))
    assert not app.errors
    (svg,) = tmp_path.glob("*.svg")
    assert "causallm-inspect" in svg.read_text()


_QUIT_WHILE_LOADING = """
import threading
from textual.worker import WorkerState
from inspector.core import models
from inspector.app import InspectorApp
from inspector.running import run_until_quit

models.load_model = lambda *a, **k: threading.Event().wait()  # a conversion that never ends

async def quit_while_loading(pilot):
    while not any(w.group == "load" and w.state == WorkerState.RUNNING for w in pilot.app.workers):
        await pilot.pause(0.05)
    pilot.app.exit(return_code=3)

code = run_until_quit(InspectorApp(model=None), headless=True, auto_pilot=quit_while_loading)
raise SystemExit(code)
"""


def test_quitting_while_the_model_converts_ends_the_process_at_once(tmp_path):
    env = {**os.environ, "CAUSALLM_INSPECT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", _QUIT_WHILE_LOADING], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 3, done.stderr  # the app's own exit code, not a hang or a crash
    assert "Traceback" not in done.stderr


async def test_the_lesson_list_keeps_the_focus_and_shows_every_lesson_when_tall(tiny_path):
    from inspector.widgets.lesson_list import LessonList

    app = make_app(tiny_path)
    async with app.run_test(size=(160, 45)) as pilot:
        await started(pilot)
        lessons = app.main.query_one(LessonList)
        assert lessons.scrollable_content_region.height >= len(app.lessons)  # every lesson in view
        await pilot.click(LessonList, offset=(3, 2))  # the second lesson, under the border
        await pilot.pause()
        assert app.lesson_index == 1 and app.focused is lessons
        await pilot.press("f1")
        assert "## Lessons" in app.screen.markdown
        await pilot.press("escape", "down", "enter")
        await pilot.pause()
        assert app.lesson_index == 2 and app.focused is lessons


async def test_reset_and_quitting_give_the_sessions_memory_back(tiny_path):
    """x drops every session: its weights are freed and its optimizer file is gone; so does quitting."""
    import gc
    import os
    import weakref

    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        app.main.training_view.query_one("#set-epochs", Input).value = "1"
        await pilot.press("m")
        await wait_until(pilot, lambda: not app.main.training_view.running and "mask" in app.lab.sessions, what="the burst")
        session = app.lab.sessions["mask"]
        model, folder, parked = weakref.ref(session.model), session._tmp, session.parked_optimizer
        assert parked is not None and parked.is_file()  # between bursts the optimizer state is on disk
        gc.disable()  # the reset itself must collect the cycles (Trainer, accelerate, callbacks)
        try:
            del session
            await pilot.press("x")
            await pilot.pause()
            assert app.lab.sessions == {} and model() is None and not os.path.exists(folder)
        finally:
            gc.enable()
        await pilot.press("c")
        await wait_until(pilot, lambda: not app.main.training_view.running and "copy" in app.lab.sessions, what="a burst after the reset")
        model, folder = weakref.ref(app.lab.sessions["copy"].model), app.lab.sessions["copy"]._tmp
        gc.disable()
    try:
        assert model() is None and not os.path.exists(folder)  # quitting closed and freed it
    finally:
        gc.enable()


async def _palette_with_hits(pilot, query: str):
    from textual.command import CommandList

    await pilot.press("ctrl+p", *query)
    palette = pilot.app.screen
    await wait_until(pilot, lambda: palette.query_one(CommandList).option_count > 0, what="the palette's hits")
    return palette


async def test_a_palette_choice_handled_after_esc_closed_it_does_nothing(tiny_path):
    """Enter, then Esc, typed faster than the palette answers: the choice, still in the palette's
    queue when Esc closed it, used to dismiss it again, popping the main screen (the app died)."""
    from textual.command import CommandList
    from textual.widgets import OptionList

    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        palette = await _palette_with_hits(pilot, "Lesson 5")
        hits = palette.query_one(CommandList)
        hits.highlighted = 0
        # Where Enter's choice waits when Esc arrives: bubbled up to the palette, not handled yet.
        palette.post_message(OptionList.OptionSelected(hits, hits.get_option_at_index(0), 0))
        await palette.run_action("escape")  # Esc's binding, before the palette handles the choice
        for _ in range(3):
            await pilot.pause()
        assert app._exception is None
        assert app.screen is app.main and app.lesson_index == 0  # closed; the late choice did not run


async def test_a_search_typed_before_esc_does_not_start_after_it(tiny_path, monkeypatch):
    """Typed, then Esc: the search, handled after Esc, looked for the palette's list once it was
    removed (NoMatches: the app died)."""
    from textual.command import CommandInput, CommandPalette
    from textual.widgets import Input

    searches: list[str] = []
    real = CommandPalette._gather_commands
    monkeypatch.setattr(CommandPalette, "_gather_commands", lambda self, value: searches.append(value) or real(self, value))
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        palette = await _palette_with_hits(pilot, "Lesson")
        searches.clear()
        palette.post_message(Input.Changed(palette.query_one(CommandInput), "Lesson 2"))  # typed, not handled yet
        await palette.run_action("escape")  # Esc's binding, before the palette handles what was typed
        for _ in range(3):
            await pilot.pause()
        assert app._exception is None and app.screen is app.main
        assert searches == []


async def test_page_keys_before_the_palette_s_hits_are_laid_out_do_nothing(tiny_path):
    """PageUp with hits not laid out yet (just filled, typed fast) raised KeyError in the list."""
    from textual.command import CommandList

    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        palette = await _palette_with_hits(pilot, "Lesson")
        hits = palette.query_one(CommandList)
        hits.display = False
        await pilot.pause()  # laid out with no size: then refilled, as a search's hits are
        options = list(hits.options)
        hits.clear_options()
        hits.add_options(options)
        hits.highlighted = 2
        await pilot.press("pageup", "pagedown")
        assert app._exception is None and app.screen is palette
        hits.display = True
        await pilot.pause()
        await pilot.press("pageup")
        assert hits.highlighted == 0  # once laid out, the keys work


async def test_page_keys_in_a_closed_picker_refilled_meanwhile_do_nothing(tiny_path):
    """Keys typed fast (Enter, Esc) can close a Select's list and leave it the focus; refilled then
    (a lesson adds its example to the picker), PageDown raised KeyError in Textual's list."""
    from textual.widgets import Select
    from textual.widgets._select import SelectOverlay

    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.labels_view
        picker = view.query_one("#example-picker", Select)
        overlay = picker.query_one(SelectOverlay)
        picker.expanded = True
        await pilot.pause()
        picker.expanded = False
        await pilot.pause()
        overlay.focus()  # where the fast keys left the focus: on the closed list
        view.set_example(view.text.replace("perro", "gato"))  # a new text joins the picker
        overlay.highlighted = 1
        await pilot.press("pagedown", "pageup")
        assert app._exception is None
        picker.expanded = True
        await pilot.pause()
        await pilot.press("pagedown")
        assert overlay.highlighted == len(overlay.options) - 1  # laid out, the keys work
