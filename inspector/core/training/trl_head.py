"""The tied embedding's gradient in one buffer for trl, whose SFTTrainer runs its own LM head.

TRL's SFTTrainer projects the hidden states through the LM head inside its fused head
(`trl.kernels.ChunkedLogProbFunction`: the vocabulary in tiles, the logits never
materialized, each tile projected again in the backward). Its backward zero-fills a fresh
embedding-sized gradient (640 MB on Gemma 3 270M, page-faulted in every step), adds each
tile's weight gradient into it, and hands it to autograd, which then adds the lookup's
gradient to it out of place: another fresh 640 MB copy. With tied weights on a CPU that,
and the second projection, are a third of trl's step.

During a fast-path trl step (`buffered_fused_head()`, which puts `FastFusedHead` where TRL
looks its function up, in `trl.trainer.utils`, for that step only):

- `FastFusedHead`, on CPU where the logits are small: one projection, kept for the backward
  instead of projected again, folded tile by tile with TRL's own code (`FullLogitsLogProb`:
  TRL's outputs to the bit), the weight gradient written into the head's kept buffer;
- `BufferedChunkedLogProb` otherwise: TRL's tiles, forward and backward as TRL computes
  them, each tile's weight gradient written straight into the buffer (`mm` into its rows
  instead of `addmm_` onto zeros: the same bits) where the weight is such a tied head, and
  TRL's own backward everywhere else (other devices, several token tiles, mixed precision).

Imported only when a burst starts (it imports torch and trl).
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from trl.kernels import chunked_logprob as _kernel
from trl.kernels.chunked_logprob import ChunkedLogProbFunction

# id(weight) -> (the weight, the TiedHeadLinear keeping its gradient buffer), both weakly held
# so that a finished session's model is not kept alive here (tensors cannot be weak dict keys:
# their == is elementwise).
_HEADS: dict[int, tuple[weakref.ref[torch.Tensor], weakref.ref[Any]]] = {}


def keep_weight_gradient_in(weight: torch.Tensor, head: Any) -> None:
    """Let TRL's fused head write `weight`'s gradient into `head`'s buffer (`gradient_buffer`)."""
    for key, (w, h) in list(_HEADS.items()):
        if w() is None or h() is None:
            del _HEADS[key]
    _HEADS[id(weight)] = (weakref.ref(weight), weakref.ref(head))


def _registered(weight: torch.Tensor) -> Any:
    entry = _HEADS.get(id(weight))
    if entry is None or entry[0]() is not weight:
        return None
    return entry[1]()


def _buffer_head(hidden: torch.Tensor, weight: torch.Tensor, ctx: Any) -> Any:
    """The head whose buffer this backward may write into, or None for TRL's own backward."""
    head = _registered(weight)
    if head is None or not getattr(head, "keep_buffer", False) or getattr(head, "weight", None) is not weight:
        return None
    if _kernel._use_triton(hidden.device) or hidden.shape[0] > _kernel.TOKEN_CHUNK_SIZE:
        return None  # the Triton kernels, or more than one token tile: TRL's accumulation as it is
    if not (ctx.compute_dtype == weight.dtype == hidden.dtype == torch.float32):
        return None  # TRL accumulates low-precision products in fp32, then rounds: keep that
    return head


class BufferedChunkedLogProb(ChunkedLogProbFunction):
    """TRL's `ChunkedLogProbFunction`, writing a kept tied head's weight gradient into its buffer
    (the very bits TRL's backward computes)."""

    @staticmethod
    def backward(ctx: Any, grad_logprobs: torch.Tensor | None, grad_entropy: torch.Tensor | None, *rest: Any) -> Any:
        hidden, weight, bias, targets, log_z, entropy = ctx.saved_tensors
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        head = _buffer_head(hidden, weight, ctx) if needs_weight else None
        if head is None:
            return ChunkedLogProbFunction.backward(ctx, grad_logprobs, grad_entropy, *rest)
        from trl.trainer.utils import maybe_gather_lm_head_ctx

        chunk_size = ctx.chunk_size
        accumulate = weight.grad is not None  # a second backward in the step adds to the first
        grad_weight = weight.grad if accumulate else head.gradient_buffer(weight)
        with maybe_gather_lm_head_ctx(weight, bias):
            vocab = weight.shape[0]
            grad_hidden = torch.zeros(hidden.shape, device=hidden.device, dtype=torch.float32) if needs_hidden else None
            grad_bias = torch.zeros(bias.shape, device=bias.device, dtype=torch.float32) if needs_bias else None
            n = hidden.shape[0]
            mm_buf = torch.empty((n, chunk_size), device=hidden.device, dtype=hidden.dtype)
            grad_logprobs = grad_logprobs.float().contiguous() if grad_logprobs is not None else None
            grad_entropy = grad_entropy.float().contiguous() if grad_entropy is not None else None
            for start in range(0, vocab, chunk_size):
                end = min(start + chunk_size, vocab)
                w_chunk = weight[start:end]
                tile = mm_buf[:, : end - start]
                torch.mm(hidden, w_chunk.t(), out=tile)
                if bias is not None:
                    tile.add_(bias[start:end])
                _kernel._backward_tile(
                    tile,
                    tile.stride(0),
                    targets,
                    log_z,
                    entropy,
                    grad_logprobs if grad_logprobs is not None else log_z,
                    grad_entropy if grad_entropy is not None else log_z,
                    start,
                    end - start,
                    HAS_LOGPROB_GRAD=grad_logprobs is not None,
                    HAS_ENTROPY_GRAD=grad_entropy is not None,
                    BLOCK_SIZE=_kernel._BLOCK_SIZE,
                    **ctx.kernel_args,
                )
                if grad_hidden is not None:
                    grad_hidden.addmm_(tile, w_chunk)
                if accumulate:
                    grad_weight[start:end].addmm_(tile.t(), hidden)
                else:
                    torch.mm(tile.t(), hidden, out=grad_weight[start:end])  # TRL: zeros, then addmm_
                if grad_bias is not None:
                    grad_bias[start:end] += tile.sum(dim=0, dtype=torch.float32)
        # Autograd's AccumulateGrad runs after this (it waits for the lookup's gradient too) and
        # adds the lookup's sparse rows into the buffer in place.
        weight.grad = grad_weight
        return (grad_hidden, None, grad_bias.to(bias.dtype) if grad_bias is not None else None, *([None] * 6))


# The full logits are made where they are this small (elements; 256 MiB in fp32: 256 tokens of
# Gemma's 262,144-token vocabulary), as the plain Trainer makes them for copy and mask; beyond
# it TRL's tiles run, writing into the buffer.
FULL_LOGITS_LIMIT = 64 * 1024 * 1024


def _full_logits_head(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> Any:
    """The registered TiedHeadLinear to project `hidden` through in one product, or None."""
    head = _registered(weight)
    if head is None or not getattr(head, "keep_buffer", False) or head.weight is not weight or head.bias is not bias:
        return None
    if hidden.device.type != "cpu" or torch.is_autocast_enabled(hidden.device.type):
        return None
    if not (hidden.dtype == weight.dtype == torch.float32) or hidden.dim() != 2:
        return None
    if hidden.shape[0] * weight.shape[0] > FULL_LOGITS_LIMIT:
        return None
    return head


class FullLogitsLogProb(torch.autograd.Function):
    """TRL's chunked log-probabilities computed from the logits made in one product and kept.

    The forward folds the same vocabulary tiles with TRL's own fold (`_forward_tile`), as
    views into the full logits, whose columns are the very bits of TRL's tile products
    (tested): the same outputs, bit for bit. The backward turns those kept tiles into the
    logits' gradient with TRL's `_backward_tile`, with no second projection, then makes the
    hidden states' gradient in one product and writes the weight's into the head's kept
    buffer (which becomes its `.grad`, for the lookup's rows to be added in place).
    """

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        temperature: float,
        chunk_size: int,
        final_logit_softcapping: float | None,
        logit_scale: float,
        outputs: tuple[str, ...],
        head: Any,
    ) -> tuple[torch.Tensor | None, ...]:
        ctx.set_materialize_grads(False)
        n, vocab = hidden.shape[0], weight.shape[0]
        kernel_args = {
            "logit_scale": logit_scale,
            "softcap": final_logit_softcapping or 1.0,
            "inv_t": 1 / temperature,
            "HAS_SOFTCAP": final_logit_softcapping is not None,
        }
        flags = {f"HAS_{name.upper()}": name in outputs for name in _kernel.OPTIONAL_OUTPUTS}

        def stat(fill: float) -> torch.Tensor:
            return torch.full((n,), fill, device=hidden.device, dtype=torch.float32)

        running_max, sum_exp, x_sum_exp, sq_sum_exp = stat(-math.inf), stat(0.0), stat(0.0), stat(0.0)
        z_sum, max_before_target, target_logit = stat(0.0), stat(-math.inf), stat(0.0)
        logits = torch.nn.functional.linear(hidden, weight, bias)
        for start in range(0, vocab, chunk_size):
            end = min(start + chunk_size, vocab)
            tile = logits[:, start:end]
            _kernel._forward_tile(
                tile, tile.stride(0), targets, running_max, sum_exp, x_sum_exp, sq_sum_exp, z_sum,
                max_before_target, target_logit, start, end - start,
                BLOCK_SIZE=_kernel._BLOCK_SIZE, **flags, **kernel_args,
            )  # fmt: skip
        log_z = running_max + torch.log(sum_exp)
        logprobs = target_logit - log_z
        entropy = log_z - x_sum_exp / sum_exp if "entropy" in outputs else None
        log_sum_sq_probs = torch.log(sq_sum_exp) - 2 * torch.log(sum_exp) if "log_sum_sq_probs" in outputs else None
        mean_logits = z_sum / vocab if "mean_logits" in outputs else None
        is_top1 = (target_logit >= running_max) & (target_logit > max_before_target) if "is_top1" in outputs else None
        ctx.save_for_backward(hidden, weight, targets, log_z, log_z if entropy is None else entropy, logits)
        ctx.has_bias = bias is not None
        ctx.chunk_size, ctx.kernel_args, ctx.head = chunk_size, kernel_args, head
        ctx.mark_non_differentiable(*(x for x in (log_sum_sq_probs, mean_logits, is_top1) if x is not None))
        return logprobs, entropy, log_sum_sq_probs, mean_logits, is_top1

    @staticmethod
    def backward(ctx: Any, grad_logprobs: torch.Tensor | None, grad_entropy: torch.Tensor | None, *_: Any) -> Any:
        hidden, weight, targets, log_z, entropy, logits = ctx.saved_tensors
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        vocab = weight.shape[0]
        grad_logprobs = grad_logprobs.float().contiguous() if grad_logprobs is not None else None
        grad_entropy = grad_entropy.float().contiguous() if grad_entropy is not None else None
        for start in range(0, vocab, ctx.chunk_size):  # each tile becomes its logits' gradient, in place
            end = min(start + ctx.chunk_size, vocab)
            tile = logits[:, start:end]
            _kernel._backward_tile(
                tile, tile.stride(0), targets, log_z, entropy,
                grad_logprobs if grad_logprobs is not None else log_z,
                grad_entropy if grad_entropy is not None else log_z,
                start, end - start,
                HAS_LOGPROB_GRAD=grad_logprobs is not None, HAS_ENTROPY_GRAD=grad_entropy is not None,
                BLOCK_SIZE=_kernel._BLOCK_SIZE, **ctx.kernel_args,
            )  # fmt: skip
        grad = logits
        grad_hidden = grad.mm(weight) if needs_hidden else None
        if needs_weight:
            if weight.grad is not None:  # a second backward in the step adds to the first
                weight.grad.addmm_(grad.t(), hidden)
            else:
                buffer = ctx.head.gradient_buffer(weight)
                torch.mm(grad.t(), hidden, out=buffer)
                weight.grad = buffer
        grad_bias = grad.sum(0) if ctx.has_bias and needs_bias else None
        return grad_hidden, None, grad_bias, *([None] * 7)


class FastFusedHead:
    """What TRL's fused LM head calls during a fast-path trl step, in place of its
    `ChunkedLogProbFunction` (the same arguments, the same outputs).

    On CPU with a tied head that keeps its gradient buffer, and where the logits are small
    (a chat example's tokens times the vocabulary: 23 MB for the article's examples on
    Gemma), `FullLogitsLogProb` keeps them instead of projecting every tile a second time in
    the backward (TRL recomputes them so that they never exist: a third of the head's time
    here). Elsewhere `BufferedChunkedLogProb` runs.
    """

    @staticmethod
    def apply(
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        temperature: float,
        chunk_size: int,
        final_logit_softcapping: float | None = None,
        logit_scale: float = 1.0,
        outputs: tuple[str, ...] = _kernel.OPTIONAL_OUTPUTS,
    ) -> tuple[torch.Tensor | None, ...]:
        args = (hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping, logit_scale, outputs)
        head = _full_logits_head(hidden, weight, bias)
        if head is None:
            return BufferedChunkedLogProb.apply(*args)
        return FullLogitsLogProb.apply(*args, head)


@contextlib.contextmanager
def buffered_fused_head() -> Iterator[None]:
    """TRL's fused head runs `FastFusedHead` while this lasts (one training step)."""
    import trl.trainer.utils as trl_utils

    before = trl_utils._ChunkedLogProbFunction
    trl_utils._ChunkedLogProbFunction = FastFusedHead
    try:
        yield
    finally:
        trl_utils._ChunkedLogProbFunction = before
