"""The batch view (F6): the step's micro-batches as SFTTrainer builds them, recomputed when a
setting changes, moved through with [ and ]."""

from __future__ import annotations

from textual.widgets import Input
from ui_helpers import FAST_LR, started, wait_until

from inspector.app import InspectorApp
from inspector.widgets.batch_view import BatchGrid

SIZE = (140, 42)


def _app(tiny_path) -> InspectorApp:
    return InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs="live")


async def test_f6_shows_the_packed_step_and_follows_the_settings(tiny_path):
    app = _app(tiny_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f6")
        view = app.main.views["batch"]
        assert app.main.view == "batch" and view.display
        try:
            await wait_until(pilot, lambda: view.step_view is not None, timeout=60, what="the batches")
        except AssertionError:
            raise AssertionError(f"{app.errors} {view.query_one('#batch-status').render()} {view._request}") from None
        step = view.step_view
        assert step.settings["packing"] and step.settings["packing_strategy"] == "bfd"
        grid = view.query_one(BatchGrid)
        mb = step.micro_batches[0]
        # position_ids restart where each packed example starts, and the row is marked there.
        positions = mb.rows_of("position_ids")[0]
        starts = [s.start for s in mb.segments[0]]
        assert len(starts) >= 2 and all(positions[s] == 0 for s in starts)
        row = grid.row_names.index("row")
        assert grid.cell(row, starts[1])[0] == f"▶{mb.segments[0][1].row}"
        weights = [w for m in step.micro_batches for r in m.weights["trainer"] for w in r]
        assert abs(sum(weights) - 1) < 1e-6  # every trained token of the step weighs 1/N
        summary = str(view.query_one("#batch-summary").render())
        assert "step 1 of" in summary and "no attention_mask" in summary
        # ] moves to the next row of the step.
        before = view.index
        await pilot.press("right_square_bracket")
        assert view.index == min(before + 1, len(view.places) - 1)
        # Other settings: no packing, four micro-batches of accumulation: rebuilt off the UI thread.
        view.query_one("#batch-packing").value = "none"
        view.query_one("#batch-accumulation", Input).value = "4"
        await wait_until(pilot, lambda: view.step_view is not step and not view.step_view.settings["packing"],
                         timeout=60, what="the rebuilt step")
        assert len(view.step_view.micro_batches) == 4  # one row per micro-batch, four accumulated
        assert "attention_mask sent" in str(view.query_one("#batch-summary").render())
        # A bad value is named in the view, and nothing is rebuilt.
        view.query_one("#batch-size", Input).value = "0"
        await wait_until(pilot, lambda: "batch size must be" in str(view.query_one("#batch-status").render()),
                         timeout=10, what="the message")
        assert app.errors == []


async def test_the_batch_view_starts_from_a_trl_sft_config(tiny_path, tmp_path):
    config = tmp_path / "sft.yaml"
    config.write_text("packing: true\npacking_strategy: bfd_split\nmax_length: 40\ngradient_accumulation_steps: 3\n"
                      "per_device_train_batch_size: 1\ncompletion_only_loss: false\n")
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs="live", batch_config=str(config))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f6")
        view = app.main.views["batch"]
        assert view.query_one("#batch-max-length", Input).value == "40"
        assert view.query_one("#batch-accumulation", Input).value == "3"
        assert view.query_one("#batch-packing").value == "bfd_split"
        await wait_until(pilot, lambda: view.step_view is not None, timeout=60, what="the batches")
        settings = view.step_view.settings
        assert settings["packing_strategy"] == "bfd_split" and settings["max_length"] == 40
        assert settings["completion_only_loss"] is False  # a setting with no field comes from the config
        assert app.errors == []


def test_a_config_the_parser_refuses_stops_the_app_before_it_opens(capsys, tmp_path):
    from inspector.cli import main

    config = tmp_path / "bad.yaml"
    config.write_text("packing_strategy: sideways\n")
    assert main(["--config", str(config)]) == 2
    assert "packing strategy 'sideways'" in capsys.readouterr().err
    config.write_text("packing: true\nnot_a_field: 1\n")
    assert main(["--config", str(config)]) == 2
    assert "not_a_field" in capsys.readouterr().err
