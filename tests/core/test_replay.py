"""Prepared runs: stored once, found for exactly the burst they recorded, ignored when stale or corrupt."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from inspector.core.data.chat_format import (
    ARTICLE_EXAMPLES,
    HOLDOUT_ANSWER,
    HOLDOUT_WORD,
    add_special_tokens,
    article_text,
)
from inspector.core.labels.strategies import encode
from inspector.core.runs import store as replay
from inspector.core.training.burst import BurstSettings

SETTINGS = BurstSettings(epochs=2, learning_rate=1e-2)


def _prepare(lm, strategies, settings, *, texts=()):
    """prepare's bursts through a Lab around `lm`, on the article's five examples."""
    from inspector.core.data.chat_format import ARTICLE_MARKERS
    from inspector.core.lab import Lab
    from inspector.core.recording import prepare_runs

    with Lab.around(lm, list(ARTICLE_EXAMPLES), ARTICLE_MARKERS, train_rows=len(ARTICLE_EXAMPLES)) as lab:
        return prepare_runs(lab, strategies, settings, texts=texts)


def _setup(lm):
    fes = [add_special_tokens(t, lm.tokenizer.bos_token, lm.tokenizer.eos_token) for t in ARTICLE_EXAMPLES]
    text = article_text(HOLDOUT_WORD, HOLDOUT_ANSWER)
    ids = encode(add_special_tokens(text, lm.tokenizer.bos_token, lm.tokenizer.eos_token), lm.tokenizer)[0]
    return fes, text, ids


def test_prepare_stores_a_run_that_replays_exactly(tiny):
    fes, text, ids = _setup(tiny)
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    (run,) = _prepare(tiny, ["mask"], SETTINGS)
    after = tiny.model.state_dict()
    assert before.keys() == after.keys()
    assert all(v.equal(after[k]) for k, v in before.items())  # prepare trains a copy, never the model
    found, why = replay.find(tiny, fes, "mask", SETTINGS, text)
    assert why == "ok" and found.key == run.key
    burst = found.burst(2)
    assert len(burst.steps) == 10 and [e.epoch for e in burst.epochs] == [1, 2]
    assert [s.loss for s in burst.steps] == [s["loss"] for s in run.result["steps"]]
    one = found.burst(1)
    assert len(one.steps) == 5 and [e.epoch for e in one.epochs] == [1]
    rows = found.predictions_for(text, 2)
    assert len(rows) == len(ids) and rows[0].input_id == ids[0]
    assert found.burst(2).epochs[-1].loss < found.burst(2).epochs[0].loss  # the copy learned


def test_other_settings_data_or_longer_bursts_find_nothing(tiny):
    fes, text, ids = _setup(tiny)
    _prepare(tiny, ["copy"], SETTINGS)
    assert replay.find(tiny, fes, "copy", replace(SETTINGS, learning_rate=2e-2), text)[0] is None
    assert replay.find(tiny, fes[:3], "copy", SETTINGS, text)[0] is None
    assert replay.find(tiny, fes, "mask", SETTINGS, text)[0] is None
    run, why = replay.find(tiny, fes, "copy", replace(SETTINGS, epochs=5), text)
    assert run is None and "2 epochs only" in why
    assert replay.find(tiny, fes, "copy", replace(SETTINGS, epochs=1), text)[0] is not None


def test_corrupt_or_edited_store_is_ignored(tiny):
    fes, text, ids = _setup(tiny)
    (run,) = _prepare(tiny, ["mask"], SETTINGS)
    path = replay.store_dir() / f"{run.key}.json"
    data = json.loads(path.read_text())
    data["run"]["result"]["epochs"][-1]["holdout"] = " bueno</s>"  # a doctored result
    path.write_text(json.dumps(data))
    found, why = replay.find(tiny, fes, "mask", SETTINGS, text)
    assert found is None and "checksum" in why
    path.write_text(path.read_text()[:100])  # a truncated file
    found, why = replay.find(tiny, fes, "mask", SETTINGS, text)
    assert found is None and why.startswith("corrupt")
    assert [p.name for p in replay.store_dir().iterdir() if p.name.startswith(".tmp")] == []


def test_library_versions_are_part_of_the_key(tiny, monkeypatch):
    fes, text, ids = _setup(tiny)
    _prepare(tiny, ["mask"], SETTINGS)
    monkeypatch.setattr(replay, "library_versions", lambda: {"torch": "0.0"})
    assert replay.find(tiny, fes, "mask", SETTINGS, text)[0] is None


def test_killing_prepare_never_leaves_a_run_that_would_be_used(tiny_path, tmp_path, monkeypatch):
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    monkeypatch.setenv("CAUSALLM_INSPECT_CACHE", str(tmp_path / "cache"))
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "inspector", "prepare", "--model", str(tiny_path), "--epochs", "2", "--lr", "0.01"]
    rng = random.Random(3)
    for delay in sorted(rng.uniform(0.5, 6.0) for _ in range(3)):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        store = tmp_path / "cache" / "prepared"
        for f in store.glob("*.json") if store.exists() else []:
            run, why = replay.load(f.stem)
            assert run is not None, why  # every file under a run's name is whole


def test_a_segment_is_the_burst_that_ran_those_steps(tiny):
    fes, text, ids = _setup(tiny)
    (run,) = _prepare(tiny, ["mask"], replace(SETTINGS, epochs=3))
    assert run.steps_per_epoch == 5 and len(run.step_seconds) == 15
    assert all(s > 0 for s in run.step_seconds)
    middle = run.segment(5, 12, stopped=True)
    assert [s.step for s in middle.steps] == list(range(6, 13))
    assert [e.epoch for e in middle.epochs] == [2]  # epoch 2 ends at step 10; epoch 3 was not reached
    assert middle.stopped and middle.epochs_done == 12 / 5
    assert run.segment(0, 15).epochs_done == 3 and len(run.burst(3).epochs) == 3


def test_predictions_are_stored_for_every_text_asked(tiny):
    fes, text, ids = _setup(tiny)
    other = ARTICLE_EXAMPLES[1]
    other_ids = encode(fes[1], tiny.tokenizer)[0]
    (run,) = _prepare(tiny, ["copy"], SETTINGS, texts=[other])
    for epoch in (1, 2):
        rows = run.predictions_for(other, epoch)
        assert [r.input_id for r in rows] == other_ids
        assert run.predictions_for(text, epoch)[0].input_id == ids[0]
    assert run.predictions_for("a text never prepared", 1) is None
    assert run.predictions_for(other, 3) is None
    # Stored rows are the rows the live model gives after the same training.
    from inspector.core.training.predictions import teacher_forced
    from inspector.core.training.session import TrainingSession

    with TrainingSession.on_a_copy(tiny, fes, "copy", SETTINGS) as session:
        session.run()
        assert run.predictions_for(other, 2) == teacher_forced(session.model, tiny.tokenizer, other_ids)


def test_a_miss_says_how_the_nearest_prepared_run_differs(tiny):
    fes, text, ids = _setup(tiny)
    _prepare(tiny, ["copy"], SETTINGS)
    run, why = replay.find(tiny, fes, "copy", replace(SETTINGS, learning_rate=3e-2, seed=7), text)
    assert run is None
    assert why.startswith("the prepared copy run differs in burst settings")
    assert "learning_rate 0.01 there, 0.03 here" in why and "seed 1 there, 7 here" in why
    assert replay.find(tiny, fes[:2], "copy", SETTINGS, text)[1] == "the prepared copy run differs in training examples"
    assert replay.find(tiny, fes, "mask", SETTINGS, text)[1] == "none stored"  # no mask run at all


def test_a_demo_is_stored_and_found_for_its_context_only(tiny):
    from inspector.core.data.chat_format import ARTICLE_MARKERS
    from inspector.core.lab import Lab
    from inspector.core.lessons.model import load_lessons
    from inspector.core.recording import prepare_demo

    lesson = next(lesson for lesson in load_lessons() if lesson.demo == "eos-padding")
    lab = Lab.around(tiny, list(ARTICLE_EXAMPLES), ARTICLE_MARKERS, train_rows=5)
    stored = prepare_demo(lab, lesson, epochs=1, learning_rate=1e-2)
    ctx = lab.demo_context(lesson, epochs=1, learning_rate=1e-2)
    found, why = replay.find_demo(tiny, ctx, "eos-padding")
    assert why == "ok" and found.text == stored.text and "eos" in found.text
    assert replay.find_demo(tiny, replace(ctx, epochs=2), "eos-padding")[0] is None
    assert replay.find_demo(tiny, ctx, "step-timing")[0] is None
    # a demo is not a training run: find() never mistakes one for the other
    assert replay.load(stored.key)[0] is None
    # the Lab replays it where asked to, and says so
    shown = lab.demo(lesson, epochs=1, learning_rate=1e-2, prepared=True)
    assert shown.replayed and shown.text == stored.text and shown.source.startswith("replay of a run prepared")
    assert not lab.demo(lesson, epochs=1, learning_rate=1e-2, prepared=False).replayed


def test_demos_that_build_trainers_are_prepared_and_replay_without_one(tiny, monkeypatch):
    """Lessons 11 and 13's demos (TRL trainers, forward and backward passes, computed when the
    lesson opens) are stored by prepare like those that train; a prepared lab replays them."""
    from inspector.core.data.chat_format import ARTICLE_MARKERS
    from inspector.core.lab import Lab
    from inspector.core.lessons import packing, weights
    from inspector.core.lessons.model import load_lessons
    from inspector.core.recording import prepare_demos

    lessons = {lesson.demo: lesson for lesson in load_lessons() if lesson.demo in ("shift", "packing", "weights")}
    lab = Lab.around(tiny, list(ARTICLE_EXAMPLES), ARTICLE_MARKERS, train_rows=5)
    stored = {d.name: d for d in prepare_demos(lab, list(lessons.values()))}
    assert sorted(stored) == ["packing", "weights"]  # the shift's forward pass is quick: never stored
    assert all(replay.find_demo(tiny, lab.demo_context(lessons[n]), n)[0] is not None for n in stored)

    def no_trainer(*args, **kwargs):
        raise AssertionError("a prepared demo was computed live")

    monkeypatch.setattr(packing, "packing_view", no_trainer)
    monkeypatch.setattr(weights, "weights_view", no_trainer)
    for name in ("packing", "weights"):
        shown = lab.demo(lessons[name], prepared=True)
        assert shown.replayed and shown.source.startswith("replay of a run prepared"), name
        assert shown.text == stored[name].text and shown.title == stored[name].title
    # live (runs set to live), or other settings than those prepared: computed now
    with pytest.raises(AssertionError, match="computed live"):
        lab.demo(lessons["packing"], prepared=False)
    with pytest.raises(AssertionError, match="computed live"):
        lab.demo(lessons["weights"], learning_rate=3e-2, prepared=True)
    assert not lab.demo(lessons["shift"], prepared=True).replayed


def test_the_stored_runs_of_a_model_are_listed_and_others_are_not(tiny, tiny_bos):
    assert replay.stored_runs_of(tiny) == []  # a fresh cache: nothing to replay
    fes, text, ids = _setup(tiny)
    _prepare(tiny, ["mask"], SETTINGS)
    assert replay.stored_runs_of(tiny) == ["mask"]
    assert replay.stored_runs_of(tiny_bos) == []  # another model's weights


def test_a_replayed_burst_carries_seconds_per_step(tiny):
    fes, text, ids = _setup(tiny)
    (run,) = _prepare(tiny, ["mask"], SETTINGS)
    burst = run.burst(2)
    assert [s.seconds for s in burst.steps] == [s["seconds"] for s in run.result["steps"]]
    assert all(t > 0 for t in burst.step_seconds)
    # A run stored before steps had their own seconds: the recorded wait per step stands in.
    old = replace(run, result={**run.result, "steps": [{k: v for k, v in s.items() if k != "seconds"}
                                                       for s in run.result["steps"]]})
    assert old.burst(2).step_seconds == run.step_seconds[:10]
    assert [s.seconds for s in old.segment(3, 5).steps] == run.step_seconds[3:5]
