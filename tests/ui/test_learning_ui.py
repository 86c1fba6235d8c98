"""Pilot tests of the learning view: the epoch scrubber and the animation reach the
last epoch and stop, animations off jump there at once, the selected cell's value is written out,
and nothing keeps ticking once the view is idle."""

from __future__ import annotations

from textual.widgets import Static
from ui_helpers import FAST_LR, running_timers, started, wait_until

from inspector.app import InspectorApp

SIZE = (140, 50)


def make_app(tiny_path, **kw) -> InspectorApp:
    return InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, **kw)


def ticking(app) -> list[str]:
    return [t for t in running_timers(app) if not t.startswith("Input")]


async def train(pilot, app, keys: str, epochs: str = "2") -> None:
    from textual.widgets import Input

    await pilot.press("f3")
    app.main.training_view.query_one("#set-epochs", Input).value = epochs
    for key in keys:
        await pilot.press(key)
        await wait_until(pilot, lambda: not app.main.training_view.running, what=f"the burst of {key}")


async def test_the_animation_plays_to_the_last_epoch_and_stops(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await train(pilot, app, "cm", epochs="3")
        await pilot.press("f5")
        view = app.main.views["learning"]
        assert app.main.view == "learning" and app.focused is view.query_one("#learn-heat")
        await wait_until(pilot, lambda: view.learning is not None and set(view.learning.curves) == {"copy", "mask"},
                         what="both strategies' epochs")  # fmt: skip
        assert view.last_epoch == 3
        await wait_until(pilot, lambda: not view.playing, what="the animation's end")
        assert view.epoch == 3 and not ticking(app)
        await pilot.press("r")
        assert view.playing and view.epoch < 3  # from epoch 0, one epoch per frame
        seen = set()
        await wait_until(pilot, lambda: seen.add(view.epoch) or not view.playing, what="the replay's end")
        assert view.epoch == 3 and seen >= {1, 2, 3} and not ticking(app)
        await pilot.pause()
        assert not ticking(app)  # idle: no timer left


async def test_the_scrubber_moves_through_the_epochs_and_stops_at_each_end(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await train(pilot, app, "c")
        await pilot.press("f5")
        view = app.main.views["learning"]
        await wait_until(pilot, lambda: view.learning is not None and "copy" in view.learning.curves, what="copy")
        await wait_until(pilot, lambda: not view.playing, what="the animation's end")
        assert view.epoch == 2
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert view.epoch == 0
        await pilot.press("right_square_bracket")
        assert view.epoch == 1
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        assert view.epoch == 2 and not view.playing and not ticking(app)
        # The selected cell's value, written out: colour is not the only signal.
        await pilot.press("end", "left")
        row = view.learning.curves["copy"].epochs[2][view.position]
        cell = str(view.query_one("#learn-cell", Static).render())
        assert f"epoch 2, position {row.position}" in cell and f"{row.p_target:.3f}" in cell
        summary = str(view.query_one("#learn-summary", Static).render())
        assert summary.startswith("copy: prompt ") and "(epoch 0 -> 2)" in summary
        # Space at the last epoch plays again from 0, through every epoch (recorded as they are
        # shown: on a busy machine the whole animation may be over by the time the key returns).
        shown: list[int] = []
        view.watch(view, "epoch", lambda epoch: shown.append(epoch), init=False)
        await pilot.press("space")
        await wait_until(pilot, lambda: not view.playing, what="the animation's end")
        assert shown == [0, 1, 2] and view.epoch == 2 and not ticking(app)


async def test_with_animations_off_play_jumps_to_the_last_epoch(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.animation_level = "none"
        await train(pilot, app, "m")
        await pilot.press("f5")
        view = app.main.views["learning"]
        await wait_until(pilot, lambda: view.learning is not None and "mask" in view.learning.curves, what="mask")
        assert view.epoch == 2 and not view.playing
        await pilot.press("r")
        assert view.epoch == 2 and not view.playing and not ticking(app)
        assert view._chart is not None  # the loss chart, once there are losses


async def test_the_heat_map_grows_a_row_per_epoch_while_a_burst_runs(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        from textual.widgets import Input

        app.main.training_view.query_one("#set-epochs", Input).value = "200"  # long enough to look
        await pilot.press("f5", "c")
        view = app.main.views["learning"]
        await wait_until(pilot, lambda: view.learning is not None and "copy" in view.learning.curves, what="epoch 1")
        await wait_until(pilot, lambda: view.last_epoch >= 2, what="a second epoch, live")
        assert app.main.training_view.running  # shown while the burst goes on
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.main.training_view.running, what="the stop")
        await wait_until(pilot, lambda: not view.playing, what="the view to settle")
        assert view.epoch == view.last_epoch and not ticking(app)


async def test_before_any_burst_the_view_says_what_to_press_and_is_not_left_computing(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f5")
        view = app.main.views["learning"]
        await wait_until(pilot, lambda: view.learning is not None, what="the (empty) learning")
        await pilot.pause()
        assert "press c, m or t" in str(view.query_one("#learn-heat").render())
        assert str(view.query_one("#learn-status", Static).render()) == ""  # not "computing…" for ever
        assert not ticking(app)
