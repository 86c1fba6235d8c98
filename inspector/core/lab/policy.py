"""The lab's turn policy: which assistant turns of its conversations are trained, and training
beside inference turn by turn.

`TurnPolicy` holds the policy (`labels.turns.TURN_POLICIES`: all, last, final, split) and the
inference template asked for (`--inference-template`). It makes the rows the bursts train from
the examples as read (split: one row per assistant turn), the rows of one example the labels
view shows (`parts`), and the turn reports of a labelled row (`turns`: the trained tokens of each
assistant turn in the training render's context beside the inference prompt, with the display
text of every token). No UI here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inspector.core.errors import InspectorError
from inspector.core.labels.turn_policy import DEFAULT_POLICY, TURN_POLICIES

if TYPE_CHECKING:
    from inspector.core.data.chat_format import FormattedExample
    from inspector.core.data.examples import Example
    from inspector.core.labels.strategies import LabeledExample
    from inspector.core.labels.turn_context import Turn
    from inspector.core.labels.turn_policy import InferenceTemplate


def check_policy(policy: str) -> str:
    if policy not in TURN_POLICIES:
        raise InspectorError(f"unknown turn policy {policy!r}", f"use one of {', '.join(TURN_POLICIES)}")
    return policy


@dataclass(frozen=True)
class TurnsShown:
    """The turn reports of one labelled row, with what the turns mode draws: the display text of
    each token of the training render, and of each turn's inference prompt."""

    turns: list[Turn]
    tokens: list[str]  # the training render's tokens as the grid writes them (`␣`, `↵`)
    trained: list[bool]  # whether each of them is trained
    inference: dict[int, list[str]] = field(default_factory=dict)  # turn number -> its prompt's tokens
    # turn number -> (training context, inference prompt): before which position of each the
    # other side has tokens this one lacks, and how many (where the marked tokens would go)
    gaps: dict[int, tuple[dict[int, int], dict[int, int]]] = field(default_factory=dict)
    template: str = ""  # which inference template, in words
    note: str = ""  # why there are no turns to show, or what was used instead


def gaps_of(context: Sequence[int], prompt: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    """Where each side lacks tokens the other has: {position in the training context: how many
    tokens only the inference prompt has there}, and the same for the inference prompt (the
    alignment `turn_context` finds its differing positions with)."""
    import difflib

    in_context: dict[int, int] = {}
    in_prompt: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, list(context), list(prompt), autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "delete":
            in_prompt[j1] = i2 - i1
        elif op == "insert":
            in_context[i1] = j2 - j1
    return in_context, in_prompt


class TurnPolicy:
    """The policy the bursts train and the labels view shows, and the inference template (see the
    module's docstring). Safe to use from the app's workers."""

    def __init__(self, policy: str = DEFAULT_POLICY, inference: str | None = None) -> None:
        self.policy = check_policy(policy)
        self.given = inference  # --inference-template: a file or a TRL name, or None
        self._templates: dict[str | None, InferenceTemplate] = {}
        self._lock = threading.Lock()

    def inference(self, tokenizer: Any, fe: FormattedExample) -> InferenceTemplate:
        """The template the model answers with, for rows rendered by `fe.chat_template`."""
        from inspector.core.labels.turn_policy import inference_template_for

        with self._lock:
            key = fe.chat_template
            # A split row is rendered by the inference template already: the same one, under its name.
            known = next((t for t in self._templates.values() if t.text == key), None)
            if known is not None:
                return known
            if key not in self._templates:
                self._templates[key] = inference_template_for(tokenizer, fe.chat_template, self.given)
            return self._templates[key]

    def _inference_of(self, tokenizer: Any, formatted: Sequence[FormattedExample]) -> InferenceTemplate | None:
        chat = next((fe for fe in formatted if fe.kind == "chat"), None)
        return None if chat is None else self.inference(tokenizer, chat)

    def rows(
        self, examples: Sequence[Example], formatted: Sequence[FormattedExample], tokenizer: Any, policy: str | None = None
    ) -> tuple[list[Example], list[FormattedExample]]:
        """The rows the bursts train under the policy (or `policy`): split makes several of an example."""
        from inspector.core.labels.turn_policy import policy_examples

        policy = check_policy(policy or self.policy)
        return policy_examples(examples, formatted, policy, tokenizer, self._inference_of(tokenizer, formatted))

    def parts(self, fe: FormattedExample, tokenizer: Any, policy: str | None = None) -> list[FormattedExample]:
        """The rows the policy (or `policy`) makes of one formatted example, as the bursts would train them."""
        from inspector.core.labels.turn_policy import policy_examples

        policy = check_policy(policy or self.policy)
        _, rows = policy_examples([None], [fe], policy, tokenizer, self._inference_of(tokenizer, [fe]))
        return rows or [fe]

    def turns(self, labeled: LabeledExample, tokenizer: Any) -> TurnsShown:
        """Each assistant turn of a labelled row: its trained tokens in the training render's context
        beside the inference prompt (`labels.turns.turn_reports`)."""
        from inspector.core.labels.strategies import encode, make_rows
        from inspector.core.labels.turn_context import turn_reports

        fe = labeled.formatted
        ids = [r.id for r in labeled.rows]
        labels = [r.label for r in labeled.rows]
        tokens = [r.text for r in labeled.rows]
        trained = [not r.masked and r.position > 0 for r in labeled.rows]
        if fe.kind != "chat" or not fe.messages:
            return TurnsShown([], tokens, trained, note="no chat template rendered this example: there is no "
                              "inference prompt to compare with (give --data with conversations)")
        encoded, offsets = encode(fe, tokenizer)
        if list(encoded) != ids:  # labels made on other tokens than the render's (a label function's own)
            return TurnsShown([], tokens, trained, note="these labels are not on the tokens of the training render, "
                              "so its turns cannot be compared: pick mask or trl")
        inference = self.inference(tokenizer, fe)
        found = turn_reports(fe, ids, offsets, labels, tokenizer, inference)
        prompts = {t.number: [r.text for r in make_rows(tokenizer, t.inference_ids, t.inference_ids)] for t in found}
        gaps = {t.number: gaps_of(ids[: t.first_trained], t.inference_ids) for t in found if t.first_trained is not None}
        note = "" if found else "the chat template's render could not be cut into its messages"
        return TurnsShown(found, tokens, trained, prompts, gaps, template=inference.name, note=note)

    def differing_turns(
        self, examples: Sequence[Example], formatted: Sequence[FormattedExample], tokenizer: Any
    ) -> dict[int, list[Turn]]:
        """Per data row, its trained turns whose context differs from inference's (with the mask
        strategy's labels of the rows as the policy made them); rows without one are left out."""
        from inspector.core.labels.strategies import label_example

        out: dict[int, list[Turn]] = {}
        for ex, fe in zip(examples, formatted):
            if fe.kind != "chat" or not fe.messages:
                continue
            shown = self.turns(label_example("mask", fe, tokenizer), tokenizer)
            out.setdefault(ex.row, []).extend(t for t in shown.turns if t.context_matches_inference is False)
        return {row: turns for row, turns in out.items() if turns}
