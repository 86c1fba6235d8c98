"""What the run's settings do to a dataset: inspect-data with `--config` or SFTConfig flags.

Everything is read from TRL's own SFTTrainer, built (no training) as the `batch` command builds
it (`core.batches`): its prepared dataset (tokenized, truncated, packed), the unpacked rows
`Provenance` prepares once more without truncation, and the step views with each token's
Trainer weight. Four problem kinds come from it, each naming rows of the data (1-based):

- `answer-loses-stop-token`: truncation (keep_start) keeps part of an answer but cuts its closing
  stop token (the eos / end-of-turn token that ends a trained span);
- `dropped-by-truncation`: truncation leaves the row no trained token, so TRL drops it (not packing);
- `prompt-only-chunk`: a packed sequence with no trained token;
- `packing-crosses-examples`: a packed segment whose tokens attend to the segments before it.

And each row's share of its step's Trainer weight, the heaviest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.errors import InspectorError
from inspector.core.reports.row_checks import Problem

RUN_PROBLEMS = {
    "answer-loses-stop-token": "max_length cuts an answer after some of its trained tokens but before its closing stop token: "
    "the model learns the start of the answer and never to stop",
    "dropped-by-truncation": "after truncation to max_length the row has no trained token left: TRL drops it",
    "prompt-only-chunk": "a packed sequence has no trained token: it costs a forward pass and trains nothing",
    "packing-crosses-examples": "packed examples attend to each other: a segment's tokens see the examples packed before it",
}
RUN_FIXES = {
    "answer-loses-stop-token": "raise max_length to at least the longest of those rows, or shorten or drop them; "
    "with packing, packing_strategy bfd_split keeps the cut tokens as another piece (its first label untrained)",
    "dropped-by-truncation": "raise max_length, or shorten the prompts of those rows",
    "prompt-only-chunk": "use packing_strategy bfd (whole rows), or raise max_length",
    "packing-crosses-examples": "use packing_strategy bfd with padding_free (position_ids restart per example)",
}
MAX_STEPS = 50  # steps read for the weights and packing-crosses-examples (the first of the epoch); the other checks read every row


@dataclass
class RowShare:
    """A row's share of its step's Trainer weight."""

    row: int
    step: int
    share: float
    trained_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "step": self.step, "share": self.share, "trained_tokens": self.trained_tokens}


@dataclass
class RunReport:
    settings: dict[str, Any]
    prepared_rows: int
    steps: int  # optimizer steps in the epoch
    steps_read: int  # the first steps whose weights are in `shares`
    problems: list[Problem] = field(default_factory=list)
    shares: list[RowShare] = field(default_factory=list)  # heaviest first
    notes: list[str] = field(default_factory=list)
    longest: dict[str, int] = field(default_factory=dict)  # problem kind -> the longest of its rows, in tokens

    def fix(self, kind: str) -> str:
        """The fix of a problem kind, naming the max_length that keeps every row of it whole where known."""
        n = self.longest.get(kind)
        if kind == "answer-loses-stop-token" and n:
            return RUN_FIXES[kind].replace("at least the longest of those rows", f"at least {n} (the longest of those rows)")
        if kind == "dropped-by-truncation" and n:
            return f"raise max_length (to {n}, the longest of those rows, keeps them whole), or shorten the prompts of those rows"
        return RUN_FIXES[kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "prepared_rows": self.prepared_rows,
            "steps": self.steps,
            "steps_read": self.steps_read,
            "shares": [s.to_dict() for s in self.shares],
            "notes": self.notes,
            "fixes": {kind: self.fix(kind) for kind in self.longest},
        }

    def heaviest(self, n: int = 5) -> str:
        """`row 7 (31% of step 2), row 3 (25% of step 1)`."""
        return ", ".join(f"row {s.row} ({100 * s.share:.0f}% of step {s.step})" for s in self.shares[:n])


def stop_ids(tokenizer: Any) -> set[int]:
    """The tokens that can close an answer: the eos and the tokenizer's special tokens (end-of-turn markers)."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    ids.discard(tokenizer.pad_token_id if tokenizer.pad_token_id != tokenizer.eos_token_id else None)
    return ids


def spans(labels: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each run of trained labels (each answer)."""
    out, start = [], None
    for t, label in enumerate([*labels, -100]):
        if label != -100 and start is None:
            start = t
        elif label == -100 and start is not None:
            out.append((start, t))
            start = None
    return out


def lost_stop(ids: Sequence[int], labels: Sequence[int], cap: int, stops: set[int]) -> tuple[int, int] | None:
    """The first answer that a cut at `cap` (keep_start) keeps in part while its closing stop token is cut."""
    for s, e in spans(labels):
        if s < cap <= e - 1 and ids[e - 1] in stops:
            return s, e
    return None


def run_checks(model: Any, tokenizer: Any, setup: Any, *, max_steps: int = MAX_STEPS) -> RunReport:
    """Build TRL's SFTTrainer for `setup` (a `core.batches.setup.BatchSetup`) and check what it trains."""
    from inspector.core.batches.provenance import Provenance
    from inspector.core.batches.steps import inspect_step, keep_end_note
    from inspector.core.batches.trainer import sft_trainer

    with sft_trainer(model, tokenizer, setup) as trainer:
        args = trainer.args
        prepared = trainer.train_dataset
        problems: list[Problem] = []
        notes: list[str] = []
        longest: dict[str, int] = {}
        prov = Provenance(trainer, setup)
        view = None
        if len(prepared):
            try:
                view = inspect_step(trainer, setup, step=1, provenance=prov)
            except InspectorError as exc:  # e.g. a batch size larger than what TRL prepared: no step to weigh
                notes.append(f"no step weights: {exc.problem}")
        if note := keep_end_note(args):
            notes.append(note)
        cap = args.max_length
        packing = bool(args.packing)
        truncates = cap is not None and (not packing or args.packing_strategy == "bfd")
        stops = stop_ids(tokenizer)
        if truncates and args.truncation_mode != "keep_end":
            for i in range(len(prov.unpacked)):
                row = prov.row(i)
                if len(row["input_ids"]) <= cap:
                    continue
                cut = lost_stop(row["input_ids"], row["labels"], cap, stops)
                if cut is not None:
                    s, e = cut
                    longest["answer-loses-stop-token"] = max(longest.get("answer-loses-stop-token", 0), len(row["input_ids"]))
                    problems.append(
                        Problem(
                            setup.row_number(i),
                            "answer-loses-stop-token",
                            f"the answer at tokens {s}-{e - 1} keeps {cap - s} trained tokens; its stop token "
                            f"{tokenizer.convert_ids_to_tokens(row['input_ids'][e - 1])!r} at {e - 1} is past max_length {cap}",
                        )
                    )
        if not packing and cap is not None:
            dropped, summary = prov.dropped_rows()
            if dropped and len(dropped) == summary["rows_dropped"]:  # every dropped row listed: its longest is known
                longest["dropped-by-truncation"] = max(d.end - d.start for d in dropped)
            for d in dropped:
                problems.append(
                    Problem(d.row, "dropped-by-truncation", f"{d.end - d.start} tokens, none trained within max_length {cap}")
                )
        if packing:
            chunks: dict[int, list[int]] = {}
            for sample in range(len(prepared)):
                if any(label != -100 for label in prepared[sample]["labels"]):
                    continue
                for r in sorted({setup.row_number(p.index) for p in prov.pieces(sample)}):
                    chunks.setdefault(r, []).append(sample + 1)
            for r, samples in sorted(chunks.items()):
                which = ", ".join(map(str, samples))
                problems.append(
                    Problem(r, "prompt-only-chunk", f"its tokens are in packed sequence{'s' if len(samples) > 1 else ''} {which}, with no trained token")
                )
        shares: list[RowShare] = []
        crossing: dict[int, str] = {}
        steps = view.steps_per_epoch if view is not None else 0
        read = min(steps, max_steps)
        for step in range(1, read + 1):
            v = view if step == 1 else inspect_step(trainer, setup, step=step, provenance=prov)
            for ex in v.examples:
                if ex.trained_tokens:
                    shares.append(RowShare(ex.row, step, ex.weights["trainer"], ex.trained_tokens))
            for mb in v.micro_batches:
                for batch_row in mb.segments:
                    for seg in batch_row:
                        if seg.crosses and seg.row not in crossing:
                            crossing[seg.row] = (
                                f"step {step}, micro-batch {mb.micro_step + 1}: its tokens {seg.start}-{seg.end - 1} "
                                f"attend from position {seg.attends_from}"
                            )
        for r in sorted(crossing):
            problems.append(Problem(r, "packing-crosses-examples", crossing[r]))
        shares.sort(key=lambda s: (-s.share, s.step, s.row))
        settings = dict(view.settings) if view is not None else {"max_length": cap, "truncation_mode": args.truncation_mode, "packing": packing}
    return RunReport(settings, len(prepared), steps, read, problems, shares, notes, longest)
