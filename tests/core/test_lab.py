"""The lab: one model, its examples and one burst source per strategy (live or a replay), one lesson context."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES
from inspector.core.errors import InspectorError
from inspector.core.lab import Lab
from inspector.core.lab.context import lesson_epochs, predicted_text
from inspector.core.lab.sources import LiveSource, ReplaySource
from inspector.core.lessons.model import load_lessons
from inspector.core.recording import prepare_runs
from inspector.core.training.burst import DEFAULT_EPOCHS, BurstSettings

SETTINGS = BurstSettings(epochs=2, learning_rate=1e-2)


def _lab(tiny_path, **kw) -> Lab:
    lab = Lab(str(tiny_path), device="cpu", **kw)
    lab.load()
    return lab


def _burst(lab: Lab, strategy: str, settings=SETTINGS, **kw):
    seen: dict[str, list] = {"start": [], "steps": [], "epochs": []}
    result = lab.burst(
        strategy,
        settings,
        on_start=lambda epochs, total, label: seen["start"].append((epochs, total, label)),
        on_step=seen["steps"].append,
        on_epoch=seen["epochs"].append,
        **kw,
    )
    return result, seen


def test_a_live_burst_reports_every_step_and_continues(tiny_path):
    lab = _lab(tiny_path)
    assert [fe.text for fe in lab.formatted] == [lab.formatted_for(t).text for t in ARTICLE_EXAMPLES]
    result, seen = _burst(lab, "mask")
    assert seen["start"] == [(2, 10, "live")]
    assert [p.done for p in seen["steps"]] == list(range(1, 11))
    assert [p.log.loss for p in seen["steps"]] == [s.loss for s in result.steps]
    assert [log.epoch for log in seen["epochs"]] == [1, 2]
    assert isinstance(lab.bursts.sources["mask"], LiveSource) and lab.bursts.sources["mask"].steps_done > 0
    more, _ = _burst(lab, "mask", BurstSettings(epochs=1, learning_rate=1e-2))
    assert lab.sessions["mask"].steps_done == 15 and len(more.steps) == 5
    assert lab.training_now is None


def test_predictions_have_a_row_per_trained_strategy_and_are_cached(tiny_path):
    lab = _lab(tiny_path)
    text = lab.predicted_text()
    first = lab.predictions(text)
    assert first.rows["untrained"] is not None and first.rows["mask"] is None
    assert lab.predictions(text).rows["untrained"] is first.rows["untrained"]  # the cache
    _burst(lab, "mask")
    after = lab.predictions(text)
    assert after.rows["mask"] is not None and after.rows["copy"] is None
    assert [r.input_id for r in after.rows["mask"]] == [r.input_id for r in first.rows["untrained"]]
    assert after.rows["mask"] != first.rows["untrained"]  # trained at 1e-2: other probabilities
    lab.reset()
    assert lab.bursts.sources == {} and lab.predictions(text).rows["mask"] is None


def test_a_replay_has_the_interface_of_a_live_burst_and_the_same_numbers(tiny_path):
    lab = _lab(tiny_path)
    (run,) = prepare_runs(lab, ["mask"], BurstSettings(epochs=4, learning_rate=1e-2))
    settings = BurstSettings(epochs=2, learning_rate=1e-2)
    said: list[str] = []
    replayed, seen = _burst(lab, "mask", settings, speed=0.0, tell=lambda text, severity: said.append(text))
    assert isinstance(lab.bursts.sources["mask"], ReplaySource) and lab.replaying("mask")
    assert seen["start"][0][:2] == (2, 10) and seen["start"][0][2].startswith("replay of a run prepared")
    assert [s.loss for s in replayed.steps] == [s["loss"] for s in run.result["steps"][:10]]
    assert [p.done for p in seen["steps"]] == list(range(1, 11))
    again, _ = _burst(lab, "mask", settings, speed=0.0)  # continues the recording
    assert [s.loss for s in again.steps] == [s["loss"] for s in run.result["steps"][10:20]]
    assert said == []
    assert _burst(lab, "mask", settings, speed=0.0, tell=lambda text, severity: said.append(text))[0] is None
    assert said == ["The prepared mask run ends at epoch 4: reset it, then choose live runs to train further."]
    assert lab.refusal("mask", None) is not None and lab.refusal("mask", 1.0) is None
    # The same burst live, on another lab: the recording's losses.
    live = _lab(tiny_path)
    trained, _ = _burst(live, "mask", BurstSettings(epochs=4, learning_rate=1e-2))
    assert [s.loss for s in trained.steps] == pytest.approx([s["loss"] for s in run.result["steps"]], rel=1e-5)


def test_without_a_prepared_run_a_replay_speed_trains_live_and_says_why(tiny_path):
    lab = _lab(tiny_path)
    said: list[tuple[str, str]] = []
    result, seen = _burst(lab, "copy", speed=1.0, tell=lambda text, severity: said.append((text, severity)))
    assert seen["start"][0][2] == "live" and len(result.steps) == 10
    assert said == [("No copy run is prepared for this model: training live.", "information")]


def test_every_front_end_builds_a_lesson_s_context_the_same_way(tiny_path):
    """The app, `lesson N` and `prepare` call these; the values follow the lesson, not each caller."""
    lab = _lab(tiny_path)
    lessons = load_lessons()
    for lesson in lessons:
        ctx = lab.demo_context(lesson)
        assert ctx.epochs == lesson_epochs(lesson) == (lesson.epochs or DEFAULT_EPOCHS)
        assert ctx.example == lab.lesson_example(lesson)
        if lesson.messages:
            assert ctx.example.messages == lesson.messages and ctx.example.kind == "chat"
        elif lesson.example:
            assert ctx.example.source == lesson.example
        else:
            assert ctx.example == lab.formatted[0]
        assert ctx.strategy == lesson.strategy and ctx.examples == lab.formatted
    assert predicted_text(lab.template) == lab.predicted_text() and "good" in lab.predicted_text()


def test_a_lab_without_usable_examples_says_so_and_keeps_the_model(tiny_path):
    from inspector.core.data.examples import Example

    lab = Lab(str(tiny_path), device="cpu", examples=[Example("no turns at all", 1, "given")], train_rows=1)
    found = lab.load()
    assert found.data_error and lab.data_error == found.data_error and lab.formatted == []
    assert lab.loaded is not None  # the lessons still work on the model
    lesson = next(lesson for lesson in load_lessons() if not lesson.example)
    with pytest.raises(InspectorError, match="could not be formatted"):
        lab.lesson_example(lesson)


def test_an_unloaded_lab_says_what_to_wait_for():
    with pytest.raises(InspectorError, match="not loaded yet"):
        Lab().predictions("x")
