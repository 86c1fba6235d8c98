"""The audit of a run's first optimizer step, before it is taken: every rank's counts (`rank_stats`,
gathered by `cross_rank.gather`) judged the same way on every rank, so all of them reach the same
verdict, and a table for the run's log.

The checks:

- the step trains no token, or some of its sequences train none;
- a stop token (`run_facts.stop_tokens`) is in the step's tokens but never a trained target;
- the trained share (trained tokens ÷ real tokens) is outside `share_band`;
- packed sequences whose attention reaches the sequences before them (`rank_stats.attention_window`);
- dataset rows the ranks' samplers hand out twice in the epoch (accelerate's `even_batches` refills
  the last batches from the start of the data);
- each trained token's weight in the step under the loss the run really computes, beside the
  Trainer's 1/N (N: the step's trained tokens on every rank). The weight is read off the run: a
  micro-batch's loss as the Trainer ran backward on it, ÷ the summed cross-entropy of its trained
  labels (from the model's outputs), ÷ what accelerate's backward divides by, ÷ the ranks (DDP
  averages their gradients). A loss that is a mean per micro-batch shows as weights ≠ 1/N.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

OK, PROBLEM, UNCHECKED = "ok", "problem", "not checked"
SHARE_BAND = (0.05, 0.95)
WEIGHT_TOLERANCE = 0.01  # relative: low-precision losses round, a per-micro-batch mean differs by far more

# The checks, by the name the log's table, rec/audit.json ("problems") and a stop give each, in the
# table's order. docs/recording.md documents every one (tests/test_docs.py); Check takes no other name.
NO_TOKEN = "sequences that train no token"
STOP_TOKENS = "stop tokens trained"
SHARE = "trained share within the band"
CROSSING = "packed sequences kept apart"
TWICE = "rows once per epoch"
WEIGHTS = "every trained token weighs 1/N"
CHECKS = (NO_TOKEN, STOP_TOKENS, SHARE, CROSSING, TWICE, WEIGHTS)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, PROBLEM or UNCHECKED
    detail: str

    def __post_init__(self) -> None:
        if self.name not in CHECKS:  # a bug of ours: a check the docs do not name
            raise ValueError(f"audit check {self.name!r} is not in CHECKS")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Audit:
    """The verdict on one step (the first of the run), with each rank's counts."""

    step: int
    world_size: int
    micro_batches: list[dict[str, Any]]  # rank by rank, micro-step by micro-step, with "rank" and "weight_x_n"
    checks: list[Check]
    total_trained: int
    ranks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == PROBLEM]

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "world_size": self.world_size,
            "total_trained": self.total_trained,
            "micro_batches": self.micro_batches,
            "checks": [c.to_dict() for c in self.checks],
            "problems": [c.name for c in self.problems],
        }

    def stop_message(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.problems)


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _where(items: list[tuple[int, int, list[int]]], n: int = 3) -> str:
    return ", ".join(f"rank {r} micro-batch {m} row {b} [{s}, {e})" for r, m, (b, s, e) in items[:n]) + (
        " …" if len(items) > n else ""
    )


def judge(
    stats: list[dict[str, Any]],
    *,
    step: int,
    backward_divides_by: int,
    stop_tokens: dict[int, str],
    share_band: tuple[float, float] = SHARE_BAND,
) -> Audit:
    """The audit of `stats` (one per rank, in rank order)."""
    world = len(stats)
    rows = [{"rank": s["rank"], **mb} for s in stats for mb in s["micro_batches"]]
    total = sum(r["trained"] for r in rows)
    for r in rows:
        r["weight_x_n"] = _weight_x_n(r, total, backward_divides_by, world)
    checks = [
        _no_token(rows, total),
        _stop_tokens(stats, stop_tokens),
        _share(rows, share_band),
        _crossing(rows),
        _twice(stats),
        _weights(rows, total),
    ]
    return Audit(step, world, rows, checks, total, stats)


def _weight_x_n(r: dict[str, Any], total: int, divisor: int, world: int) -> float | None:
    if not r["trained"] or r["loss"] is None or not r["ce_sum"]:
        return None
    return r["loss"] / r["ce_sum"] / divisor / world * total


def _no_token(rows: list[dict[str, Any]], total: int) -> Check:
    name = NO_TOKEN
    if total == 0:
        return Check(name, PROBLEM, "the whole step trains no token: every label is -100 on every rank")
    empty = [(r["rank"], r["micro_step"]) for r in rows if r["trained"] == 0]
    found = [(r["rank"], r["micro_step"], u) for r in rows for u in r["untrained"]]
    count = sum(r["untrained_count"] for r in rows)
    sequences = sum(r["sequences"] for r in rows)
    if count:
        also = f"; micro-batches with none: {', '.join(f'rank {a} #{b}' for a, b in empty)}" if empty else ""
        return Check(name, PROBLEM, f"{count} of {_n(sequences, 'sequence')} train{'s' if count == 1 else ''} no token ({_where(found)}){also}")
    return Check(name, OK, f"every one of the {sequences} sequences trains at least one token")


def _stop_tokens(stats: list[dict[str, Any]], stop_tokens: dict[int, str]) -> Check:
    name = STOP_TOKENS
    if not stop_tokens:
        return Check(name, UNCHECKED, "no stop token known (no tokenizer eos, generation config or chat template)")
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in stats:
        for tid, (seen, trained) in s["stop_tokens"].items():
            sums[tid][0] += seen
            sums[tid][1] += trained
    parts, never = [], []
    for tid, text in stop_tokens.items():
        seen, trained = sums[str(tid)]
        parts.append(f"{text} ({tid}) trained {trained} of {seen}")
        if seen and not trained:
            never.append(f"{text} ({tid}) appears {_n(seen, 'time')} and is never trained: the model does not learn to stop")
    absent = [f"{text} ({tid})" for tid, text in stop_tokens.items() if not sums[str(tid)][0]]
    if len(absent) == len(stop_tokens):
        return Check(
            name, PROBLEM, f"no stop token is in this step's tokens ({', '.join(absent)}): its sequences never end, "
            "so the model does not learn to stop (cut by max_length? a template without an end of turn?)"
        )
    note = f" (not in this step: {', '.join(absent)})" if absent else ""
    if never:
        return Check(name, PROBLEM, "; ".join(never) + note)
    return Check(name, OK, "; ".join(p for p, tid in zip(parts, stop_tokens) if sums[str(tid)][0]) + note)


def _share(rows: list[dict[str, Any]], band: tuple[float, float]) -> Check:
    low, high = band
    name = SHARE
    tokens = sum(r["tokens"] for r in rows)
    trained = sum(r["trained"] for r in rows)
    share = trained / tokens if tokens else 0.0
    detail = f"{trained} of {tokens} real tokens train ({share:.1%}; the band: {low:.0%}–{high:.0%})"
    if share < low:
        return Check(name, PROBLEM, detail + ": almost nothing trains, check the masks (prompt, assistant, truncation)")
    if share > high:
        return Check(name, PROBLEM, detail + ": nearly every token trains, the prompts are not masked (is that meant?)")
    return Check(name, OK, detail)


def _crossing(rows: list[dict[str, Any]]) -> Check:
    name = CROSSING
    packed = sum(r["packed_rows"] for r in rows)
    if not packed:
        return Check(name, OK, "no batch row holds more than one sequence")
    how = sorted({r["attention"] for r in rows if r["packed_rows"]})
    found = [(r["rank"], r["micro_step"], c) for r in rows for c in r["crossing"]]
    count = sum(r["crossing_count"] for r in rows)
    if count:
        return Check(
            name, PROBLEM, f"{_n(count, 'packed sequence')} attend{'s' if count == 1 else ''} to the sequences before them ({_where(found)}): {'; '.join(how)}"
        )
    holds = "holds" if packed == 1 else "hold"
    return Check(name, OK, f"{_n(packed, 'batch row')} {holds} several sequences, each attends only to itself: {'; '.join(how)}")


def _twice(stats: list[dict[str, Any]]) -> Check:
    name = TWICE
    if any(s["epoch_batches"] is None for s in stats):
        why = next(s["epoch_how"] for s in stats if s["epoch_batches"] is None)
        return Check(name, UNCHECKED, why)
    where: dict[int, list[str]] = defaultdict(list)
    for s in stats:
        for k, batch in enumerate(s["epoch_batches"]):
            for i in batch:
                where[i].append(f"rank {s['rank']} batch {k}")
    twice = {i: w for i, w in where.items() if len(w) > 1}
    total = sum(len(w) for w in where.values())
    if twice:
        extra = sum(len(w) - 1 for w in twice.values())
        first = "; ".join(f"index {i}: {', '.join(w)}" for i, w in list(twice.items())[:3])
        return Check(
            name, PROBLEM, f"{_n(len(twice), 'dataset row')} {'is' if len(twice) == 1 else 'are'} handed out more than once this "
            f"epoch ({_n(extra, 'repeat')} in {total}; {first}) "
            "— accelerate's even_batches refills the last batches from the start of the data"
        )
    return Check(name, OK, f"no row comes twice among the {total} the data loaders hand out this epoch on {_n(len(stats), 'rank')}")


def _weights(rows: list[dict[str, Any]], total: int) -> Check:
    name = WEIGHTS
    measured = [r for r in rows if r["weight_x_n"] is not None]
    if not total:
        return Check(name, UNCHECKED, "no token trains")
    if len(measured) < sum(1 for r in rows if r["trained"]):
        return Check(name, UNCHECKED, "the model's outputs hold neither log-probabilities nor logits with labels, or no loss was seen")
    spread = [r["weight_x_n"] for r in measured]
    off = [r for r in measured if abs(r["weight_x_n"] - 1) > WEIGHT_TOLERANCE]
    counts = sorted({r["num_items_in_batch"] for r in measured if r["num_items_in_batch"] is not None})
    said = f"the Trainer's num_items_in_batch {', '.join(f'{c:g}' for c in counts)}" if counts else "no num_items_in_batch"
    if off:
        worst = max(off, key=lambda r: abs(r["weight_x_n"] - 1))
        return Check(
            name, PROBLEM,
            f"tokens weigh {min(spread):.3g}–{max(spread):.3g} × 1/{total} (rank {worst['rank']} micro-batch "
            f"{worst['micro_step']}: {worst['weight_x_n']:.3g}/{total}; {said}): the loss is not normalised by the step's "
            "trained tokens, so tokens in small micro-batches or ranks weigh more",
        )
    return Check(name, OK, f"each of the {total} trained tokens weighs 1/{total} ({said})")


def format_audit(audit: Audit, stop_on_problem: bool) -> str:
    """The table printed to the run's log by rank 0."""
    lines = [
        f"causallm-inspect recorder: audit of step {audit.step}, before its optimizer step "
        f"({audit.world_size} rank{'s' if audit.world_size != 1 else ''}, {audit.total_trained} trained tokens)",
        f"  {'rank':>4} {'micro':>5} {'rows':>5} {'tokens':>7} {'trained':>8} {'share':>6} {'seqs':>5} "
        f"{'no token':>8} {'crossing':>8} {'weight×N':>9}",
    ]
    for r in audit.micro_batches:
        share = f"{r['trained'] / r['tokens']:.0%}" if r["tokens"] else "-"
        weight = "-" if r["weight_x_n"] is None else f"{r['weight_x_n']:.3f}"
        lines.append(
            f"  {r['rank']:>4} {r['micro_step']:>5} {r['rows']:>5} {r['tokens']:>7} {r['trained']:>8} {share:>6} "
            f"{r['sequences']:>5} {r['untrained_count']:>8} {r['crossing_count']:>8} {weight:>9}"
        )
    width = max(len(c.name) for c in audit.checks)
    for c in audit.checks:
        mark = {OK: "ok", PROBLEM: "PROBLEM", UNCHECKED: "-"}[c.status]
        lines.append(f"  {c.name:<{width}}  {mark:<7}  {c.detail}")
    n = len(audit.problems)
    if n:
        then = "the run stops here (stop_on_problem)" if stop_on_problem else "the run goes on (stop_on_problem is off)"
        lines.append(f"  {n} problem{'s' if n != 1 else ''}: {then}")
    else:
        lines.append("  no problem found")
    return "\n".join(lines)
