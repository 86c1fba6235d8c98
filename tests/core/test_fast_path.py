"""The default (fast) training path trains as the stock Trainer / SFTTrainer does: the same loss
at every step to a relative 1e-4 and the same held-out answers, for every strategy, one turn or
several, with or without a bos the tokenizer adds itself."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tolerances import assert_close_at_scale  # tests/ is on the path

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


@pytest.mark.parametrize("strategy", ["copy", "mask", "trl"])
def test_the_tied_gradient_memory_is_kept_between_steps_and_let_go_between_bursts(fresh_tiny, strategy):
    from transformers import TrainerCallback

    from inspector.core.training.tied_head import TiedHeadLinear

    seen = []

    class Where(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            seen.append(model.get_input_embeddings().weight.grad.data_ptr())

    examples = _examples(fresh_tiny, ARTICLE_EXAMPLES)
    with TrainingSession(fresh_tiny.model, fresh_tiny.tokenizer, examples, strategy, SETTINGS) as session:
        session.run(1, extra_callbacks=[Where()])
        head = session.model.get_output_embeddings()
        assert type(head) is TiedHeadLinear and head.keep_buffer
        assert len(seen) == 5 and len(set(seen)) == 1  # one buffer, written in place every step
        assert head._buffer is None and session.model.get_input_embeddings().weight.grad is None  # parked


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("outputs", [("log_probs",), ("log_probs", "entropy")])
def test_trl_fused_head_writes_the_same_gradient_into_the_kept_buffer(bias, outputs):
    """trl's fast path: TRL's fused LM head with the tied weight's gradient written into the
    TiedHeadLinear's buffer gives the very gradients of TRL's own function (every bit), the
    lookup's sparse rows added into that buffer; a weight nobody registered runs TRL's own."""
    import torch
    from trl.kernels import ChunkedLogProbFunction

    from inspector.core.training.tied_head import TiedHeadLinear
    from inspector.core.training.trl_head import BufferedChunkedLogProb, keep_weight_gradient_in

    torch.manual_seed(0)
    vocab, width, n = 1000, 16, 7
    embedding = torch.nn.Embedding(vocab, width, sparse=True)
    head = torch.nn.Linear(width, vocab, bias=bias)
    head.weight = embedding.weight
    head.__class__ = TiedHeadLinear
    head.keep_buffer = True
    inner = torch.nn.Linear(width, width)
    ids = torch.randint(0, vocab, (n,))

    def gradients(function):
        for p in (embedding.weight, inner.weight, head.bias):
            if p is not None:
                p.grad = None
        log_probs, entropy = function.apply(
            inner(embedding(ids)), head.weight, head.bias, ids, 1.0, 256, None, 1.0, outputs
        )[:2]
        loss = -log_probs.sum() + (0.1 * entropy.sum() if entropy is not None else 0.0)
        loss.backward()
        grads = [embedding.weight.grad.clone(), inner.weight.grad.clone()]
        return grads + ([head.bias.grad.clone()] if bias else [])

    trl_own = gradients(ChunkedLogProbFunction)
    unregistered = gradients(BufferedChunkedLogProb)
    assert embedding.weight.grad.data_ptr() != getattr(head._buffer, "data_ptr", lambda: None)()
    keep_weight_gradient_in(head.weight, head)
    buffered = gradients(BufferedChunkedLogProb)
    assert embedding.weight.grad.data_ptr() == head._buffer.data_ptr()  # the kept buffer is the gradient
    again = gradients(BufferedChunkedLogProb)
    for a, b, c, d in zip(trl_own, unregistered, buffered, again, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)


@pytest.mark.parametrize("softcap", [None, 30.0])
def test_trl_fast_head_gives_trls_outputs_and_gradients(softcap):
    """The full-logits head of a fast trl step: TRL's per-token outputs to the bit, and its
    gradients (the hidden states' summed in another order), the weight's in the kept buffer."""
    import torch
    from trl.kernels import ChunkedLogProbFunction

    from inspector.core.training.tied_head import TiedHeadLinear
    from inspector.core.training.trl_head import FastFusedHead, keep_weight_gradient_in

    torch.manual_seed(1)
    vocab, width, n = 3000, 16, 9
    embedding = torch.nn.Embedding(vocab, width, sparse=True)
    head = torch.nn.Linear(width, vocab, bias=False)
    head.weight = embedding.weight
    head.__class__ = TiedHeadLinear
    head.keep_buffer = True
    keep_weight_gradient_in(head.weight, head)
    inner = torch.nn.Linear(width, width)
    ids = torch.randint(0, vocab, (n,))
    outputs = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")

    def run(function):
        embedding.weight.grad = inner.weight.grad = None
        out = function.apply(inner(embedding(ids)), head.weight, None, ids, 0.7, 512, softcap, 1.3, outputs)
        (-out[0].sum() + 0.1 * out[1].sum()).backward()
        return [x.detach() for x in out], [embedding.weight.grad.clone(), inner.weight.grad.clone()]

    trl_out, trl_grads = run(ChunkedLogProbFunction)
    fast_out, fast_grads = run(FastFusedHead)
    assert embedding.weight.grad.data_ptr() == head._buffer.data_ptr()
    for a, b in zip(trl_out, fast_out, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(trl_grads, fast_grads, strict=True):
        assert_close_at_scale(b, a)  # summed in another order: a few float32 steps at the gradient's scale
