"""The app on a recording (`causallm-inspect --run DIR`): it opens on the batch view's recorded step,
`[` / `]` go through the ranks, and a step that cannot be read is a notification, the app working on.
The two-rank recording is written through the recorder's own writer from a real one-process recording."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input
from ui_helpers import FAST_LR, wait_until

from inspector.app import InspectorApp
from inspector.widgets.batch_view import BatchGrid

SIZE = (140, 42)


@pytest.fixture
def two_ranks(tiny_path, tmp_path):
    """A recording of two ranks: a real run's steps 1 and 2, written as step 1 of rank 0 and of rank 1."""
    import pyarrow.parquet as pq
    from core.test_recorder import trainer_for  # tests/ is on the path

    from inspector.core.recorder import record_files as files
    from inspector.recorder import RecorderCallback

    one = tmp_path / "one"
    trainer, _ = trainer_for(tiny_path, tmp_path, RecorderCallback(one, steps=2))
    trainer.train()
    root = tmp_path / "two"
    run = json.loads((one / files.RUN_FILE).read_text())
    files.write_json(root / files.RUN_FILE, {**run, "world_size": 2})
    for rank in (0, 1):
        rows = pq.read_table(files.step_file(one, 0, rank + 1)).to_pylist()
        files.write_step(root, rank, 1, [{**r, "step": 1, "rank": rank} for r in rows])
    return root


async def test_the_app_opens_a_recording_and_brackets_go_through_the_ranks(tiny_path, two_ranks, monkeypatch):
    from inspector.core.lab.recorded import RecordingSource

    reads: list[int] = []
    read = RecordingSource.step
    monkeypatch.setattr(RecordingSource, "step", lambda self, step: reads.append(step) or read(self, step))
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs="live",
                       recording=RecordingSource(str(two_ranks), str(tiny_path)))
    async with app.run_test(size=SIZE) as pilot:
        view = app.main.views["batch"]
        await wait_until(pilot, lambda: view.step_view is not None, timeout=60, what="the recorded step")
        assert app.main.view == "batch" and view.display
        step = view.step_view
        assert step.world_size == 2 and step.recording["recorded_steps"] == [1]
        assert [(mb.micro_step, mb.rank) for mb in step.micro_batches] == [(0, 0), (0, 1), (1, 0), (1, 1)]
        assert view.query_one("#batch-world", Input).value == "2" and view.query_one("#batch-world", Input).disabled
        assert not view.query_one("#batch-step", Input).disabled
        grid = view.query_one(BatchGrid)
        row = grid.row_names.index("row")
        starts = [s.start for s in step.micro_batches[0].segments[0]]
        assert grid.cell(row, starts[1])[0] == "▶s2"  # the second sequence of the row: no data row is claimed
        summary = lambda: str(view.query_one("#batch-summary").render())  # noqa: E731
        await wait_until(pilot, lambda: "recorded step 1" in summary(), timeout=30, what="the recorded step's summary")
        assert "rank 0 of 2" in summary()
        await pilot.pause(0.5)
        assert reads == [1]  # read once: not again when the model came, nor for the fields' first values
        legend = str(view.query_one("#batch-legend").render())
        assert "not recorded" in legend and "row N of the data" not in legend  # the recording's legend, once drawn
        await pilot.press("right_square_bracket")
        assert view.step_view.micro_batches[view.places[view.index][0]].rank == 1 and "rank 1 of 2" in summary()
        await pilot.press("left_square_bracket")
        assert "rank 0 of 2" in summary()
        # A step that was not recorded: a notification, nothing shown as if it were the step, the app works on.
        view.query_one("#batch-step", Input).value = "3"
        await wait_until(pilot, lambda: any("step 3 was not recorded" in n.message for n in app._notifications),
                         timeout=20, what="the notification")
        assert view.step_view is None and "step 3 was not recorded" in str(view.query_one("#batch-status").render())
        view.query_one("#batch-step", Input).value = "1"
        await wait_until(pilot, lambda: view.step_view is not None, timeout=20, what="step 1 again")
        await pilot.press("f2")
        assert app.main.view == "labels"


def test_the_app_refuses_a_folder_that_is_not_a_recording_before_it_opens(capsys, tmp_path):
    from core.test_recorder import _fake

    from inspector.cli import main

    assert main(["--run", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a recording: it has no run.json" in capsys.readouterr().err
    assert main(["--run", str(_fake(tmp_path, 1, [[1]]))]) == 2  # its run.json names no tokenizer
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "names no tokenizer" in line and "Pass --model" in line
