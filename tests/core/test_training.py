"""Training bursts on the tiny model: losses fall, stop between steps, continue, write nothing."""

from __future__ import annotations

import copy
import os
from dataclasses import replace
from pathlib import Path

import pytest
from tolerances import assert_close_at_scale  # tests/ is on the path

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.errors import InspectorError
from inspector.core.training.burst import BurstSettings
from inspector.core.training.session import TrainingSession

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


def _grads(model):
    return [p.grad for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("strategy", ["copy", "mask", "trl"])
def test_continuing_after_the_optimizer_state_went_to_disk_trains_as_never_pausing(tiny_path, strategy):
    """2 + 2 epochs, the AdamW moments on disk in between, give the losses and weights of 4 at once."""
    import torch

    from inspector.core.models import load_model

    settings = BurstSettings(epochs=2, learning_rate=1e-2, seed=1)
    paused, straight = load_model(str(tiny_path)), load_model(str(tiny_path))
    with TrainingSession(paused.model, paused.tokenizer, _examples(paused), strategy, settings) as session:
        first = session.run(2)
        assert session.parked_optimizer is not None and session.parked_optimizer.is_file()
        assert len(session._trainer.optimizer.state) == 0  # the moments are on disk only
        second = session.run(2)
        model = session.model
    with TrainingSession(straight.model, straight.tokenizer, _examples(straight), strategy, settings) as session:
        whole = session.run(4)
        reference = session.model
    assert [s.step for s in second.steps] == list(range(11, 21))
    assert [s.loss for s in first.steps + second.steps] == [s.loss for s in whole.steps]
    assert [e.holdout for e in first.epochs + second.epochs] == [e.holdout for e in whole.epochs]
    for (name, a), (_, b) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_between_bursts_a_session_holds_only_its_weights_and_close_removes_its_files(fresh_tiny):
    seen = []
    session = TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), "copy", FAST)
    folder = session._tmp
    session.run(should_stop=lambda: len(seen) >= 3, on_step=seen.append)  # stopped inside an epoch
    assert _grads(session.model) == []
    optimizer = session._trainer.optimizer
    assert len(optimizer.state) == 0
    assert session.parked_optimizer.parent == Path(folder) and session.parked_optimizer.stat().st_size > 0
    session.run(1)  # the state comes back for the burst, and goes to disk again after it
    assert _grads(session.model) == [] and len(optimizer.state) == 0
    assert session.parked_optimizer.is_file()
    session.close()
    assert not os.path.exists(folder)
    assert session._trainer is None and session.parked_optimizer is None


def test_a_closed_and_dropped_session_leaves_nothing_holding_its_model(tiny_path):
    import weakref

    from inspector.core.models import load_model
    from inspector.core.training.memory import release_memory

    lm = load_model(str(tiny_path))
    refs = []
    for strategy in ("copy", "mask", "trl"):
        session = TrainingSession.on_a_copy(lm, _examples(lm), strategy, FAST)
        session.run(1)
        refs.append(weakref.ref(session.model))
        session.close()
        del session
    release_memory()
    assert [r() for r in refs] == [None, None, None]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("file write failed")])
def test_where_the_optimizer_state_cannot_be_written_it_stays_in_memory(fresh_tiny, monkeypatch, error):
    import torch

    def full_disk(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, "save", full_disk)
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), "mask", FAST) as session:
        session.run(1)
        assert session.parked_optimizer is None and len(session._trainer.optimizer.state) > 0
        assert os.listdir(session._tmp) == []
        second = session.run(1)
    assert [s.step for s in second.steps] == list(range(6, 11))


def test_the_tied_gradient_lands_in_one_buffer_with_the_stock_values(tiny_path):
    """TiedHeadLinear gives the very loss and gradients of the stock head; with the lookup's gradient
    sparse as well, the embedding's gradient is the stock one to rounding (repeated tokens' rows are
    summed in another order) and every other gradient is the same bits. Bursts use both."""
    import copy

    import torch

    from inspector.core.models import load_model
    from inspector.core.training.tied_head import TiedHeadLinear, sum_tied_gradient_in_place

    lm = load_model(str(tiny_path))
    ids = torch.tensor([lm.tokenizer(ARTICLE_EXAMPLES[0])["input_ids"]])
    grads = []
    for change in ("stock", "head", "head+sparse"):
        model = copy.deepcopy(lm.model)
        if change == "head":
            model.get_output_embeddings().__class__ = TiedHeadLinear
        elif change == "head+sparse":
            assert sum_tied_gradient_in_place(model) and type(model.get_output_embeddings()) is TiedHeadLinear
            assert model.get_input_embeddings().sparse
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_a, a), (loss_b, b), (loss_c, c) = grads
    assert torch.equal(loss_a, loss_b) and torch.equal(loss_a, loss_c)
    assert a.keys() == b.keys() == c.keys() and all(torch.equal(a[n], b[n]) for n in a)
    embedding = "model.embed_tokens.weight"
    assert not c[embedding].is_sparse
    assert_close_at_scale(c[embedding], a[embedding])  # a few float32 steps at the gradient's scale
    assert all(torch.equal(a[n], c[n]) for n in a if n != embedding)

    frozen = copy.deepcopy(lm.model)
    frozen.get_input_embeddings().weight.requires_grad_(False)
    assert not sum_tied_gradient_in_place(frozen)  # nothing to sum: left as it is
    assert type(frozen.get_output_embeddings()) is torch.nn.Linear and not frozen.get_input_embeddings().sparse
    for stock in (False, True):
        with TrainingSession.on_a_copy(lm, _examples(lm), "mask", replace(FAST, stock=stock)) as session:
            session.run(1)
            assert (type(session.model.get_output_embeddings()) is TiedHeadLinear) is not stock
            assert session.model.get_input_embeddings().sparse is not stock
    assert type(lm.model.get_output_embeddings()) is torch.nn.Linear  # the untrained original is untouched


def test_folders_left_by_a_killed_process_are_removed_when_a_session_starts(fresh_tiny, tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from inspector.core.training.session import SESSION_PREFIX

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{SESSION_PREFIX}{dead.pid}-abc"
    stale.mkdir()
    (stale / TrainingSession.OPTIMIZER_FILE).write_bytes(b"x" * 1000)
    ours = tmp_path / f"{SESSION_PREFIX}{os.getpid()}-def"
    ours.mkdir()
    other = tmp_path / "causallm-inspect-something-else"
    other.mkdir()
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), "mask", FAST) as session:
        assert Path(session._tmp).parent == tmp_path
        assert Path(session._tmp).name.startswith(f"{SESSION_PREFIX}{os.getpid()}-")
        assert not stale.exists() and ours.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ours.name, other.name])


def test_a_strategy_that_trains_no_token_is_refused_before_any_step(tiny, tmp_path):
    from inspector.core.labels.process.parent import load_label_function
    from inspector.core.labels.strategies import label_examples, refuse_nothing_to_learn

    tok = tiny.tokenizer
    f = tmp_path / "answers.py"  # trains the answer of the examples that say "perro", nothing of the others
    f.write_text(
        "def make_labels(example, tokenizer):\n"
        "    keep = 'perro' in example['text']\n"
        "    return [t if keep else -100 for t in example['input_ids']]\n"
    )
    fn = load_label_function(str(f))
    others = [add_special_tokens(t, tok.bos_token, tok.eos_token) for t in ARTICLE_EXAMPLES[1:3]]
    labeled = label_examples("custom", others, tok, custom=fn)
    assert [ex.trained_tokens for ex in labeled] == [0, 0]
    with pytest.raises(InspectorError, match="your label function make_labels trains no token of any of the 2 examples"):
        refuse_nothing_to_learn("custom", labeled, "make_labels")
    with pytest.raises(InspectorError, match="nothing to learn"):
        TrainingSession(tiny.model, tok, others, "custom", custom=fn)
    # One example trains: the others are left out, by number, and that one is trained.
    perro = add_special_tokens(ARTICLE_EXAMPLES[0], tok.bos_token, tok.eos_token)
    assert "perro" in perro.text
    with TrainingSession(copy.deepcopy(tiny.model), tok, [others[0], perro, others[1]], "custom", custom=fn) as session:
        assert session.skipped == [1, 3] and session.total_examples == 3
        assert session.examples == [perro] and len(session.labeled) == 1
        assert len(session.run(epochs=1).steps) == 1
