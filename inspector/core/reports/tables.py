"""Plain-text tables for the headless commands and the lessons' --plain mode."""

from __future__ import annotations

from collections.abc import Sequence

from inspector.core.labels.strategies import STRATEGY_TITLES, LabeledExample
from inspector.core.training.predictions import PredictionRow, accuracy


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def labels_table(lab: LabeledExample, title: str = "", name: str | None = None) -> str:
    """One line per token: position, token, input_id, label (masked shown as -100 ·masked).

    `name` is what the strategy is called (the label function's name for `custom`).
    """
    head = f"{title}: " if title else ""
    title_of = STRATEGY_TITLES.get(lab.strategy, "")
    called = lab.strategy
    if name is not None and name != lab.strategy:
        called, title_of = name, f"{lab.strategy}: {title_of}"
    lines = [
        f"{head}{called} ({title_of}): "
        f"{lab.trained_tokens} of {len(lab.rows)} tokens trained",
        f"{'pos':>4}  {'token':<18} {'input_id':>9} {'label':>9}",
    ]
    for r in lab.rows:
        state = "never a target (position 0)" if r.position == 0 else "masked" if r.masked else "trained"
        label = f"{r.label:>9}  {state}"
        lines.append(f"{r.position:>4}  {_clip(r.text, 18):<18} {r.id:>9} {label}")
    return "\n".join(lines)


def predictions_table(rows: Sequence[PredictionRow], title: str = "") -> str:
    lines = [
        title,
        f"{'pos':>4}  {'input':<16} {'next (true)':<16} {'predicted':<16} {'':1} {'p(true)':>8}",
    ]
    for r in rows:
        mark = "" if r.correct is None else ("✓" if r.correct else "✗")
        p = "" if r.p_target is None else f"{r.p_target:8.3f}"
        target = r.target if r.target is not None else "(end)"
        lines.append(f"{r.position:>4}  {_clip(r.input, 16):<16} {_clip(target, 16):<16} {_clip(r.predicted, 16):<16} {mark:1} {p:>8}")
    lines.append(f"right: {accuracy(rows):.0%} of {sum(1 for r in rows if r.correct is not None)} positions")
    lines.append("predicted, read as text: " + "".join(r.predicted for r in rows))
    return "\n".join(lines)


def predictions_summary(rows: Sequence[PredictionRow], answer_positions: frozenset[int], name: str) -> str:
    """Two lines: how many prompt and answer positions were guessed right, and the guesses as text."""
    scored = [r for r in rows if r.correct is not None]
    prompt = [r for r in scored if r.position not in answer_positions]
    answer = [r for r in scored if r.position in answer_positions]
    share = sum(r.correct for r in prompt) / len(prompt) if prompt else 0.0
    return (
        f"{name}: prompt {sum(r.correct for r in prompt)}/{len(prompt)} right ({share:.0%}),"
        f" answer {sum(r.correct for r in answer)}/{len(answer)} right\n"
        f"{name}: predicted, read as text: {''.join(r.predicted for r in rows)!r}"
    )
