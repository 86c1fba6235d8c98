"""Turn policies: which assistant turns of a conversation are trained, and in which rows.

`all` (every assistant turn: TRL's assistant_only_loss), `last` (the last assistant message),
`final` (the final answer: the last assistant message that calls no tool), `split` (one row
per assistant turn: the prompt inference gives it, then the turn, only the turn trained, so
each trained turn's context is inference's). Under the mask and custom strategies a message
whose own flag says "do not train" (`"weight": 0`...) is left out too; TRL ignores flags, and
trains a policy's turn as the completion of conversational prompt/completion rows.

The inference template, the one the model answers with, is the model's own; for a `_training`
variant TRL ships, the original it was made from; or one named with --inference-template.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.data.reasoning import untrained_by_flag
from inspector.core.errors import InspectorError, briefly

TURN_POLICIES = ("all", "last", "final", "split")
DEFAULT_POLICY = "all"
POLICY_HELP = {
    "all": "every assistant turn is trained",
    "last": "only the last assistant turn is trained",
    "final": "only the final answer is trained: the last assistant turn that calls no tool",
    "split": "one row per assistant turn, rendered as inference renders it, only that turn trained",
}


@dataclass(frozen=True)
class InferenceTemplate:
    text: str
    name: str  # what it is, for display


def inference_template_for(
    tokenizer: Any, training_template: str | None, given: str | None = None
) -> InferenceTemplate:
    """The template the model answers with (see the module's docstring for the order)."""
    from pathlib import Path

    from inspector.core.data.trl_templates import TRAINING, name_of, shipped

    if given:
        p = Path(given).expanduser()
        if p.is_file():
            from inspector.core.data.conversations import read_chat_template

            return InferenceTemplate(read_chat_template(p), p.name)
        files = shipped()
        if given in files:
            return InferenceTemplate(files[given].read_text(encoding="utf-8"), f"{given} (TRL's)")
        raise InspectorError(
            f"--inference-template {given}: no such file, nor a template TRL ships",
            "give a .jinja file, or one of the names `causallm-inspect templates` lists (e.g. qwen3)",
        )
    if training_template:
        name = name_of(training_template)
        if name and name.endswith(TRAINING):
            original = name[: -len(TRAINING)]
            files = shipped()
            if original in files:
                return InferenceTemplate(
                    files[original].read_text(encoding="utf-8"), f"{original} (TRL's original of {name})"
                )
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, str) and own:
        return InferenceTemplate(own, "the model's own")
    if training_template:
        return InferenceTemplate(training_template, "the training template (no other is known)")
    raise InspectorError(
        "no chat template to render the inference prompt with", "pass --inference-template FILE or NAME"
    )


# --- policies -----------------------------------------------------------------------------------


def assistant_indices(messages: Sequence[dict[str, Any]]) -> list[int]:
    from inspector.core.data.conversations import ASSISTANT_ROLES

    return [i for i, m in enumerate(messages) if m["role"] in ASSISTANT_ROLES]


def trained_messages(messages: Sequence[dict[str, Any]], policy: str, *, flags: bool = True) -> list[int]:
    """The assistant messages (0-based) a policy trains; with `flags`, those whose own flag says
    "do not train" are left out (the mask and custom strategies; TRL ignores flags)."""
    if policy not in TURN_POLICIES:
        raise InspectorError(f"unknown turn policy {policy!r}", f"use one of {', '.join(TURN_POLICIES)}")
    turns = assistant_indices(messages)
    if policy == "last":
        turns = turns[-1:]
    elif policy == "final":
        answers = [i for i in turns if not messages[i].get("tool_calls")]
        turns = answers[-1:]
    if flags:
        turns = [i for i in turns if untrained_by_flag(messages[i]) is None]
    return turns


@dataclass(frozen=True)
class PolicyRow:
    fe: FormattedExample
    trained: tuple[int, ...]  # the messages (0-based) whose spans are kept
    part: int = 1  # with split: which of the row's rows this is
    parts: int = 1
    completion_from: int | None = None  # for TRL: the message where the completion starts (prompt/completion rows)


def _keep_spans(fe: FormattedExample, keep: Sequence[int], tokenizer: Any) -> FormattedExample:
    from inspector.core.data.roles import message_ranges

    ranges = message_ranges(fe, tokenizer)
    if ranges is None:
        return fe
    wanted = [r for r in ranges if r.index in keep]
    spans = tuple(s for s in fe.answer_spans if any(r.start <= (s[0] + s[1]) / 2 < r.end for r in wanted))
    prompt_end = spans[-1][0] if spans else len(fe.text)
    return dataclasses.replace(fe, answer_spans=spans, prompt_end=prompt_end)


def _article_rows(fe: FormattedExample, policy: str) -> list[PolicyRow]:
    spans = list(fe.answer_spans)
    if policy in ("last", "final"):
        return [PolicyRow(dataclasses.replace(fe, answer_spans=tuple(spans[-1:])), ())]
    if policy == "split" and len(spans) > 1:
        out = []
        for n, (a, b) in enumerate(spans, start=1):
            cut = dataclasses.replace(fe, text=fe.text[:b], answer_spans=((a, b),), prompt_end=a)
            out.append(PolicyRow(cut, (), n, len(spans)))
        return out
    return [PolicyRow(fe, ())]


def _render(tokenizer: Any, msgs: Sequence[dict[str, Any]], template: str, tools: Any, *, prompt: bool = False) -> str:
    from inspector.core.data.conversations import render

    return render(tokenizer, [dict(m) for m in msgs], template, tools, add_generation_prompt=prompt)[0]


def _common(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def split_row(
    messages: Sequence[dict[str, Any]], k: int, tokenizer: Any, fe: FormattedExample, inference: str
) -> FormattedExample:
    """The row of turn k under `split`: the prompt inference gives it (messages[:k] through the
    inference template, with its generation prompt), then the turn as the training template
    writes it after its own generation prompt; only the turn is trained. Where the training
    template cannot say what the turn is (not prefix-preserving there), the inference
    template's own rendering, trained from where it parts from the prompt (TRL's split point)."""
    msgs = [dict(m) for m in messages[: k + 1]]
    try:
        prompt = _render(tokenizer, msgs[:k], inference, fe.tools, prompt=True)
    except Exception as exc:  # noqa: BLE001 -- the template's own refusal, said in one line
        raise InspectorError(
            f"the inference template cannot render the conversation before message {k + 1} "
            f"({briefly(exc, 120)})",
            "pass --inference-template with a template that renders these messages",
        ) from exc
    turn = None
    try:
        head = _render(tokenizer, msgs[:k], fe.chat_template or inference, fe.tools, prompt=True)
        full = _render(tokenizer, msgs, fe.chat_template or inference, fe.tools)
        if full.startswith(head) and len(full) > len(head):
            turn = full[len(head) :]
    except Exception:  # noqa: BLE001 -- then the inference template's rendering is used
        turn = None
    if turn is not None:
        overlap = next((j for j in range(min(len(prompt), len(turn)), 0, -1) if prompt.endswith(turn[:j])), 0)
        text = prompt + turn[overlap:]
        span = (len(prompt), len(text))
    else:
        text, span = trl_split(tokenizer, msgs, inference, fe.tools, prompt)
    return dataclasses.replace(
        fe, text=text, answer_spans=(span,), prompt_end=span[0], messages=tuple(msgs), chat_template=inference
    )


def trl_split(
    tokenizer: Any, msgs: Sequence[dict[str, Any]], template: str, tools: Any, prompt: str | None = None
) -> tuple[str, tuple[int, int]]:
    """What TRL trains of conversational prompt/completion rows (prompt = msgs[:-1], completion =
    the last message) through one template: the whole rendering, from where it parts from the
    prompt with its generation prompt (`common_prefix_length`)."""
    try:
        prompt = prompt if prompt is not None else _render(tokenizer, msgs[:-1], template, tools, prompt=True)
        text = _render(tokenizer, msgs, template, tools)
    except Exception as exc:  # noqa: BLE001 -- the template's own refusal, said in one line
        raise InspectorError(
            f"the chat template cannot render the conversation up to message {len(msgs)} "
            f"({briefly(exc, 120)})",
            "pass a template that renders these messages",
        ) from exc
    return text, (_common(prompt, text), len(text))


def trl_view(fe: FormattedExample, tokenizer: Any) -> FormattedExample:
    """A split row as TRL sees it: its messages as prompt/completion through the row's one
    template (the inference template), so the text is that template's rendering."""
    if fe.part is None or fe.completion_from is None or not fe.messages or fe.chat_template is None:
        return fe
    text, span = trl_split(tokenizer, list(fe.messages), fe.chat_template, fe.tools)
    return dataclasses.replace(fe, text=text, answer_spans=(span,), prompt_end=span[0])


def apply_policy(
    fe: FormattedExample, policy: str, tokenizer: Any, inference: InferenceTemplate | None = None, *, flags: bool = True
) -> list[PolicyRow]:
    """The rows a policy makes of one formatted example (split: one per assistant turn)."""
    if fe.kind != "chat" or not fe.messages:
        return _article_rows(fe, policy) if policy != "all" else [PolicyRow(fe, ())]
    msgs = list(fe.messages)
    keep = trained_messages(msgs, policy, flags=flags)
    if policy == "split":
        inference = inference or inference_template_for(tokenizer, fe.chat_template)
        if not keep:  # nothing to train: the row stays, training nothing (counted where rows are)
            return [PolicyRow(_keep_spans(fe, [], tokenizer), ())]
        rows = [split_row(msgs, k, tokenizer, fe, inference.text) for k in keep]
        return [PolicyRow(r, (k,), n, len(keep), k) for n, (k, r) in enumerate(zip(keep, rows), start=1)]
    every = assistant_indices(msgs)
    if keep == every and policy == "all":
        return [PolicyRow(fe, tuple(keep))]
    unflagged = trained_messages(msgs, policy, flags=False)  # TRL ignores flags: its completion is the policy's turn
    completion = unflagged[-1] if policy in ("last", "final") and unflagged else None
    return [PolicyRow(_keep_spans(fe, keep, tokenizer), tuple(keep), completion_from=completion)]


def policy_examples(
    examples: Sequence[Any],
    formatted: Sequence[FormattedExample],
    policy: str,
    tokenizer: Any,
    inference: InferenceTemplate | None = None,
    *,
    flags: bool = True,
) -> tuple[list[Any], list[FormattedExample]]:
    """The rows to label under a policy: each example with its formatted rows (split makes
    several per example, each keeping the example's row number; `fe.part` says which)."""
    if policy == DEFAULT_POLICY and not flags:
        return list(examples), list(formatted)
    out_ex: list[Any] = []
    out_fe: list[FormattedExample] = []
    for ex, fe in zip(examples, formatted):
        try:
            rows = apply_policy(fe, policy, tokenizer, inference, flags=flags)
        except InspectorError as exc:
            where = getattr(ex, "where", "the row")
            raise InspectorError(f"{where}: {exc.problem}", exc.fix, kind=exc.kind) from exc
        for r in rows:
            out_ex.append(ex)
            part = (r.part, r.parts) if r.parts > 1 or policy == "split" else None
            out_fe.append(dataclasses.replace(r.fe, part=part, completion_from=r.completion_from))
    return out_ex, out_fe
