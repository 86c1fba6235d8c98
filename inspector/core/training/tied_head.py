"""The tied embedding's gradient in one buffer: the fast path's main lever (issue 16).

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
    """`input @ weight^T (+ bias)`, whose weight gradient is returned as its own contiguous tensor."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(input, weight)
        ctx.has_bias = bias is not None
        return torch.nn.functional.linear(input, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        input, weight = ctx.saved_tensors
        grad_2d = grad.reshape(-1, grad.shape[-1])
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = grad_2d.mm(weight).view(input.shape)
        if ctx.needs_input_grad[1]:
            grad_weight = grad_2d.t().mm(input.reshape(-1, input.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_2d.sum(0)
        return grad_input, grad_weight, grad_bias


class TiedHeadLinear(torch.nn.Linear):
    """`nn.Linear` computing the same product, whose weight gradient autograd may accumulate into."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # nn.Linear's argument name
        return _HeadProjection.apply(input, self.weight, self.bias)


def _tied_and_trained(model: Any) -> tuple[Any, Any] | None:
    head = model.get_output_embeddings()
    embedding = model.get_input_embeddings()
    if embedding is None or head is None:
        return None
    weight = getattr(embedding, "weight", None)
    if getattr(head, "weight", None) is not weight or weight is None or not weight.requires_grad:
        return None
    return head, embedding


def sum_tied_gradient_in_place(model: Any) -> bool:
    """Make a tied, trained LM head a `TiedHeadLinear` (same weights, same module, same forward)
    and its embedding's lookup gradient sparse, so that both land in one buffer.

    False, and nothing changed, unless the head shares its weight with the input embedding and
    that weight is trained. Where the head is no plain `nn.Linear` (TRL's fused head computes
    its own gradient as a fresh tensor, which is enough) only the embedding is made sparse.
    """
    tied = _tied_and_trained(model)
    if tied is None:
        return False
    head, embedding = tied
    if type(head) is torch.nn.Linear:
        head.__class__ = TiedHeadLinear
    if isinstance(embedding, torch.nn.Embedding):
        embedding.sparse = True
    return True
