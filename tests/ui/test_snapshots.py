"""Snapshots of the main views on the tiny model, at 120x40, before any burst runs (so no
timing-dependent numbers are on screen). Update with `pytest --snapshot-update` and look."""

from __future__ import annotations

from ui_helpers import FAST_LR, demo_settled, facts_settled, labels_settled, started, wait_until

from inspector.app import InspectorApp

SIZE = (120, 40)


def make_app(path) -> InspectorApp:
    return InspectorApp(model=str(path), device="cpu", learning_rate=FAST_LR)


def test_labels_view_copy(snap_compare, tiny_named):
    async def run_before(pilot):
        await started(pilot)
        await pilot.press("right", "right", "right")  # select a column: its details show

    assert snap_compare(make_app(tiny_named), terminal_size=SIZE, run_before=run_before)


def test_labels_view_multi_turn_trl(snap_compare, tiny_named):
    async def run_before(pilot):
        await started(pilot)
        pilot.app.goto_lesson(7)  # multi-turn conversations
        view = pilot.app.main.labels_view
        await wait_until(pilot, lambda: view.text.count("### Assistant:") == 2 and labels_settled(pilot.app))
        await wait_until(pilot, lambda: demo_settled(pilot.app))
        await pilot.pause()

    assert snap_compare(make_app(tiny_named), terminal_size=SIZE, run_before=run_before)


def test_training_view_before_a_burst(snap_compare, tiny_named):
    async def run_before(pilot):
        await started(pilot)
        pilot.app.goto_lesson(2)  # strategy 1, copy: the training view
        await wait_until(pilot, lambda: facts_settled(pilot.app), what="the lesson pane's lines")
        await pilot.pause()

    assert snap_compare(make_app(tiny_named), terminal_size=SIZE, run_before=run_before)


def test_predictions_view_untrained(snap_compare, tiny_named):
    async def run_before(pilot):
        await started(pilot)
        pilot.app.goto_lesson(3)  # strategy 2, mask: the predictions view, its demo not run yet
        view = pilot.app.main.views["predictions"]
        await wait_until(pilot, lambda: view.length > 0)
        # Lesson 4's panel computes what a trained token weighs as it opens, and the pane whether it is prepared.
        await wait_until(pilot, lambda: demo_settled(pilot.app) and facts_settled(pilot.app), what="lesson 4's panels")
        await pilot.pause()  # the panel's new height laid out before the grid scrolls to its cursor
        await pilot.pause()
        view.jump(True)  # the animation's last frame
        view.step(-2)  # select the answer's first guess
        view.grid.scroll_cursor_visible(center=True)  # a scroll that depends on the cursor only
        await pilot.pause()

    assert snap_compare(make_app(tiny_named), terminal_size=SIZE, run_before=run_before)


def test_learning_view_after_two_copy_epochs(snap_compare, tiny_named):
    """The heat map: no timing on screen, only p(true) per epoch and the epochs' losses."""

    async def run_before(pilot):
        from textual.widgets import Input

        await started(pilot)
        pilot.app.goto_lesson(2)  # strategy 1, copy: the training view
        pilot.app.main.training_view.query_one("#set-epochs", Input).value = "2"
        await pilot.press("c")
        await wait_until(pilot, lambda: not pilot.app.main.training_view.running)
        await pilot.press("f5")
        view = pilot.app.main.views["learning"]
        await wait_until(pilot, lambda: view.learning is not None and "copy" in view.learning.curves)
        await wait_until(pilot, lambda: not view.playing)
        await pilot.press("end", "left")  # select the answer's first position
        await wait_until(pilot, lambda: facts_settled(pilot.app), what="the lesson pane's lines")
        await pilot.pause()

    assert snap_compare(make_app(tiny_named), terminal_size=SIZE, run_before=run_before)


def test_batch_view_packed_step(snap_compare, tiny_named):
    async def run_before(pilot):
        await started(pilot)
        await pilot.press("f6")
        view = pilot.app.main.views["batch"]
        await wait_until(pilot, lambda: view.step_view is not None, timeout=60, what="the batches")
        assert pilot.app.main.view == "batch"  # the view snapped is the batch view
        await pilot.press("right", "right")
        await pilot.pause()

    assert snap_compare(make_app(tiny_named), terminal_size=SIZE, run_before=run_before)
