"""A tied LM head whose gradient is summed in place: one embedding-sized buffer less per step.

With tied weights (Gemma, the tiny test models) the embedding matrix gets two gradients in
every backward: one from the LM head's matmul, one from the embedding lookup. Autograd adds
them out of place, because the LM head's gradient reaches it as a view it may not reuse: for
a moment the LM head's gradient, the lookup's gradient and their sum are all alive, three
copies of the 640 MB matrix on Gemma 3 270M. Handing autograd a fresh copy of the LM head's
gradient instead lets it add the lookup's gradient into that copy: the peak holds two. The
sum is the same float addition, so every bit of the gradient is the same (tested).

Imported only when a burst starts (it imports torch).
"""

from __future__ import annotations

from typing import Any

import torch


class _FreshGradient(torch.autograd.Function):
    """The weight as it is forward; backward, its gradient as a tensor of its own."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor) -> torch.Tensor:
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.clone(memory_format=torch.contiguous_format)


class TiedHeadLinear(torch.nn.Linear):
    """`nn.Linear` computing the same product, whose weight gradient autograd may accumulate into."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # nn.Linear's argument name
        return torch.nn.functional.linear(input, _FreshGradient.apply(self.weight), self.bias)


def sum_tied_gradient_in_place(model: Any) -> bool:
    """Make a tied, trained LM head a `TiedHeadLinear` (same weights, same module, same forward).

    False, and nothing changed, unless the head is a plain `nn.Linear` sharing its weight with
    the input embedding and that weight is trained.
    """
    head = model.get_output_embeddings()
    embedding = model.get_input_embeddings()
    if type(head) is not torch.nn.Linear or embedding is None:
        return False
    if head.weight is not getattr(embedding, "weight", None) or not head.weight.requires_grad:
        return False
    head.__class__ = TiedHeadLinear
    return True
