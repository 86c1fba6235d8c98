"""Float comparisons that hold on every machine.

Two float32 results of the same sums added in another order (another thread count, another
kernel, rows of repeated tokens summed in another order) differ by a few roundings of the
largest value summed, not of each element: an element near zero can differ by a step of
the tensor's largest values. The tolerance is therefore a few float32 steps at the tensor's
own scale, never a fixed absolute number.
"""

from __future__ import annotations

from typing import Any

STEPS = 16  # float32 rounding steps allowed at the tensor's scale


def assert_close_at_scale(actual: Any, expected: Any, steps: int = STEPS) -> None:
    """`actual` is `expected` to `steps` roundings of `expected`'s largest absolute value."""
    import torch

    eps = torch.finfo(expected.dtype).eps
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=steps * eps, atol=steps * eps * scale)
