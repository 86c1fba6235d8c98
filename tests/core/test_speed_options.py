"""The burst speed options: each does what it says, and the trained-positions loss equals
the stock loss."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.labels.strategies import label_examples
from inspector.core.training.burst import BurstSettings
from inspector.core.training.hf_trainer import trained_positions_trainer
from inspector.core.training.session import TrainingSession

MULTI = "\n\n### Human: hi\n\n### Assistant: hola\n\n### Human: dog\n\n### Assistant: perro"


def _examples(lm, texts=ARTICLE_EXAMPLES):
    return [add_special_tokens(t, lm.tokenizer.bos_token, lm.tokenizer.eos_token) for t in texts]


def _batch(lm, strategy, texts):
    import torch

    labeled = label_examples(strategy, _examples(lm, texts), lm.tokenizer)
    n = max(len(x.rows) for x in labeled)
    pad = lm.tokenizer.pad_token_id
    ids = torch.tensor([x.input_ids + [pad] * (n - len(x.rows)) for x in labeled])
    att = torch.tensor([[1] * len(x.rows) + [0] * (n - len(x.rows)) for x in labeled])
    lab = torch.tensor([x.labels + [-100] * (n - len(x.rows)) for x in labeled])
    return {"input_ids": ids, "attention_mask": att, "labels": lab}


@pytest.mark.parametrize("strategy", ["mask", "copy"])
@pytest.mark.parametrize("texts", [ARTICLE_EXAMPLES[:1], ARTICLE_EXAMPLES + (MULTI,)], ids=["one", "padded-batch"])
def test_trained_positions_loss_equals_the_stock_loss(tiny, strategy, texts):
    import torch

    inputs = _batch(tiny, strategy, texts)
    loss_fn = trained_positions_trainer().loss_function
    with torch.no_grad():
        stock = tiny.model(**inputs).loss
        ours = loss_fn(tiny.model, inputs)
    assert float(ours) == pytest.approx(float(stock), abs=1e-5)


def test_trained_positions_burst_trains(fresh_tiny):
    s = BurstSettings(epochs=2, learning_rate=1e-2, head_trained_only=True)
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), "mask", s) as session:
        result = session.run()
    assert result.epochs[-1].loss < result.epochs[0].loss


def test_frozen_embedding_stays_put_while_the_rest_trains(fresh_tiny):
    model = fresh_tiny.model
    emb = model.get_input_embeddings().weight.detach().clone()
    layer = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    s = BurstSettings(epochs=1, learning_rate=1e-2, train_embeddings=False)
    with TrainingSession(model, fresh_tiny.tokenizer, _examples(fresh_tiny), "mask", s) as session:
        session.run()
    assert (model.get_input_embeddings().weight == emb).all()
    assert not (model.model.layers[0].mlp.up_proj.weight == layer).all()


@pytest.mark.parametrize("strategy", ["mask", "trl"])
def test_lora_trains_adapters_only(fresh_tiny, strategy):
    from peft import PeftModel

    from inspector.core.training.predictions import teacher_forced

    base = {k: v.clone() for k, v in fresh_tiny.model.state_dict().items()}
    s = BurstSettings(epochs=2, learning_rate=5e-2, lora=True, lora_rank=4)
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), strategy, s) as session:
        result = session.run()
        assert isinstance(session.model, PeftModel)
        rows = teacher_forced(session.model, fresh_tiny.tokenizer, session.labeled[0].input_ids)
    assert len(rows) == len(session.labeled[0].rows)
    assert result.epochs[-1].loss < result.epochs[0].loss
    # The base weights are untouched; only the adapters learned.
    for k, v in session.model.get_base_model().state_dict().items():
        key = k.replace("base_layer.", "")
        if key in base:
            assert (base[key] == v).all(), k


@pytest.mark.parametrize("strategy", ["mask", "trl"])
def test_padded_batching_makes_one_step_per_epoch(fresh_tiny, strategy):
    s = BurstSettings(epochs=3, learning_rate=1e-2, batching="padded")
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), strategy, s) as session:
        result = session.run()
    assert len(result.steps) == 3
    assert [e.epoch for e in result.epochs] == [1, 2, 3]
    assert result.trained_tokens == 3 * 10


def test_threads_and_optimizer_options(fresh_tiny):
    import torch

    before = torch.get_num_threads()
    s = BurstSettings(epochs=1, learning_rate=1e-2, threads=1, optimizer="foreach")
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), "copy", s) as session:
        session.run()
        assert not session._trainer.optimizer.defaults.get("fused")
    assert torch.get_num_threads() == before
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, _examples(fresh_tiny), "copy", BurstSettings(epochs=1)) as session:
        session.run()
        assert session._trainer.optimizer.defaults.get("fused") is True  # the default: fused AdamW


def test_bad_option_values():
    from inspector.core.errors import InspectorError

    with pytest.raises(InspectorError, match="unknown optimizer"):
        BurstSettings(optimizer="sgd")
    with pytest.raises(InspectorError, match="unknown batching"):
        BurstSettings(batching="huge")
