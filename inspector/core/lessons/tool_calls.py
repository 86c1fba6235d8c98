"""Lesson 15's demo: which parts of a tool call and of its result are trained, under each
strategy and turn policy, in one agent conversation rendered by TRL's `qwen3_training`.

Each token's role comes from `data.roles.token_roles`; a call's tokens are further told apart
here (`call_parts`): the function's name, its arguments (the JSON the template writes) and the
markers around them. The labels are copy's, the mask's (the template's generation markers,
per-message flags honoured) and TRL's own (a real `SFTTrainer`: `assistant_only_loss` for
every turn, prompt/completion rows for one).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.lessons.chat_templates import _Collect
from inspector.core.lessons.traces import template_text

TEMPLATE = "qwen3_training"
CALL = {"type": "function", "function": {"name": "translate", "arguments": {"word": "water", "to": "es"}}}
# A question, a call to a dictionary, its result, the final answer.
AGENT: tuple[dict[str, Any], ...] = (
    {"role": "user", "content": 'How do you say "water" in Spanish?'},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": "agua"},
    {"role": "assistant", "content": "agua"},
)
FLAG = ("weight", 0)  # axolotl's and LLaMA-Factory's "do not train this message"
# The parts of a conversation the panel counts, by the role of their tokens (a call's split in three).
PARTS = ("name", "arguments", "markers", "result", "think", "answer")
POLICIES = ("all", "last", "final")  # split is lesson 14's: its rows repeat the prompt
_PART_OF_ROLE = {"tool_result": "result", "reasoning": "think", "assistant": "answer"}


def flagged() -> list[dict[str, Any]]:
    """The conversation with its call marked "do not train" (`"weight": 0`)."""
    out = [dict(m) for m in AGENT]
    out[1][FLAG[0]] = FLAG[1]
    return out


def _argument_text(arguments: Any) -> str:
    """The arguments as a template writes them: a string as it is, a mapping as JSON (Jinja's `tojson`)."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def call_parts(fe: Any, offsets: Sequence[tuple[int, int]], roles: Sequence[str]) -> list[str]:
    """Per token, the part of the conversation it belongs to: a call's `name`, `arguments` or
    `markers`, a tool's `result`, an assistant's `think` block or `answer`, or "" (the prompt)."""
    from inspector.core.data.row_formats import tool_calls_of

    calls = [c for m in fe.messages or () for c in (m.get("tool_calls") or ())]
    names = [n for m in fe.messages or () for n in tool_calls_of(m)]
    arguments = [_argument_text((c.get("function") or c).get("arguments", "")) for c in calls]
    runs: list[tuple[int, int]] = []  # the character ranges of the tool_call tokens
    for (a, b), role in zip(offsets, roles):
        if role == "tool_call":
            if runs and a <= runs[-1][1]:
                runs[-1] = (runs[-1][0], b)
            else:
                runs.append((a, b))
    found: list[tuple[int, int, str]] = []
    for lo, hi in runs:
        for texts, part in ((names, "name"), (arguments, "arguments")):
            for t in texts:
                at = fe.text.find(t, lo, hi) if t else -1
                if at >= 0:
                    found.append((at, at + len(t), part))
    out = []
    for (a, b), role in zip(offsets, roles):
        mid = (a + b) / 2 if b > a else a
        if role == "tool_call":
            out.append(next((p for s, e, p in found if s <= mid < e), "markers"))
        else:
            out.append(_PART_OF_ROLE.get(role, ""))
    return out


@dataclass(frozen=True)
class PartCount:
    label: str  # "mask, last", ...
    trained: dict[str, int]  # per part, trained tokens
    total: dict[str, int]  # per part, tokens


def count_parts(label: str, rows: Sequence[tuple[Any, Sequence[int], Sequence[int]]], tokenizer: Any) -> PartCount:
    """Per part, the trained and all tokens of `rows` ((formatted example, ids, labels) each)."""
    from inspector.core.data.roles import token_roles
    from inspector.core.labels.strategies import encode

    trained = dict.fromkeys(PARTS, 0)
    total = dict.fromkeys(PARTS, 0)
    for fe, ids, labels in rows:
        own, offsets = encode(fe, tokenizer)
        if list(own) != list(ids):
            raise ValueError(f"{label}: the labels are of other tokens than the row's rendering")
        roles = token_roles(fe, offsets, tokenizer) or [""] * len(ids)
        for part, lab in zip(call_parts(fe, offsets, roles), labels):
            if part:
                total[part] += 1
                trained[part] += lab != -100
    return PartCount(label, trained, total)


@dataclass(frozen=True)
class ToolCallsView:
    rendered: str
    counts: tuple[PartCount, ...]
    flag_mask: int  # the flagged call's tokens the mask trains
    flag_trl: int  # ... and TRL's SFTTrainer
    call_tokens: int
    cut_last: int  # the conversation cut after the call: tokens `last` trains
    cut_final: int  # ... and `final`
    trl_error: str | None = None  # what TRL said where it refused
    trl_warnings: tuple[str, ...] = ()  # what it warned, once each


def _policy_rows(fe: Any, policy: str, tokenizer: Any, *, flags: bool = True) -> list[Any]:
    from inspector.core.labels.turn_policy import apply_policy

    rows = apply_policy(fe, policy, tokenizer, flags=flags)
    return [
        dataclasses.replace(r.fe, completion_from=r.completion_from) for r in rows
    ]


def _mask(fes: Sequence[Any], tokenizer: Any) -> list[tuple[Any, list[int], list[int]]]:
    from inspector.core.labels.strategies import encode, mask_labels

    out = []
    for fe in fes:
        ids, offsets = encode(fe, tokenizer)
        out.append((fe, ids, mask_labels(ids, offsets, fe)))
    return out


def _trl(fes: Sequence[Any], tokenizer: Any, model: Any) -> list[tuple[Any, list[int], list[int]]]:
    from inspector.core.labels.strategies import label_examples

    return [(lab.formatted, lab.input_ids, lab.labels) for lab in label_examples("trl", fes, tokenizer, model)]


def tool_calls_view(tokenizer: Any, model: Any, progress: Any = lambda msg: None) -> ToolCallsView:
    from inspector.core.data.conversations import render_chat
    from inspector.core.errors import InspectorError

    template = template_text(TEMPLATE)
    fe = render_chat(list(AGENT), tokenizer, template, where="the lesson's conversation")
    mask = {p: _mask(_policy_rows(fe, p, tokenizer), tokenizer) for p in POLICIES}
    counts = [count_parts("copy, all", [(fe, ids, list(ids)) for _, ids, _ in mask["all"]], tokenizer)]
    counts += [count_parts(f"mask, {p}", rows, tokenizer) for p, rows in mask.items()]
    flag_fe = render_chat(flagged(), tokenizer, template, where="the flagged conversation")
    flag_masked = count_parts("flag", _mask(_policy_rows(flag_fe, "all", tokenizer), tokenizer), tokenizer)
    call = ("name", "arguments", "markers")
    flag_trl, error = -1, None
    progress("asking TRL's SFTTrainer for its labels (assistant_only_loss; prompt/completion rows)")
    heard = _Collect()
    trl_logger = logging.getLogger("trl")
    trl_logger.addHandler(heard)  # kept off the terminal (and the app's screen), shown in the panel
    try:
        every = _trl([fe, flag_fe], tokenizer, model)
        one = _trl(_policy_rows(fe, "last", tokenizer) + _policy_rows(fe, "final", tokenizer), tokenizer, model)
        counts += [
            count_parts("trl, all", every[:1], tokenizer),
            count_parts("trl, last", one[:1], tokenizer),
            count_parts("trl, final", one[1:], tokenizer),
        ]
        flag_trl = sum(count_parts("flag", every[1:], tokenizer).trained[p] for p in call)
    except InspectorError as exc:  # TRL refused: said in the panel, the rest still shown
        error = exc.problem
    finally:
        trl_logger.removeHandler(heard)
    cut = render_chat(list(AGENT[:2]), tokenizer, template, where="the conversation cut after the call")
    cut_counts = {p: count_parts(p, _mask(_policy_rows(cut, p, tokenizer), tokenizer), tokenizer) for p in ("last", "final")}
    return ToolCallsView(
        rendered=fe.text,
        counts=tuple(counts),
        flag_mask=sum(flag_masked.trained[p] for p in call),
        flag_trl=flag_trl,
        call_tokens=sum(flag_masked.total[p] for p in call),
        cut_last=sum(cut_counts["last"].trained.values()),
        cut_final=sum(cut_counts["final"].trained.values()),
        trl_error=error,
        trl_warnings=tuple(dict.fromkeys(re.sub(r"^\[RANK \d+\]\s*", "", w) for w in heard.messages)),
    )


# --- the panel's text ---------------------------------------------------------------------------


def tool_calls_text(v: ToolCallsView) -> str:
    from inspector.core.data.tokens import visible

    lines = [
        f"one agent conversation through {TEMPLATE}: user 'How do you say \"water\" in Spanish?' · assistant calls "
        f"translate({_argument_text(CALL['function']['arguments'])}) · tool 'agua' · assistant 'agua'",
        f"rendered: {visible(v.rendered)}",
        "",
        "trained tokens of each part, of its tokens; think: the empty think blocks",
        f"  {'':<14}" + "".join(f"{p:>11}" for p in PARTS),
    ]
    for c in v.counts:
        lines.append(f"  {c.label:<14}" + "".join(f"{f'{c.trained[p]}/{c.total[p]}':>11}" for p in PARTS))
    if v.trl_error:
        lines.append(f"  trl: TRL's SFTTrainer refused: {v.trl_error}")
    lines += [f"  TRL warned: {w}" for w in v.trl_warnings]
    lines.append("")
    flag = f'"{FLAG[0]}": {FLAG[1]}'
    trl = (
        f"TRL's SFTTrainer trains {v.flag_trl}: it has no such field"
        if v.flag_trl >= 0
        else "TRL's SFTTrainer could not be asked"
    )
    lines.append(f"the call marked {flag}: the mask trains {v.flag_mask} of its {v.call_tokens} tokens; {trl}")
    lines.append(
        f"the conversation cut after the call (it ends on it): last trains {v.cut_last} tokens (the call's turn), "
        f"final {v.cut_final}" + (": there is no final answer" if not v.cut_final else "")
    )
    return "\n".join(lines)
