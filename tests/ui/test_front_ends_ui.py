"""The app, driven through Pilot as a user drives it, trains what the commands train: the
same per-epoch losses and held-out answers as `train --json` and `lesson 3 --json`, with
custom turn markers and a data file longer than the training rows (12 rows, 8 trained)."""

from __future__ import annotations

import json

from sample_rows import MARKERS12 as MARKERS
from ui_helpers import started, wait_until

from inspector import app as app_module
from inspector.cli import app as app_command
from inspector.cli import build_parser, main


def _epochs(result: dict) -> list[tuple[float, str]]:
    return [(round(e["loss"], 6), e["holdout"]) for e in result["epochs"]]


async def test_the_app_through_pilot_trains_what_train_and_lesson_train(capsys, monkeypatch, tiny_path, rows12):
    common = ["--model", str(tiny_path), "--device", "cpu", "--data", str(rows12), *MARKERS]
    seen = {}
    monkeypatch.setattr(app_module.InspectorApp, "run", lambda self, **options: seen.setdefault("app", self))
    assert app_command.run(build_parser().parse_args([*common, "--live"])) == 0
    app = seen["app"]
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("f3")
        training = app.main.training_view
        assert training.read_settings()[0] == 3  # the app's default burst: three epochs
        await pilot.press("c")
        await wait_until(pilot, lambda: not training.running and "copy" in training.results, timeout=120,
                         what="the copy burst")  # fmt: skip
        burst = training.results["copy"]
    shown = [(round(e.loss, 6), e.holdout) for e in burst.epochs]
    assert len(burst.steps) == 3 * 8 and len(shown) == 3
    assert all(answer is not None for _, answer in shown)

    assert main(["train", "--strategy", "copy", "--epochs", "3", "--limit", "8", *common, "--json"]) == 0
    train = json.loads(capsys.readouterr().out)
    assert _epochs(train) == shown
    assert main(["lesson", "3", *common, "--json"]) == 0  # lesson 3 trains copy for three epochs
    lesson = json.loads(capsys.readouterr().out)
    assert _epochs(lesson["bursts"]["copy"]) == shown
    # The held-out text is in the data's markers in the app.
    assert "### User:" in app.lab.predicted_text() and "### Bot:" in app.lab.predicted_text()
