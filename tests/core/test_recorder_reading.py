"""Reading a recording: `batch --run DIR` shows what was recorded (the fields of `batch --json`), with
`--config` it says whether the simulation equals the record and shows the first difference, and bad
input is one line. One recording of the tiny model (1 process, 2 steps) is made for the module."""

from __future__ import annotations

import json
import shutil

import pytest
from sample_rows import jsonl
from test_recorder import ROWS, _fake, trainer_for

from inspector.cli import main

KEYS = ("input_ids", "labels", "position_ids")


def write_config(tmp, tiny_path):
    """`trl sft`'s YAML with the settings `trainer_for` trains with."""
    config = tmp / "sft.yaml"
    config.write_text(
        f"model_name_or_path: {tiny_path}\ndatasets:\n  - path: json\n    data_files: {jsonl(tmp, ROWS)}\n"
        f"output_dir: {tmp / 'sim'}\nuse_cpu: true\npacking: true\npacking_strategy: bfd\nmax_length: 48\n"
        "per_device_train_batch_size: 1\ngradient_accumulation_steps: 2\nseed: 3\n"
    )
    return config


@pytest.fixture(scope="module")
def recorded(tiny_path, tmp_path_factory):
    """(recording folder, config, what the data loader yielded per step) of a 2-step run with the recorder."""
    from inspector.recorder import RecorderCallback

    tmp = tmp_path_factory.mktemp("recorded")
    trainer, yielded = trainer_for(tiny_path, tmp, RecorderCallback(tmp / "rec", steps=2))
    trainer.train()
    return tmp / "rec", write_config(tmp, tiny_path), yielded


def copy_of(recorded, tmp_path):
    return shutil.copytree(recorded[0], tmp_path / "copy")


def test_batch_run_json_is_what_was_recorded(recorded, capsys):
    from inspector.core.recorder.record_files import open_recording

    folder, _config, yielded = recorded
    rec = open_recording(folder)
    for step, (batches, count) in enumerate(yielded, 1):
        assert main(["batch", "--run", str(folder), "--step", str(step), "--json"]) == 0
        view = json.loads(capsys.readouterr().out)
        assert view["step"] == step and view["world_size"] == 1 and view["num_items_in_batch"] == count
        assert [{k: mb[k] for k in KEYS} for mb in view["micro_batches"]] == [{k: b[k] for k in KEYS} for b in batches]
        assert [{k: mb[k] for k in KEYS} for mb in view["micro_batches"]] == [{k: r[k] for k in KEYS} for r in rec.micro_batches(step, 0)]
        weights = [w for mb in view["micro_batches"] for row in mb["weights"]["trainer"] for w in row]
        assert sum(weights) == pytest.approx(1, rel=1e-5) and f"weighs 1/{int(count)}" in view["normalisation"]
        mb = view["micro_batches"][0]
        trained = [label != -100 and t > 0 for t, label in enumerate(mb["labels"][0])]
        assert [r is None for r in mb["tokens"]["reason"][0]] == trained
        assert {r for r in mb["tokens"]["reason"][0] if r} <= {"not recorded"}  # why a label is -100 is not in a recording
        assert mb["tokens"]["text"][0][-1] == "</s>" and mb["samples"] == [] and view["prepared_rows"] is None
        starts = [s["start"] for s in mb["segments"][0]]
        assert all(mb["position_ids"][0][s] == 0 for s in starts) and all(s["row"] is None for s in mb["segments"][0])
        assert mb["recorded"]["num_items_in_batch"] == count and view["recording"]["recorded_steps"] == [1, 2]
    assert main(["batch", "--run", str(folder), "--rank", "0"]) == 0  # the text, rank 0 alone
    out = capsys.readouterr().out
    assert "recorded step 1 (recorded: 1, 2) of a run of Spied on 1 process, rank 0 shown" in out
    assert "not recorded" in out and "per rank in step 1" in out


def test_the_simulation_equals_the_record_and_a_planted_difference_is_shown(recorded, tmp_path, capsys):
    import pyarrow.parquet as pq

    from inspector.core.recorder import record_files as files

    folder, config, _ = recorded
    assert main(["batch", "--run", str(folder), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "step 1: rank 0 equal (2 micro-batches)\nstep 2: rank 0 equal (2 micro-batches)" in out
    assert "the simulation equals the record" in out
    # the same fields as the simulated step's `batch --json`
    assert main(["batch", "--config", str(config), "--json"]) == 0
    simulated = json.loads(capsys.readouterr().out)
    assert main(["batch", "--run", str(folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(simulated) <= set(shown) and set(simulated["micro_batches"][0]) <= set(shown["micro_batches"][0])
    # a collator that masked the eos in step 2's second micro-batch, planted through the recorder's writer
    planted = copy_of(recorded, tmp_path)
    path = files.step_file(planted, 0, 2)
    rows = pq.read_table(path).to_pylist()
    labels = rows[1]["labels"][0]
    at = max(t for t, label in enumerate(labels) if label == 1)
    labels[at] = -100
    files.write_step(planted, 0, 2, rows)
    assert main(["batch", "--run", str(planted), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "step 1: rank 0 equal" in out and "step 2: rank 0 DIFFERS" in out
    assert (f"first difference: step 2, rank 0, micro-batch 1: labels of batch row 0 at position {at}: the run's -100, "
            "the simulation's 1 (token '</s>')") in out


def _no_tokenizer(folder):
    run = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**run, "tokenizer": None}))


def _cut_short(folder):
    path = folder / "rank-00000" / "step-000002.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "change, argv, message",
    [
        (None, ["--run", "{tmp}"], "{tmp} is not a recording: it has no run.json"),
        (_cut_short, ["--run", "{rec}", "--step", "2"], "step-000002.parquet cannot be read"),
        (None, ["--run", "{rec}", "--step", "7"], "step 7 was not recorded in {rec}. Read one of the recorded steps: 1–2"),
        (_no_tokenizer, ["--run", "{rec}"], "names no tokenizer (its run's processing_class had no name_or_path)"),
        (None, ["--run", "{rec}", "--rank", "1"], "--rank 1 is not in {rec} (its run had 1). Pass --rank 0 (its only rank)"),
        (None, ["--run", "{rec}", "--packing"], "--packing sets the simulation, and --run alone simulates nothing"),
        (None, ["--run", "{rec}", "--world-size", "2"], "--world-size 2: {rec} was recorded on 1 process"),
        (None, ["--rank", "0"], "--rank picks a rank of a recording"),
    ],
)
def test_bad_input_is_one_line(recorded, tmp_path, capsys, change, argv, message):
    rec = copy_of(recorded, tmp_path)
    if change is not None:
        change(rec)
    (tmp_path / "empty").mkdir()
    values = {"tmp": tmp_path / "empty", "rec": rec}
    assert main(["batch", *(a.format(**values) for a in argv)]) == 2
    lines = [x for x in capsys.readouterr().err.strip().splitlines() if not x.startswith("…")]
    assert len(lines) == 1 and message.format(**values) in lines[0], lines


def test_a_rank_lacking_a_step_and_other_versions(recorded, tmp_path, capsys):
    """A step one rank lacks is never shown; a recording of other library versions is shown, and said."""
    root = _fake(tmp_path, 2, [[1, 2], [1]])
    assert main(["batch", "--run", str(root), "--step", "2"]) == 2
    err = capsys.readouterr().err
    assert f"step 2 of {root} was not recorded by rank 1 (the run stopped while writing it)" in err
    rec = copy_of(recorded, tmp_path)
    run = json.loads((rec / "run.json").read_text())
    run["versions"]["transformers"] = "4.0.0"
    (rec / "run.json").write_text(json.dumps(run))
    assert main(["batch", "--run", str(rec), "--json"]) == 0
    captured = capsys.readouterr()
    note = [x for x in captured.err.splitlines() if "other library versions" in x]
    assert len(note) == 1 and "transformers 4.0.0 → " in note[0]
    view = json.loads(captured.out)
    assert view["recording"]["versions_differ"][0].startswith("transformers 4.0.0 → ") and len(view["micro_batches"]) == 2
