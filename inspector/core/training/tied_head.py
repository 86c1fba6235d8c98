"""The tied embedding's gradient in one buffer: the fast path's main lever.

With tied weights (Gemma, the tiny test models) the embedding matrix gets two gradients in
every backward: one from the LM head's matmul, one from the embedding lookup. Stock
PyTorch makes the lookup's gradient a dense zero-filled copy of the whole matrix (262,144 x
640 on Gemma 3 270M: 640 MB written for the ~22 rows a step looks up) and adds the two
out of place, because the LM head's gradient reaches the weight as a transposed view it
may not reuse: three embedding-sized buffers, each freshly allocated (and page-faulted in)
every step.

Here instead the LM head's weight gradient is computed by the same matmul as stock
(`grad_out^T @ input`, the very product autograd's `mm` backward runs) but handed on as the
contiguous tensor it is, and the lookup's gradient is sparse (the looked-up rows only):
autograd adds those rows into the head's gradient in place. One embedding-sized buffer per
step, no zero fill, no dense add. The LM head's forward and its gradients are the same bits
as stock (tested); only the lookup's rows are summed in another order where a token
repeats.

Imported only when a burst starts (it imports torch).
"""

from __future__ import annotations

from typing import Any

import torch


class _HeadProjection(torch.autograd.Function):
    """`input @ weight^T (+ bias)`, whose weight gradient is returned as its own contiguous tensor,
    or, with a `head` that keeps a gradient buffer, written into that buffer and made the
    weight's `.grad` directly."""

    @staticmethod
    def forward(
        ctx: Any, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, head: Any = None
    ) -> torch.Tensor:
        ctx.save_for_backward(input, weight)
        ctx.has_bias = bias is not None
        ctx.head = head
        return torch.nn.functional.linear(input, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        input, weight = ctx.saved_tensors
        grad_2d = grad.reshape(-1, grad.shape[-1])
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = grad_2d.mm(weight).view(input.shape)
        if ctx.needs_input_grad[1]:
            flat = input.reshape(-1, input.shape[-1])
            head = ctx.head
            if head is None:
                grad_weight = grad_2d.t().mm(flat)
            elif weight.grad is not None:  # accumulating (more than one backward per step)
                weight.grad.addmm_(grad_2d.t(), flat)
            else:
                # The weight's AccumulateGrad runs after this (it waits for every use of the
                # weight), so the lookup's rows are added into this buffer in place.
                buffer = head.gradient_buffer(weight)
                torch.mm(grad_2d.t(), flat, out=buffer)
                weight.grad = buffer
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_2d.sum(0)
        return grad_input, grad_weight, grad_bias, None


class TiedHeadLinear(torch.nn.Linear):
    """`nn.Linear` computing the same product, whose weight gradient autograd may accumulate into.

    With `keep_buffer` set, the weight gradient's memory is kept from one step to the next
    (`release_buffer()` lets it go, as a session does between bursts): a freshly allocated
    640 MB tensor costs the page faults of its first write every step, ~0.1-0.4 s here.
    """

    keep_buffer = False
    _buffer: torch.Tensor | None = None

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # nn.Linear's argument name
        return _HeadProjection.apply(input, self.weight, self.bias, self if self.keep_buffer else None)

    def gradient_buffer(self, weight: torch.Tensor) -> torch.Tensor:
        if self._buffer is None or self._buffer.shape != weight.shape or self._buffer.dtype != weight.dtype:
            self._buffer = torch.empty_like(weight, memory_format=torch.contiguous_format)
        return self._buffer

    def release_buffer(self) -> None:
        self._buffer = None


def release_gradient_buffers(model: Any) -> None:
    """Let go of every TiedHeadLinear's kept gradient memory (between bursts)."""
    for module in model.modules():
        if isinstance(module, TiedHeadLinear):
            module.release_buffer()


def _tied_and_trained(model: Any) -> tuple[Any, Any] | None:
    head = model.get_output_embeddings()
    embedding = model.get_input_embeddings()
    if embedding is None or head is None:
        return None
    weight = getattr(embedding, "weight", None)
    if getattr(head, "weight", None) is not weight or weight is None or not weight.requires_grad:
        return None
    return head, embedding


def sum_tied_gradient_in_place(model: Any, *, keep_buffer: bool = False) -> bool:
    """Make a tied, trained LM head a `TiedHeadLinear` (same weights, same module, same forward)
    and its embedding's lookup gradient sparse, so that both land in one buffer.

    False, and nothing changed, unless the head shares its weight with the input embedding and
    that weight is trained. Where the head is no plain `nn.Linear` (TRL's fused head computes
    its own gradient as a fresh tensor, which is enough) only the embedding is made sparse.
    `keep_buffer`: keep the head's gradient memory between steps (see `TiedHeadLinear`).
    """
    tied = _tied_and_trained(model)
    if tied is None:
        return False
    head, embedding = tied
    if type(head) is torch.nn.Linear:
        head.__class__ = TiedHeadLinear
        head.keep_buffer = keep_buffer
    if isinstance(embedding, torch.nn.Embedding):
        embedding.sparse = True
    return True
