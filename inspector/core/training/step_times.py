"""Seconds per training step: their spread, and what comparing two sets of them may conclude.

The wall time of a burst says more about the machine than about the strategy: the same
copy burst took 50.7 s in one run and 137.7 s in another while other programs ran. The
median seconds per step, with the spread of the steps beside it, shows both: a steady
machine gives steps within a few percent of each other, a busy one does not, and then two
medians cannot be compared.

The thresholds, measured on the embedded Gemma 3 270M on a quiet 2-core CPU on 2026-11-28
(docs/performance.md, the speed options): the steps of one run stay within 1.1-1.2x of each
other (copy 1.02-1.09 s, frozen embedding 0.38-0.45 s), except a lone hiccup now and then
(trl 0.99-5.12 s: one step; a garbage collection, the screen redrawing). So the spread is measured without the
slowest step, and a spread over `BUSY_RATIO` (the second-slowest step 1.5x the fastest)
means something else had the CPU for more than a moment. Two medians closer than
`SAME_BAND` (or than half the steps' own spread, when that is larger) are no clear
difference: separate runs on fresh copies rarely reproduce a smaller one.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BUSY_RATIO = 1.5  # second-slowest / fastest step above this: the machine was busy
SAME_BAND = 0.05  # medians closer than 5% (or half the spread): no clear difference


def seconds(value: float) -> str:
    """Seconds to three significant digits, zeros kept: 1.04, 2.00, 0.410, 0.00712, 12.3."""
    return f"{value:.0f}" if value >= 1000 else f"{value:#.3g}".rstrip(".")


@dataclass(frozen=True)
class StepSpread:
    """The median, fastest and slowest of some step times, and how much they varied."""

    median: float
    min: float
    max: float
    steps: int
    upper: float  # the second-slowest step (the slowest below 4 steps): one hiccup is not a busy machine

    @classmethod
    def of(cls, times: Sequence[float]) -> StepSpread | None:
        """None without any (positive) time to go on."""
        values = sorted(t for t in times if t > 0)
        if not values:
            return None
        upper = values[-2] if len(values) >= 4 else values[-1]
        return cls(statistics.median(values), values[0], values[-1], len(values), upper)

    @classmethod
    def of_steps(cls, steps: Sequence[Any]) -> StepSpread | None:
        """The spread of the `seconds` of training steps (StepLogs), the session's first step
        left out unless it is the only one: it allocates the optimizer's state, a warm-up."""
        timed = [(s.step, s.seconds) for s in steps if s.seconds is not None]
        return cls.of([t for step, t in timed if step > 1] or [t for _, t in timed])

    @property
    def ratio(self) -> float:
        return self.upper / self.min

    @property
    def busy(self) -> bool:
        return self.ratio > BUSY_RATIO

    @property
    def half_spread(self) -> float:
        """Half the relative spread: how far from the median a step typically lands."""
        return (self.ratio - 1) / 2

    def span(self) -> str:
        """`1.04 (1.02–1.09)`: the median and, in brackets, the fastest and slowest step."""
        return f"{seconds(self.median)} ({seconds(self.min)}–{seconds(self.max)})"

    def varied(self) -> str:
        """`3.1× (0.9–2.8 s without the slowest)`: how much the steps varied, and between what."""
        left_out = " without the slowest" if self.upper != self.max else ""
        return f"{self.ratio:.1f}× ({seconds(self.min)}–{seconds(self.upper)} s{left_out})"


@dataclass(frozen=True)
class Verdict:
    kind: str  # "busy" (cannot conclude), "same", "faster" or "slower"
    text: str


def compare(name: str, times: Sequence[float], base_name: str, base_times: Sequence[float]) -> Verdict:
    """What the step times of `name` say against those of `base_name`, compared by their medians.

    Too spread on either side (see BUSY_RATIO) and it says it cannot conclude, and why.
    """
    other, base = StepSpread.of(times), StepSpread.of(base_times)
    head = f"{name} vs {base_name}"
    if other is None or base is None:
        missing = name if other is None else base_name
        return Verdict("busy", f"{head}: cannot conclude: no step of {missing} was timed")
    noisy = [(n, s) for n, s in ((base_name, base), (name, other)) if s.busy]
    change = (other.median - base.median) / base.median
    medians = f"median {seconds(other.median)} s against {seconds(base.median)} s"
    if noisy:
        why = f"the steps of {noisy[0][0]} varied {noisy[0][1].varied()}"
        if len(noisy) > 1:
            why += f", those of {noisy[1][0]} {noisy[1][1].varied()}"
        return Verdict("busy", f"{head}: cannot conclude: {why}")
    spread = max(base.half_spread, other.half_spread)
    if abs(change) < max(SAME_BAND, spread):
        within = (
            f"their steps vary by ±{spread:.0%}" if spread > SAME_BAND else f"two runs can differ by {SAME_BAND:.0%}"
        )
        return Verdict("same", f"{head}: no clear difference ({medians}: {abs(change):.0%} apart, and {within})")
    kind = "faster" if change < 0 else "slower"
    return Verdict(kind, f"{head}: {abs(change):.0%} {kind} ({medians})")


def busy_advice(again: str) -> str:
    """What to do after a comparison that cannot conclude; `again` says how to measure again."""
    return (
        f"steps of one run varied more than {BUSY_RATIO:g}× (the slowest left out): other programs had the CPU"
        f" (or the examples differ a lot in length), and medians measured so cannot be compared; {again}"
    )


def wait_for_device(device: str) -> None:
    """Wait for the work queued on a GPU, so that a step's time is the step's: CUDA and MPS run asynchronously."""
    if device.startswith(("cuda", "mps")):
        import torch

        (torch.cuda if device.startswith("cuda") else torch.mps).synchronize()
