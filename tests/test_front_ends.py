"""Every front end runs its bursts through the Lab: the same settings give the same losses and
held-out answers in the app's Lab, `train --json`, `lesson N --json` and `predict`, with custom
turn markers and a data file longer than the training rows."""

from __future__ import annotations

import json

from sample_rows import MARKERS12 as MARKERS

from inspector.cli import main


def _json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _epochs(result: dict) -> list[tuple[float, str]]:
    return [(round(e["loss"], 6), e["holdout"]) for e in result["epochs"]]


def test_the_app_train_and_lesson_give_the_same_epochs(capsys, tiny_path, rows12):
    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.data.examples import TRAIN_ROWS, read_examples
    from inspector.core.lab import Lab
    from inspector.core.training.burst import BurstSettings

    # The app's Lab: the data read as the app reads it, the first TRAIN_ROWS rows trained.
    template = TurnMarkers(human="### User:", assistant="### Bot:")
    lab = Lab(str(tiny_path), device="cpu", examples=read_examples(str(rows12), template).examples, template=template, train_rows=TRAIN_ROWS)
    lab.load()
    with lab:
        app = lab.burst("copy", BurstSettings(epochs=3))
    assert app is not None and len(app.steps) == 3 * TRAIN_ROWS
    app_epochs = [(round(e.loss, 6), e.holdout) for e in app.epochs]

    common = ["--model", str(tiny_path), "--data", str(rows12), *MARKERS, "--json"]
    lesson = _json(capsys, "lesson", "3", *common)  # lesson 3 trains copy for 3 epochs
    assert _epochs(lesson["bursts"]["copy"]) == app_epochs
    train = _json(capsys, "train", "--strategy", "copy", "--epochs", "3", "--limit", str(TRAIN_ROWS), *common)
    assert _epochs(train) == app_epochs
    # One loss for a burst, in the same words everywhere: the last epoch's mean.
    assert round(train["epoch_loss"], 6) == round(lesson["bursts"]["copy"]["epoch_loss"], 6) == app_epochs[-1][0]
    assert app.epoch_loss == app.epochs[-1].loss
    # The held-out prompt is in the data's markers everywhere.
    assert all("Bot" not in h for _, h in app_epochs)  # the answers, not the prompt
    assert lesson["lesson"]["number"] == 3 and len(lesson["bursts"]["copy"]["steps"]) == 3 * TRAIN_ROWS


def test_lesson_train_rows_is_the_apps_default_and_can_be_changed(capsys, tiny_path, rows12):
    common = ["--model", str(tiny_path), "--data", str(rows12), *MARKERS, "--json"]
    assert len(_json(capsys, "lesson", "3", *common, "--train-rows", "12")["bursts"]["copy"]["steps"]) == 36
    assert len(_json(capsys, "lesson", "3", *common, "--train-rows", "2")["bursts"]["copy"]["steps"]) == 6


def test_predict_after_a_burst_is_the_lab_s_prediction(capsys, tiny_path, rows12):
    common = ["--model", str(tiny_path), "--data", str(rows12), *MARKERS, "--json"]
    after = _json(capsys, "predict", "--strategy", "copy", "--epochs", "2", "--limit", "8", *common)
    every = _json(capsys, "predict", "--strategy", "copy", "--epochs", "2", "--limit", "8", "--every-epoch", *common)
    untrained = _json(capsys, "predict", *common)
    assert after["text"] == every["text"] == untrained["text"] and "### Bot:" in after["text"]
    assert [e["epoch"] for e in every["epochs"]] == [0, 1, 2]
    p = [[r["p_target"] for r in e["positions"]] for e in every["epochs"]]
    assert p[0] == [r["p_target"] for r in untrained["positions"]]
    assert p[-1] == [r["p_target"] for r in after["positions"]]


def test_prepare_records_what_the_live_burst_trains(capsys, tiny_path, rows12):
    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.data.examples import TRAIN_ROWS, read_examples
    from inspector.core.lab import Lab
    from inspector.core.training.burst import BurstSettings

    prepared = _json(capsys, "prepare", "--model", str(tiny_path), "--data", str(rows12), *MARKERS, "--strategies",
                     "copy", "--epochs", "3", "--no-demos", "--json")
    template = TurnMarkers(human="### User:", assistant="### Bot:")
    lab = Lab(str(tiny_path), device="cpu", examples=read_examples(str(rows12), template).examples, template=template,
              train_rows=TRAIN_ROWS)
    lab.load()
    with lab:
        live = lab.burst("copy", BurstSettings(epochs=3))
        # ... and the app finds the prepared run for these settings and replays it.
        lab.reset()
        replayed = lab.burst("copy", BurstSettings(epochs=3), speed=0.0)
        assert lab.replaying("copy")
    (run,) = prepared["runs"]
    assert run["holdouts"] == [e.holdout for e in live.epochs] == [e.holdout for e in replayed.epochs]
    assert [round(e.loss, 6) for e in replayed.epochs] == [round(e.loss, 6) for e in live.epochs]


def test_lesson_11_batches_the_apps_training_rows_with_the_config(capsys, tiny_path, rows12, tmp_path):
    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.data.examples import TRAIN_ROWS, read_examples
    from inspector.core.lab import Lab
    from inspector.core.lessons.model import load_lessons

    spaced = tmp_path / "spaced.jsonl"  # the rows on the file's lines 1, 3, 5...
    spaced.write_text("\n\n".join(rows12.read_text().splitlines()) + "\n")
    config = tmp_path / "sft.yaml"
    config.write_text("seed: 7\ncompletion_only_loss: false\n")
    template = TurnMarkers(human="### User:", assistant="### Bot:")
    lab = Lab(str(tiny_path), device="cpu", examples=read_examples(str(spaced), template).examples, template=template,
              train_rows=TRAIN_ROWS, batch_config=str(config))
    lab.load()
    lesson = load_lessons()[10]
    with lab:
        app = json.loads(json.dumps(lab.batch_step(lesson.batch_flags, world_size=lesson.batch_world_size).to_dict()))
    common = ["--model", str(tiny_path), "--data", str(spaced), *MARKERS, "--config", str(config), "--json"]
    batch = _json(capsys, "lesson", "11", "--plain", *common)["batch"]
    assert batch == app
    rows = {seg["row"] for mb in batch["micro_batches"] for row in mb["segments"] for seg in row}
    assert rows and rows <= set(range(1, 2 * TRAIN_ROWS, 2))  # numbered as the file's lines, as the app numbers them
    assert batch["settings"]["seed"] == 7 and batch["settings"]["completion_only_loss"] is False  # the config's
