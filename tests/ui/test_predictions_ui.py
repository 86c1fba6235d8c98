"""Pilot tests of the predictions view's animation under keys typed fast."""

from __future__ import annotations

from textual.widgets import Input
from ui_helpers import (
    FAST_LR,
    QUIET_MESSAGES,
    DispatchCounter,
    idle_window,
    own_messages,
    post_keys,
    running_timers,
    started,
    wait_until,
)

from inspector.app import InspectorApp

SIZE = (120, 40)


def make_app(tiny_path, **kw) -> InspectorApp:
    return InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, **kw)


async def assert_settles(pilot, counter: DispatchCounter, view) -> None:
    """The animation is over and the app goes quiet: no timer ticking, no cursor messages bouncing."""
    await wait_until(pilot, lambda: not view.playing, what="the animation to stop")
    counts, _ = await idle_window(pilot, counter)
    assert own_messages(counts) == {}, counts.most_common(5)
    assert sum(counts.values()) < QUIET_MESSAGES, counts.most_common(5)
    assert not view._timer._active.is_set()  # the frame timer is paused
    assert not [t for t in running_timers(pilot.app) if not t.startswith("Input")]


async def test_keys_typed_fast_while_the_animation_plays_end_where_the_user_went(tiny_path, dispatched):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.goto_lesson(3)  # lesson 4, mask: the predictions view
        view = app.main.views["predictions"]
        await wait_until(pilot, lambda: view.length > 0 and view.playing, what="the animation")
        assert app.focused is view.grid
        post_keys(app, "left", "left", "left", "right", "right", "home", "end")
        await assert_settles(pilot, dispatched, view)
        assert view.index == view.length - 1 == view.grid.cursor and view.finished
        # And again from the middle: the last key wins.
        await pilot.press("r")
        await wait_until(pilot, lambda: view.index >= 3, what="a few frames")
        post_keys(app, "home", "right", "right", "right", "left", "right", "left", "left")
        await assert_settles(pilot, dispatched, view)
        assert view.index == 1 == view.grid.cursor
        # Space still plays on to the end.
        await pilot.press("space")
        await wait_until(pilot, lambda: view.finished, what="the animation's end")
        await assert_settles(pilot, dispatched, view)


async def test_the_issue_s_recipe_trained_rows_then_the_predictions_view(tiny_path, dispatched):
    """Lesson 4, m, wait, c, wait, F4: the animation plays to the end and the app goes quiet."""
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.goto_lesson(3)
        view = app.main.views["predictions"]
        await wait_until(pilot, lambda: view.length > 0, what="the predictions")
        await pilot.press("f3")
        app.main.training_view.query_one("#set-epochs", Input).value = "1"
        for key in ("m", "c"):
            await pilot.press(key)
            await wait_until(pilot, lambda: not app.main.training_view.running, what=f"the burst of {key}")
        await pilot.press("f4")
        await wait_until(pilot, lambda: view.rows.get("copy") and view.rows.get("mask"), what="the trained rows")
        post_keys(app, "left", "left", "left", "right", "right", "home", "end")
        await assert_settles(pilot, dispatched, view)
        assert view.finished and view.grid.cursor == view.length - 1
        await pilot.press("r")
        await wait_until(pilot, lambda: view.finished, what="the replay's end")
        await assert_settles(pilot, dispatched, view)


async def test_a_strategy_training_now_says_so_in_the_predictions_view(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        app.main.training_view.query_one("#set-epochs", Input).value = "200"  # long enough to look
        await pilot.press("f4")
        view = app.main.views["predictions"]
        await wait_until(pilot, lambda: bool(view.rows.get("untrained")), what="the untrained row")
        await pilot.press("m")
        await wait_until(pilot, lambda: app.lab.training_now == "mask", what="the burst to start")
        await wait_until(
            pilot, lambda: view.grid.messages.get("mask", "").startswith("training mask now"), what="the row's note"
        )
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.main.training_view.running, what="the stop")
        await wait_until(pilot, lambda: bool(view.rows.get("mask")), what="the mask row once stopped")
