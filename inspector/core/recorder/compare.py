"""Whether a simulation equals a recording, rank by rank and micro-batch by micro-batch.

`compare_step` sets a recorded step (`step_view.recorded_step`) beside the step the batch view
simulates from a config (`batches.steps.inspect_step`, with the recording's world size): the tensors
the model got (input_ids, labels, position_ids, a 2D attention_mask) and the count the Trainer passed
(num_items_in_batch). The first difference is named with its place, both values and the token there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inspector.core.batches.step_types import MicroBatch, StepView

KEYS = ("input_ids", "labels", "position_ids", "attention_mask")


@dataclass(frozen=True)
class RankResult:
    """One rank of one step: equal, different (the first difference), or not compared (why)."""

    step: int
    rank: int
    micro_batches: int  # the run's
    difference: str | None = None
    skipped: str | None = None

    @property
    def equal(self) -> bool:
        return self.difference is None and self.skipped is None

    def place(self) -> str:
        return f"step {self.step}, rank {self.rank}"

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "rank": self.rank, "micro_batches": self.micro_batches, "equal": self.equal,
                "difference": self.difference, "not_compared": self.skipped}


@dataclass(frozen=True)
class Comparison:
    """Every compared rank of every step, in order."""

    results: list[RankResult] = field(default_factory=list)

    @property
    def compared(self) -> list[RankResult]:
        return [r for r in self.results if r.skipped is None]

    @property
    def equal(self) -> bool:
        return bool(self.compared) and all(r.equal for r in self.compared)

    @property
    def first_difference(self) -> RankResult | None:
        return next((r for r in self.results if r.difference is not None), None)

    def lines(self) -> list[str]:
        out = []
        for step in dict.fromkeys(r.step for r in self.results):
            mine = [r for r in self.results if r.step == step]
            out.append(f"step {step}: " + " · ".join(
                f"rank {r.rank} " + ("equal" if r.equal else "DIFFERS" if r.difference else f"not compared ({r.skipped})")
                + (f" ({r.micro_batches} micro-batch{'es' if r.micro_batches != 1 else ''})" if r.equal else "")
                for r in mine
            ))
        first = self.first_difference
        if first is not None:
            out.append(f"first difference: {first.place()}, {first.difference}")
        if self.equal:
            out.append(f"the simulation equals the record: {len(self.compared)} rank-step{'s' if len(self.compared) != 1 else ''}, "
                       "every micro-batch's tensors and num_items_in_batch")
        elif first is None:
            out.append("nothing was compared: no recorded step is one the simulation can make")
        return out

    def to_dict(self) -> dict[str, Any]:
        first = self.first_difference
        return {"equal": self.equal, "first_difference": None if first is None else first.to_dict(),
                "results": [r.to_dict() for r in self.results]}


def _shape(rows: list[list[int]]) -> str:
    return f"{len(rows)} × {len(rows[0]) if rows else 0}"


def _token(mb: MicroBatch, b: int, t: int) -> str:
    return repr(mb.texts[b][t]) if b < len(mb.texts) and t < len(mb.texts[b]) else "?"


def _differs(ran: MicroBatch, sim: MicroBatch) -> str | None:
    """The first difference of two micro-batches' tensors, in words (None: equal)."""
    where = f"micro-batch {ran.micro_step}: "
    for key in KEYS:
        a, b = ran.rows_of(key), sim.rows_of(key)
        if a is None and b is None:
            continue
        if a is None or b is None:
            return where + f"{key}: the run sent {'none' if a is None else _shape(a)}, the simulation {'none' if b is None else _shape(b)}"
        if a == b:
            continue
        if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
            return where + f"{key}: the run's is {_shape(a)}, the simulation's {_shape(b)}"
        row, t = next((i, j) for i, (x, y) in enumerate(zip(a, b)) for j, (u, v) in enumerate(zip(x, y)) if u != v)
        if key == "input_ids":
            values = f"the run's {a[row][t]} ({_token(ran, row, t)}), the simulation's {b[row][t]} ({_token(sim, row, t)})"
        else:
            values = f"the run's {a[row][t]}, the simulation's {b[row][t]} (token {_token(ran, row, t)})"
        return where + f"{key} of batch row {row} at position {t}: {values}"
    return None


def compare_step(recorded: StepView, simulated: StepView) -> list[RankResult]:
    """Rank by rank, whether the simulated step equals the recorded one (the ranks `recorded` shows)."""
    out = []
    for rank in dict.fromkeys(mb.rank for mb in recorded.micro_batches):
        ran = [mb for mb in recorded.micro_batches if mb.rank == rank]
        sim = [mb for mb in simulated.micro_batches if mb.rank == rank]
        difference = None
        if len(ran) != len(sim):
            difference = f"the run's step has {len(ran)} micro-batches on this rank, the simulation's {len(sim)}"
        for a, b in zip(ran, sim):
            if difference is not None:
                break
            difference = _differs(a, b)
            count = (a.recorded or {}).get("num_items_in_batch")
            if difference is None and count is not None and simulated.num_items_in_batch is not None and count != simulated.num_items_in_batch:
                difference = (f"micro-batch {a.micro_step}: num_items_in_batch: the run's {count:g}, "
                              f"the simulation's {simulated.num_items_in_batch}")
        out.append(RankResult(recorded.step, rank, len(ran), difference))
    return out
