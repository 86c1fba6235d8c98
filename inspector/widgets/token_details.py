"""Details of the selected token: position, token, id, label, and why it is trained or masked."""

from __future__ import annotations

from typing import Any

from textual.markup import escape
from textual.widgets import Static


def explain(strategy: str, row: Any, labelings: dict[str, Any]) -> str:
    """Why this label is trained or masked under `strategy`, in one or two sentences."""
    lab = labelings.get(strategy)
    fe = lab.formatted if lab is not None else None
    bos = fe.bos if fe is not None else "bos"
    eos = fe.eos if fe is not None else "eos"
    if row.position == 0:
        first = "Position 0 is never predicted: nothing comes before it, so its label is never used"
        return first + (" (it is masked anyway)." if row.masked else ", although the label is set.")
    scored = (
        f"the model is scored on guessing it from the {row.position} token{'s' if row.position > 1 else ''} before it"
    )
    if strategy == "copy":
        return f"Trained: labels are a copy of input_ids, so every token is a target; {scored}."
    mask = labelings.get("mask")
    mask_row = mask.rows[row.position] if mask is not None and row.position < len(mask.rows) else None
    if strategy == "mask":
        if not row.masked:
            if row.text == eos:
                return f"Trained: the {eos} that closes an answer stays trained, so the model learns to stop."
            return f"Trained: part of an assistant answer; {scored}."
        if row.text == bos:
            return f"Masked (-100): create_special_mask masks everything up to and including the {bos} that opens an answer."
        return "Masked (-100): outside every assistant answer (a human turn, a marker), so the loss ignores it."
    # trl
    if not row.masked:
        if row.text == eos:
            return f"Trained: TRL's completion runs to the end, closing {eos} included, so the model learns to stop."
        return f"Trained: part of the completion (after the last {bos}), which completion_only_loss trains."
    if mask_row is not None and not mask_row.masked:
        return (
            f"Masked by TRL, trained by mask: TRL's prompt is everything up to the last {bos}, "
            "so an earlier answer of a multi-turn text counts as prompt."
        )
    return f"Masked (-100): part of the prompt (everything up to the last {bos}); completion_only_loss skips it."


ROLE_WORDS = {
    "system": "the system message",
    "user": "a user's message",
    "assistant": "an assistant's answer",
    "reasoning": "an assistant's reasoning (its think block, markers included)",
    "tool_call": "an assistant's tool call",
    "tool_result": "a tool's result",
}


def role_line(role: str, masked: bool) -> str:
    """What the token's role means for training, for a conversation's token."""
    words = ROLE_WORDS.get(role)
    if words is None:
        return "role: the template's own text between messages"
    if role == "reasoning":
        then = "the model reads this thinking but is not trained to write it" if masked else \
            "the model is trained to write this thinking"
        return f"role: {words}: {then}"
    return f"role: {words}"


class TokenDetails(Static):
    """What the selected column holds, and why its label is what it is."""

    HELP = """\
## Selected token

The column selected in the grid (move with `←`/`→`): its position, its text, its
input_id and label, whether the loss uses the label, and why, under the current strategy.
"""

    def show(self, strategy: str, position: int, labelings: dict[str, Any], roles: list[str] | None = None) -> None:
        lab = labelings.get(strategy)
        if lab is None or not 0 <= position < len(lab.rows):
            self.update("")
            return
        row = lab.rows[position]
        # Position 0 is never a target whatever its label (`LabeledExample.trained_tokens`).
        state = "[b]never a target[/b]" if row.position == 0 else "[b]masked[/b]" if row.masked else "[b]trained[/b]"
        kind = " (special token)" if row.special else ""
        self.update(
            f"position [b]{row.position}[/b] · token [b]{escape(row.text)}[/b]{kind} · input_id {row.id} · "
            f"label {row.label} → {state}\n{escape(explain(strategy, row, labelings))}"
            + (f"\n{escape(role_line(roles[position], row.masked))}" if roles is not None and len(roles) == len(lab.rows) else "")
        )
