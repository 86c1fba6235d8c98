"""Learning epoch by epoch: the teacher-forced rows of one text after every epoch of a strategy,
and what they show, computed: the mean probability of the true next token over the prompt's
positions and over the answer's, at epoch 0 (the untrained model) and at the last epoch.

No torch here: the rows come from `inspector.core.training.predictions` (recorded by a
`TrainingSession` after each epoch, or stored by a prepared run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Five shades, lightest for p_target near 0, darkest near 1 (the text heat map's cells).
SHADES = " ░▒▓█"


def shade(p: float | None) -> str:
    """The cell of a probability in the text heat map; "·" where there is no next token."""
    if p is None:
        return "·"
    return SHADES[min(len(SHADES) - 1, int(p * len(SHADES)))]


def means(rows: Sequence[Any], answer: frozenset[int]) -> tuple[float | None, float | None]:
    """Mean p_target over the prompt's positions and over the answer's (None where there are none).

    An answer position is one whose next token belongs to an assistant answer; the prompt's
    are all the others that have a next token.
    """
    prompt = [r.p_target for r in rows if r.p_target is not None and r.position not in answer]
    ans = [r.p_target for r in rows if r.p_target is not None and r.position in answer]
    return (sum(prompt) / len(prompt) if prompt else None, sum(ans) / len(ans) if ans else None)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@dataclass
class Curve:
    """One strategy's rows of a text per epoch (0: untrained) and its mean loss per epoch."""

    strategy: str
    name: str  # what the views call it (the label function's name for custom)
    epochs: dict[int, list[Any]]  # epoch -> PredictionRow list
    losses: list[tuple[int, float]] = field(default_factory=list)  # (epoch, mean step loss)

    @property
    def last(self) -> int:
        return max(self.epochs)

    def summary(self, answer: frozenset[int]) -> str:
        """"copy: prompt 0.31 -> 0.88, answer 0.02 -> 0.41 (epoch 0 -> 3)"."""
        p0, a0 = means(self.epochs[0], answer)
        p1, a1 = means(self.epochs[self.last], answer)
        return (
            f"{self.name}: prompt {_number(p0)} -> {_number(p1)}, answer {_number(a0)} -> {_number(a1)} "
            f"(epoch 0 -> {self.last})"
        )


@dataclass
class Learning:
    """Per strategy trained (or replayed), the rows of `text` epoch by epoch."""

    text: str
    answer: frozenset[int]  # positions whose next token is part of an answer
    curves: dict[str, Curve] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # strategy -> why it has no curve (yet)

    def summary_lines(self) -> list[str]:
        return [curve.summary(self.answer) for curve in self.curves.values()]


def heat_map_lines(epochs: dict[int, list[Any]], answer: frozenset[int]) -> list[str]:
    """One line per epoch, a shade per position (darker: the true next token more likely), and a
    last line marking the answer's positions with ^."""
    lines = [f"epoch {epoch:>3} |{''.join(shade(r.p_target) for r in rows)}|" for epoch, rows in sorted(epochs.items())]
    if epochs:
        width = len(next(iter(epochs.values())))
        lines.append("answer    |" + "".join("^" if i in answer else " " for i in range(width)) + "|")
    return lines
