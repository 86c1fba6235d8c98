"""Learning epoch by epoch: the rows recorded after every epoch are the model's after that epoch,
epoch 0 is the untrained model's, and what they show is computed."""

from __future__ import annotations

import pytest

from inspector.core.lab import Lab
from inspector.core.lab.sources import ReplaySource
from inspector.core.recording import prepare_runs
from inspector.core.training.burst import BurstSettings
from inspector.core.training.learning import heat_map_lines, means, shade
from inspector.core.training.predictions import PredictionRow, prediction_input, teacher_forced

ONE = BurstSettings(epochs=1, learning_rate=1e-2, seed=1)
THREE = BurstSettings(epochs=3, learning_rate=1e-2, seed=1)


def _lab(tiny_path) -> Lab:
    lab = Lab(str(tiny_path), device="cpu")
    lab.load()
    return lab


def _ids(lab: Lab, text: str) -> list[int]:
    return prediction_input(lab.formatted_for(text), lab.model.tokenizer, lab.model.max_length)[0]


def test_each_epoch_s_rows_equal_a_teacher_forced_pass_after_that_epoch(tiny_path):
    lab = _lab(tiny_path)
    text = lab.predicted_text()
    for epoch in (1, 2):
        lab.burst("copy", ONE)
        session = lab.sessions["copy"]
        independent = teacher_forced(session.model, lab.model.tokenizer, _ids(lab, text))
        assert session.epoch_rows[epoch][text] == independent
    curve = lab.learning(text).curves["copy"]
    assert sorted(curve.epochs) == [0, 1, 2]
    assert curve.epochs[2] == independent and curve.epochs[1] != curve.epochs[2]
    assert [e for e, _ in curve.losses] == [1, 2]


def test_epoch_0_is_the_untrained_model_s_predictions(tiny_path):
    lab = _lab(tiny_path)
    text = lab.train_examples[0].text  # watched by default, as the held-out example is
    untrained = teacher_forced(lab.model.model, lab.model.tokenizer, _ids(lab, text))
    lab.burst("mask", ONE)
    learning = lab.learning(text)
    assert learning.curves["mask"].epochs[0] == untrained == lab.predictions(text).rows["untrained"]
    assert learning.curves["mask"].epochs[1] != untrained
    assert "copy" not in learning.curves and "copy" not in learning.notes  # not trained: nothing to say


def test_a_text_asked_for_is_recorded_from_the_next_epoch_on(tiny_path):
    lab = _lab(tiny_path)
    other = lab.train_examples[2].text
    lab.burst("copy", ONE)
    first = lab.learning(other)  # asks for it: not recorded yet
    assert "copy" not in first.curves and "next epoch" in first.notes["copy"]
    lab.burst("copy", ONE)
    assert sorted(lab.learning(other).curves["copy"].epochs) == [0, 2]


def test_copy_raises_the_prompt_s_probabilities_and_mask_the_answer_s(tiny_path):
    lab = _lab(tiny_path)
    text = lab.train_examples[0].text
    for strategy in ("copy", "mask"):
        lab.burst(strategy, THREE)
    learning = lab.learning(text)
    copy, mask = learning.curves["copy"], learning.curves["mask"]
    copy_prompt0, _ = means(copy.epochs[0], learning.answer)
    copy_prompt3, _ = means(copy.epochs[3], learning.answer)
    _, mask_answer0 = means(mask.epochs[0], learning.answer)
    _, mask_answer3 = means(mask.epochs[3], learning.answer)
    assert copy_prompt3 > copy_prompt0
    assert mask_answer3 > mask_answer0
    lines = learning.summary_lines()
    assert [line.split(":")[0] for line in lines] == ["copy", "mask"] and all("(epoch 0 -> 3)" in x for x in lines)


def test_a_replay_shows_the_epochs_its_prepared_run_stored(tiny_path):
    lab = _lab(tiny_path)
    text = lab.predicted_text()
    (run,) = prepare_runs(lab, ["mask"], BurstSettings(epochs=3, learning_rate=1e-2))
    lab.burst("mask", BurstSettings(epochs=2, learning_rate=1e-2), speed=0.0)
    assert isinstance(lab.bursts.sources["mask"], ReplaySource)
    curve = lab.learning(text).curves["mask"]
    assert sorted(curve.epochs) == [0, 1, 2]
    assert curve.epochs[2] == run.predictions_for(text, 2)
    assert [loss for _, loss in curve.losses] == [e["loss"] for e in run.result["epochs"][:2]]


def _row(position: int, p: float | None) -> PredictionRow:
    return PredictionRow(position, 1, "a", 2 if p is not None else None, "b", 2, "b", True, p, ())


def test_means_split_the_prompt_from_the_answer_and_the_heat_map_shades_each_position():
    rows = [_row(0, 0.1), _row(1, 0.3), _row(2, 0.95), _row(3, None)]
    assert means(rows, frozenset({2})) == (pytest.approx(0.2), pytest.approx(0.95))
    assert means(rows, frozenset()) == (pytest.approx(1.35 / 3), None)
    assert [shade(p) for p in (0.0, 0.3, 0.5, 0.7, 1.0, None)] == [" ", "░", "▒", "▓", "█", "·"]
    assert heat_map_lines({0: rows, 1: rows}, frozenset({2})) == [
        "epoch   0 | ░█·|",
        "epoch   1 | ░█·|",
        "answer    |  ^ |",
    ]


def test_the_summary_line_of_a_curve_reads_fixed_values():
    """Prompt positions 0 and 1, answer position 2 (its next token is the answer's); p None left out."""
    from inspector.core.training.learning import Curve, Learning

    rows0 = [_row(0, 0.2), _row(1, 0.4), _row(2, 0.1), _row(3, None)]
    rows3 = [_row(0, 0.6), _row(1, 0.8), _row(2, 0.5), _row(3, None)]
    curve = Curve("copy", "copy", {0: rows0, 3: rows3}, [(1, 1.0), (3, 0.5)])
    assert curve.summary(frozenset({2})) == "copy: prompt 0.30 -> 0.70, answer 0.10 -> 0.50 (epoch 0 -> 3)"
    assert curve.summary(frozenset()) == "copy: prompt 0.23 -> 0.63, answer n/a -> n/a (epoch 0 -> 3)"
    learning = Learning("t", frozenset({2}), curves={"copy": curve})
    assert learning.summary_lines() == ["copy: prompt 0.30 -> 0.70, answer 0.10 -> 0.50 (epoch 0 -> 3)"]
