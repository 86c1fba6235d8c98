"""Training bursts on the tiny model: losses fall, stop between steps, continue, write nothing."""

from __future__ import annotations

import os

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.errors import InspectorError
from inspector.core.training.session import BurstSettings, TrainingSession

FAST = BurstSettings(epochs=3, learning_rate=1e-2, seed=1, holdout="good")


def _examples(lm, texts=ARTICLE_EXAMPLES):
    return [add_special_tokens(t, lm.tokenizer.bos_token, lm.tokenizer.eos_token) for t in texts]


@pytest.mark.parametrize("strategy", ["copy", "mask", "trl"])
def test_a_burst_lowers_the_loss_and_answers_the_holdout_each_epoch(fresh_tiny, strategy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps, epochs = [], []
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), strategy, FAST) as session:
        result = session.run(on_step=steps.append, on_epoch=epochs.append)
        # The last epoch's held-out answer is the trained model's greedy answer.
        assert result.epochs[-1].holdout == session.holdout_answer() != ""
    assert len(result.steps) == 15 == len(steps)
    assert [s.step for s in steps] == list(range(1, 16))
    assert [e.epoch for e in result.epochs] == [1, 2, 3] == [e.epoch for e in epochs]
    assert result.epochs[-1].loss < result.epochs[0].loss
    assert result.train_runtime > 0 and result.tokens_per_second > 0
    # Each step carries its own seconds (held-out answers excluded), and so does the JSON.
    assert len(result.step_seconds) == 15 and all(t > 0 for t in result.step_seconds)
    assert sum(result.step_seconds) <= result.train_runtime
    assert [s["seconds"] for s in result.to_dict()["steps"]] == result.step_seconds
    per_epoch_trained = 10 if strategy != "copy" else None  # " word" + eos for five examples
    if per_epoch_trained:
        assert result.trained_tokens == 3 * per_epoch_trained
    assert result.input_tokens > result.trained_tokens
    assert not result.stopped and result.epochs_done == pytest.approx(3)
    assert os.listdir(tmp_path) == []  # nothing written to the working directory


def test_stop_between_steps(fresh_tiny):
    seen = []
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), "mask", FAST) as session:
        result = session.run(on_step=seen.append, should_stop=lambda: len(seen) >= 4)
    assert result.stopped
    assert len(result.steps) == 4
    assert result.epochs_done == pytest.approx(0.8)
    assert len(result.epochs) == 0


def test_a_second_burst_continues_where_the_first_ended(fresh_tiny):
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), "mask", FAST) as session:
        first = session.run(epochs=2)
        optimizer = session._trainer.optimizer
        second = session.run(epochs=2)
        assert session._trainer.optimizer is optimizer  # Adam state carried over
    assert [s.step for s in second.steps] == list(range(11, 21))
    assert [e.epoch for e in second.epochs] == [3, 4]
    assert second.epochs_done == pytest.approx(4)
    assert second.epochs[-1].loss < first.epochs[0].loss


def test_same_seed_same_losses(tiny_path):
    from inspector.core.models import load_model

    runs = []
    for _ in range(2):
        lm = load_model(str(tiny_path))
        with TrainingSession(lm.model, lm.tokenizer, _examples(lm), "copy", BurstSettings(epochs=1, learning_rate=1e-2)) as s:
            runs.append([x.loss for x in s.run().steps])
    assert runs[0] == runs[1]


def test_bad_settings_are_clear_errors(fresh_tiny):
    with pytest.raises(InspectorError, match="--epochs"):
        BurstSettings(epochs=0)
    with pytest.raises(InspectorError, match="--lr"):
        BurstSettings(learning_rate=5)
    with pytest.raises(InspectorError, match="no examples"):
        TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, [], "mask")


@pytest.mark.parametrize("where", ["forward", "optimizer"])
def test_out_of_memory_says_where_it_stopped_and_whether_the_weights_are_whole(fresh_tiny, where):
    import torch

    model = fresh_tiny.model
    examples = _examples(fresh_tiny)
    with TrainingSession(model, fresh_tiny.tokenizer, examples, "mask", FAST) as session:
        snapshots = {}
        calls = {"n": 0}

        def after_step(log):
            snapshots[log.step] = {k: v.clone() for k, v in model.state_dict().items()}

        def boom(*args, **kwargs):
            calls["n"] += 1
            if session.steps_done == 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

        if where == "forward":
            model.register_forward_pre_hook(boom)
        else:
            from transformers import TrainerCallback

            class Boom(TrainerCallback):
                def on_pre_optimizer_step(self, args, state, control, **kw):
                    boom()

        with pytest.raises(InspectorError) as err:
            session.run(on_step=after_step, extra_callbacks=[] if where == "forward" else [Boom()])
        msg = str(err.value)
        assert "out of memory at step 3 of the mask burst" in msg
        if where == "forward":
            assert "its weights are those after step 2" in msg and not session.damaged
            assert all((snapshots[2][k] == v).all() for k, v in model.state_dict().items())
        else:
            assert "reset this strategy" in msg and session.damaged
