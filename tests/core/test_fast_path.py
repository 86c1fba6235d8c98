"""The default (fast) training path trains as the stock Trainer / SFTTrainer does: the same loss
at every step to a relative 1e-4 and the same held-out answers, for every strategy, one turn or
several, with or without a bos the tokenizer adds itself."""

from __future__ import annotations

from dataclasses import replace

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.training.burst import BurstSettings
from inspector.core.training.session import TrainingSession

MULTI = "\n\n### Human: hi\n\n### Assistant: hola\n\n### Human: dog\n\n### Assistant: perro"
SETTINGS = BurstSettings(epochs=3, learning_rate=1e-2, seed=1, holdout="good")


def _examples(lm, texts):
    return [add_special_tokens(t, lm.tokenizer.bos_token, lm.tokenizer.eos_token) for t in texts]


def _burst(path, strategy, texts, settings):
    from transformers import TrainerCallback

    from inspector.core.models import load_model

    lm = load_model(str(path))
    clipped = []

    class Clipped(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kw):
            inner = getattr(optimizer, "optimizer", optimizer)
            clipped.append(getattr(inner, "grad_scale", None) is not None)

    with TrainingSession(lm.model, lm.tokenizer, _examples(lm, texts), strategy, settings) as session:
        result = session.run(extra_callbacks=[Clipped()])
    return result, clipped


@pytest.mark.parametrize("bos", ["own-bos", "tokenizer-bos"])
@pytest.mark.parametrize("texts", [ARTICLE_EXAMPLES, ARTICLE_EXAMPLES[:4] + (MULTI,)], ids=["one-turn", "multi-turn"])
@pytest.mark.parametrize("strategy", ["copy", "mask", "trl"])
def test_the_fast_path_trains_as_the_stock_trainer(request, strategy, texts, bos):
    path = request.getfixturevalue("tiny_path" if bos == "own-bos" else "tiny_bos_path")
    fast, clipped = _burst(path, strategy, texts, SETTINGS)
    stock, stock_clipped = _burst(path, strategy, texts, replace(SETTINGS, stock=True))
    assert len(fast.steps) == len(stock.steps) == 15
    for a, b in zip(fast.steps, stock.steps, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-4), (a.step, a.loss, b.loss)
    assert [e.holdout for e in fast.epochs] == [e.holdout for e in stock.epochs]
    assert any(clipped) and not any(stock_clipped)  # the fast path clipped inside AdamW; stock on its own


def test_the_tied_gradient_memory_is_kept_between_steps_and_let_go_between_bursts(fresh_tiny):
    from transformers import TrainerCallback

    from inspector.core.training.tied_head import TiedHeadLinear

    seen = []

    class Where(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            seen.append(model.get_input_embeddings().weight.grad.data_ptr())

    examples = _examples(fresh_tiny, ARTICLE_EXAMPLES)
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, examples, "copy", SETTINGS) as session:
        session.run(1, extra_callbacks=[Where()])
        head = session.model.get_output_embeddings()
        assert type(head) is TiedHeadLinear and head.keep_buffer
        assert len(seen) == 5 and len(set(seen)) == 1  # one buffer, written in place every step
        assert head._buffer is None and session.model.get_input_embeddings().weight.grad is None  # parked
