"""Prepared runs in the app: replayed instantly or paced, labelled as replays, live on demand."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input, Select
from ui_helpers import FAST_LR, started, wait_until

from inspector.app import InspectorApp
from inspector.cli import main
from inspector.core.runs import store as replay

SIZE = (120, 40)


@pytest.fixture
def prepared(tiny_path, capsys):
    """Six epochs of copy and mask prepared on the tiny model at the tests' learning rate."""
    args = ["prepare", "--model", str(tiny_path), "--device", "cpu", "--epochs", "6", "--lr", str(FAST_LR)]
    assert main([*args, "--strategies", "copy,mask", "--no-demos"]) == 0
    capsys.readouterr()
    runs = {}
    for path in replay.store_dir().glob("*.json"):
        run, why = replay.load(path.stem)
        assert run is not None, why
        runs[run.strategy] = run
    return runs


def make_app(tiny_path, runs="instant", **kw) -> InspectorApp:
    return InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs=runs, **kw)


def _idle(app) -> bool:
    return not app.main.training_view.running


async def _first_mask_burst(pilot, app):
    """Start the app, press `m` in the training view, wait for the burst; the training view."""
    await started(pilot)
    await pilot.press("f3", "m")
    view = app.main.training_view
    await wait_until(pilot, lambda: "mask" in view.results and _idle(app), what="the burst")
    return view


async def test_a_prepared_burst_replays_instantly_labelled_and_continues(tiny_path, prepared):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        view = await _first_mask_burst(pilot, app)
        await pilot.pause()
        run = prepared["mask"]
        panel = view.panel("mask")
        assert panel.losses == [s["loss"] for s in run.result["steps"][:15]]
        assert panel.holdouts == [(e["epoch"], e["holdout"]) for e in run.result["epochs"][:3]]
        assert "replay" in str(panel.border_subtitle) and panel.has_class("-replay")
        assert "mask" not in app.lab.sessions  # nothing was trained
        assert view.table.row_values("mask")["strategy"] == "mask ⟲ replay"
        assert view.table.row_values("mask")["epochs"] == "3"

        await pilot.press("m")  # the next burst continues the recorded run
        await wait_until(pilot, lambda: _idle(app) and len(panel.losses) == 30, what="the second replay")
        assert panel.losses == [s["loss"] for s in run.result["steps"]]
        assert view.table.row_values("mask")["epochs"] == "6"

        await pilot.press("m")  # the recording ends at epoch 6: said, nothing invented
        await wait_until(pilot, lambda: _idle(app), what="the refusal")
        await pilot.pause()
        assert len(panel.losses) == 30
        assert any("ends at epoch 6" in n.message for n in app._notifications)

        # The predictions view shows the stored rows, marked as a replay.
        await pilot.press("f4")
        pv = app.main.views["predictions"]
        await wait_until(pilot, lambda: pv.rows.get("mask") is not None, what="the replayed predictions")
        held_out = replay.PreparedRun.predictions_for(run, run.spec["predict"], 6)
        assert pv.rows["mask"] == held_out
        assert pv.sources == {"mask": "replay, epoch 6"}
        assert pv.rows["copy"] is None and pv.rows["untrained"]
        assert app.errors == []


async def test_a_training_example_shows_its_stored_predictions(tiny_path, prepared):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3", "c")
        await wait_until(pilot, lambda: "copy" in app.main.training_view.results and _idle(app), what="the replay")
        await pilot.press("f4")
        pv = app.main.views["predictions"]
        pv.query_one("#predict-example", Select).value = 2  # the second training example
        stored = prepared["copy"].predictions_for(pv.choices[2][1], 3)
        assert stored
        # The rows on show change once the new text's predictions arrive: wait for them.
        await wait_until(pilot, lambda: pv.text == pv.choices[2][1] and pv.rows.get("copy") == stored, what="its rows")


async def test_live_runs_train_and_a_replayed_strategy_asks_for_a_reset(tiny_path, prepared):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        view = await _first_mask_burst(pilot, app)
        view.set_source("live")
        await pilot.pause()
        await pilot.press("m")
        await pilot.pause()
        assert not app.main.training_view.running and "mask" not in app.lab.sessions
        assert any("x resets it" in n.message for n in app._notifications)
        await pilot.press("x")
        await pilot.press("m")
        await wait_until(pilot, lambda: _idle(app) and "mask" in app.lab.sessions, what="the live burst")
        await wait_until(pilot, lambda: view.panel("mask").state == "done", what="the live panel")
        assert app.lab.sessions["mask"].steps_done == 15
        assert view.panel("mask").border_subtitle == "live"
        assert view.table.row_values("mask")["strategy"] == "mask"


async def test_other_settings_train_live_and_say_what_differs(tiny_path, prepared):
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        view = app.main.training_view
        view.query_one("#set-lr", Input).value = "0.02"
        await pilot.press("m")
        await wait_until(pilot, lambda: _idle(app) and "mask" in app.lab.sessions, what="the live burst")
        messages = [n.message for n in app._notifications]
        assert any("differs in burst settings" in m and "learning_rate" in m for m in messages), messages
        assert not app.lab.replaying("mask")


async def test_a_corrupt_prepared_run_is_never_replayed(tiny_path, prepared):
    path = replay.store_dir() / f"{prepared['mask'].key}.json"
    data = json.loads(path.read_text())
    data["run"]["result"]["steps"][0]["loss"] = 0.0  # doctored
    path.write_text(json.dumps(data))
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3", "m")
        await wait_until(pilot, lambda: _idle(app) and "mask" in app.lab.sessions, what="the live burst")
        assert not app.lab.replaying("mask")
        assert any("corrupt" in n.message for n in app._notifications)


async def test_a_paced_replay_stops_on_escape_and_goes_on(tiny_path, prepared):
    run = prepared["mask"]
    run.step_seconds = [0.2] * run.total_steps  # slow enough to stop in the middle
    replay.save(run)
    app = make_app(tiny_path, runs="1")
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3", "m")
        view = app.main.training_view
        panel = view.panel("mask")
        await wait_until(pilot, lambda: len(panel.losses) >= 2, what="two replayed steps")
        assert app.main.training_view.running and len(panel.losses) < 15  # paced, not all at once
        await pilot.press("escape")
        await wait_until(pilot, lambda: _idle(app), what="the stop")
        await pilot.pause()
        stopped = view.results["mask"]
        assert stopped.stopped and len(panel.losses) < 15
        shown = len(panel.losses)
        view.set_source("instant")
        await pilot.pause()
        await pilot.press("m")
        await wait_until(pilot, lambda: _idle(app) and len(panel.losses) == shown + 15, what="the rest")
        assert panel.losses == [s["loss"] for s in run.result["steps"][: shown + 15]]


async def test_a_lesson_demo_that_trains_shows_its_prepared_result(tiny_path, capsys):
    args = ["prepare", "--model", str(tiny_path), "--device", "cpu", "--epochs", "3", "--lr", str(FAST_LR)]
    assert main([*args, "--strategies", "mask"]) == 0
    assert "lesson demo eos-padding: stored" in capsys.readouterr().out
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        number = next(i for i, lesson in enumerate(app.lessons) if lesson.demo == "eos-padding")
        app.goto_lesson(number)
        await pilot.pause()
        panel = app.main.demo_panel
        await pilot.press("g")
        await wait_until(pilot, lambda: bool(panel.text) and not panel.running, what="the demo")
        stored = [replay._read(p.stem)[0] for p in replay.store_dir().glob("*.json")]
        demo = next(b for b in stored if b and b.get("name") == "eos-padding")
        assert panel.text == demo["text"]
        assert panel.sources[app.lessons[number].id].startswith("replay of a run prepared")
        assert "runs it now" in str(panel.query_one("#demo-status").render())


async def test_a_demo_that_builds_trainers_replays_as_its_lesson_opens(tiny_path, capsys, monkeypatch):
    """Lesson 11's packing demo (four SFTTrainers and forward passes, about 30 s on the embedded
    model) computes when its lesson opens; prepared, it replays at once and says so, and with
    runs set to live `g` computes it now."""
    from inspector.core.lessons import packing

    args = ["prepare", "--model", str(tiny_path), "--device", "cpu", "--epochs", "1", "--lr", str(FAST_LR)]
    assert main([*args, "--strategies", "mask"]) == 0
    assert "lesson demo packing: stored" in capsys.readouterr().out
    bodies = [replay._read(p.stem)[0] for p in replay.store_dir().glob("*.json")]
    demo = next(b for b in bodies if b and b.get("name") == "packing")
    calls = []
    real = packing.packing_view

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(packing, "packing_view", counted)
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        number = next(i for i, lesson in enumerate(app.lessons) if lesson.demo == "packing")
        lesson_id = app.lessons[number].id
        app.goto_lesson(number)
        panel = app.main.demo_panel
        status = panel.query_one("#demo-status")
        await wait_until(pilot, lambda: bool(panel.text) and not panel.running, what="the replay")
        assert calls == []  # no trainer was built
        assert panel.text == demo["text"] and panel.sources[lesson_id].startswith("replay of a run prepared")
        assert "⟲ replay of a run prepared" in str(status.render()) and "runs it now" in str(status.render())
        assert app.main.check_action("run_demo", ())
        app.main.training_view.set_source("live")
        await pilot.pause()
        app.main.action_run_demo()  # g (the batch view's fields may have the focus)
        await wait_until(pilot, lambda: panel.sources[lesson_id] == "live" and not panel.running, timeout=60,
                         what="the live demo")
        assert calls == [1] and "⟲" not in str(status.render())
        assert "computed on the model in use" in str(status.render())
        assert app.errors == []


async def test_a_prepared_talk_replays_every_lessons_burst_and_demo(tiny_path, capsys):
    """`prepare` with its defaults, then every lesson in turn: nothing trains live."""
    from inspector.core.lessons.demos import DEMOS

    args = ["prepare", "--model", str(tiny_path), "--device", "cpu", "--lr", str(FAST_LR)]
    assert main(args) == 0
    capsys.readouterr()
    bodies = [replay._read(p.stem)[0] for p in replay.store_dir().glob("*.json")]
    stored = {b["name"]: b for b in bodies if b and "text" in b}
    app = make_app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        keys = {"copy": "c", "mask": "m", "trl": "t"}
        demos = 0
        for number, lesson in enumerate(app.lessons):
            app.goto_lesson(number)
            await pilot.pause()
            if lesson.view in ("training", "predictions"):
                await pilot.press(keys[lesson.strategy])
                await wait_until(pilot, lambda: not app.main.training_view.running, what=f"lesson {number + 1}'s burst")
            if lesson.demo and DEMOS[lesson.demo].prepared:
                panel = app.main.demo_panel
                if DEMOS[lesson.demo].on_demand:
                    await pilot.press("g")
                # (chat-template, packing, truncation, weights and tool-calls replay as their lesson opens)
                await wait_until(pilot, lambda panel=panel: not panel.running and bool(panel.text), what="the demo")
                assert panel.sources[lesson.id].startswith("replay of a run prepared"), lesson.id
                assert panel.text == stored[lesson.demo]["text"], lesson.id
                assert "⟲ replay of a run prepared" in str(panel.query_one("#demo-status").render()), lesson.id
                assert app.main.check_action("run_demo", ()), lesson.id  # g computes it now, with runs live
                demos += 1
        await pilot.press("f3", "a")  # and all three strategies once more
        await wait_until(pilot, lambda: not app.main.training_view.running, what="all three")
        # step-timing and eos-padding, which train; chat-template, packing, truncation, weights
        # and tool-calls, which build TRL trainers when their lesson opens
        assert demos == 7
        assert app.lab.sessions == {}  # every burst was a replay: no model was trained
        assert all(app.lab.replaying(s) for s in ("copy", "mask", "trl"))
        assert app.lab.bursts.sources["mask"].epochs_shown == 9  # lessons 4 and 10, then `a`: three bursts of 3
        assert app.errors == []


async def test_a_run_prepared_on_own_data_replays_in_the_app_on_that_data(tiny_path, tmp_path, monkeypatch, capsys):
    from inspector import app as app_module
    from inspector.cli import app as app_command
    from inspector.cli import build_parser

    data = tmp_path / "rows.jsonl"
    rows = [{"prompt": w, "completion": t} for w, t in (("dog", "perro"), ("cat", "gato"), ("red", "rojo"))]
    data.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], "broken", *rows[1:]]).replace('"broken"', "{"))
    common = ["--model", str(tiny_path), "--device", "cpu", "--data", str(data), "--train-rows", "2"]
    prepare = ["prepare", *common, "--strategies", "mask", "--epochs", "3", "--lr", str(FAST_LR), "--no-demos"]
    assert main(prepare) == 0
    capsys.readouterr()
    seen = {}
    monkeypatch.setattr(app_module.InspectorApp, "run", lambda self, **options: seen.setdefault("app", self))
    assert app_command.run(build_parser().parse_args([*common, "--replay-speed", "instant"])) == 0
    app = seen["app"]
    app.burst_defaults = (3, FAST_LR, 1)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3", "m")
        await wait_until(pilot, lambda: not app.main.training_view.running and "mask" in app.main.training_view.results, what="the burst")
        assert app.lab.replaying("mask") and app.lab.sessions == {}
        assert app.lab.bursts.sources["mask"].prepared.steps_per_epoch == 2  # rows 1 and 3: the broken row 2 is skipped


async def test_with_no_prepared_run_the_selector_says_live_and_why(tiny_path):
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR)  # the default: no --replay-speed
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.training_view
        assert view.read_source() == "live"
        note = str(view.query_one("#runs-note").render())
        assert "none prepared for this model" in note and "train live" in note
        assert not any("replay-speed" in n.message for n in app._notifications)


async def test_an_asked_replay_speed_without_prepared_runs_is_told(tiny_path):
    app = make_app(tiny_path, runs="5")
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert app.main.training_view.read_source() == "live"
        assert any("--replay-speed 5: no run is prepared" in n.message for n in app._notifications)


async def test_with_prepared_runs_the_selector_replays_and_names_them(tiny_path, prepared):
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.training_view
        assert view.read_source() == "1"
        assert "copy, mask" in str(view.query_one("#runs-note").render())
