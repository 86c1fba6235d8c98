"""A small table comparing the strategies: epochs, epoch loss, wall time, seconds per step,
speed, held-out answer.

The wall time of a burst depends on what else the machine is doing; the median seconds per
step, with the fastest and slowest step beside it, shows whether it was steady. A strategy
whose steps varied too much (see `inspector.core.training.step_times`) is marked `*` and named in a
note under the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from textual.widgets import DataTable

from inspector.core.labels.strategies import STRATEGIES
from inspector.core.training.step_times import StepSpread

COLUMNS = ("strategy", "epochs", "epoch loss", "wall s", "s/step (min–max)", "tok/s", "trained/input", "held-out")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class StrategyTotals:
    """What the table shows for one strategy, summed over its bursts."""

    epochs_done: float = 0.0
    epoch_loss: float | None = None  # the last burst's (BurstResult.epoch_loss)
    runtime: float = 0.0
    input_tokens: int = 0
    trained_tokens: int = 0
    holdout: str | None = None
    bursts: int = 0
    replayed: bool = False  # the figures come from a prepared run
    steps: list[Any] = field(default_factory=list)  # the StepLogs of every burst, for their seconds

    def add(self, result: Any, replayed: bool = False) -> None:
        self.bursts += 1
        self.steps += result.steps
        self.replayed = self.replayed or replayed
        self.epochs_done = result.epochs_done
        if result.epoch_loss is not None:
            self.epoch_loss = result.epoch_loss
        self.runtime += result.train_runtime
        self.input_tokens += result.input_tokens
        self.trained_tokens += result.trained_tokens
        if result.epochs:
            self.holdout = result.epochs[-1].holdout

    @property
    def tokens_per_second(self) -> float:
        return self.input_tokens / self.runtime if self.runtime > 0 else 0.0

    @property
    def spread(self) -> StepSpread | None:
        """The median and spread of the steps' seconds, the first (warm-up) step left out."""
        return StepSpread.of_steps(self.steps)


class ComparisonTable(DataTable):
    """One row per strategy, filled in as bursts finish."""

    HELP = """\
## Comparison

One row per strategy, summed over all its bursts: epochs trained, the **epoch loss** (the
mean step loss of its last epoch, the number `train` and `lesson N` print), **wall s**: the seconds its bursts took (held-out generation excluded), **s/step**:
the median seconds of one training step with, in brackets, the fastest and the slowest
(the very first step, which allocates, left out), tokens per second, how many of the
tokens run through the model were trained (had a label other than -100), and the latest
held-out answer. `x` resets every strategy to the untrained model.

Compare the medians, not the wall times: a burst's wall time grows with whatever else the
machine is doing. A median marked `*` comes from steps that varied more than 1.5× (the
slowest left out), and a note under the table says so: the machine was busy, and that
row's times compare badly with the others.
A strategy marked **⟲ replay** shows a prepared run: its figures are the recorded ones.
"""

    def __init__(
        self, strategies: tuple[str, ...] = STRATEGIES, names: dict[str, str] | None = None, *, id: str | None = None
    ) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.strategies = strategies
        self.names = names or {}  # custom: the label function's name
        self.stale: set[str] = set()
        self.totals: dict[str, StrategyTotals] = {s: StrategyTotals() for s in strategies}

    def on_mount(self) -> None:
        for name in COLUMNS:
            self.add_column(name, key=name)
        for s in self.strategies:
            self.add_row(*self._cells(s), key=s)

    def _cells(self, strategy: str) -> list[str]:
        t = self.totals[strategy]
        name = self.names.get(strategy, strategy) + (" ⚠ stale" if strategy in self.stale else "")
        if t.bursts == 0:
            return [name, "0", "—", "—", "—", "—", "—", "—"]
        loss = "—" if t.epoch_loss is None or math.isnan(t.epoch_loss) else f"{t.epoch_loss:.4f}"
        spread = t.spread
        per_step = "—" if spread is None else spread.span() + (" *" if spread.busy else "")
        return [
            f"{name} ⟲ replay" if t.replayed else name,
            f"{t.epochs_done:g}",
            loss,
            f"{t.runtime:.1f}",
            per_step,
            f"{t.tokens_per_second:,.0f}",
            f"{t.trained_tokens}/{t.input_tokens}",
            _clip(repr(t.holdout), 22) if t.holdout is not None else "—",
        ]

    def burst_finished(self, strategy: str, result: Any, replayed: bool = False) -> None:
        self.totals[strategy].add(result, replayed)
        for column, value in zip(COLUMNS, self._cells(strategy)):
            self.update_cell(strategy, column, value, update_width=True)

    def set_stale(self, strategy: str, stale: bool) -> None:
        (self.stale.add if stale else self.stale.discard)(strategy)
        for column, value in zip(COLUMNS, self._cells(strategy)):
            self.update_cell(strategy, column, value, update_width=True)

    def reset(self) -> None:
        self.stale = set()
        self.totals = {s: StrategyTotals() for s in self.strategies}
        for s in self.strategies:
            for column, value in zip(COLUMNS, self._cells(s)):
                self.update_cell(s, column, value, update_width=True)

    def busy_note(self) -> str:
        """A line per strategy whose steps varied too much to compare its times; empty when none did."""
        lines = []
        for s, t in self.totals.items():
            spread = t.spread
            if spread is not None and spread.busy:
                lines.append(
                    f"* {self.names.get(s, s)}: its steps varied {spread.varied()}: machine busy? Its times compare badly with the"
                    " other rows'."
                )
        return "\n".join(lines)

    def row_values(self, strategy: str) -> dict[str, str]:
        """The cells of one row by column name (for tests and the command palette)."""
        return {c: str(self.get_cell(strategy, c)) for c in COLUMNS}
