"""Training beside inference, turn by turn, and the turn policies people train with.

For each assistant turn k of a conversation, the model is trained on that turn's tokens in the
context the training render puts before them; at inference it answers after
`apply_chat_template(messages[:k], add_generation_prompt=True)` rendered by the inference
template (the model's own; for a `_training` variant TRL ships, the original it was made from;
or one named with --inference-template). The contexts match when the tokens before the turn's
first trained token are exactly the inference prompt's tokens. Reasoning templates are where
they differ: Qwen 3's original drops the think blocks of earlier turns, its training variant
keeps them; DeepSeek-R1-Distill's prefills `<think>\\n` into the prompt.

The turn policies (all, last, final, split) are in `labels.turn_policy`, re-exported here.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.data.reasoning import ASSISTANT_ROLES, THINK_OPENERS, reasoning_of, untrained_by_flag
from inspector.core.labels.turn_policy import (
    DEFAULT_POLICY,
    POLICY_HELP,
    TURN_POLICIES,
    InferenceTemplate,
    PolicyRow,
    apply_policy,
    assistant_indices,
    inference_template_for,
    policy_examples,
    split_row,
    trained_messages,
    trl_split,
    trl_view,
)

__all__ = [
    "DEFAULT_POLICY",
    "FINDINGS",
    "POLICY_HELP",
    "TURN_POLICIES",
    "InferenceTemplate",
    "PolicyRow",
    "Turn",
    "apply_policy",
    "findings",
    "inference_template_for",
    "policy_examples",
    "reasoning_share",
    "split_row",
    "trained_messages",
    "trl_split",
    "trl_view",
    "turn_reports",
]

# --- turn reports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    number: int  # 1-based among the assistant messages
    message: int  # 1-based message index
    start: int  # token span of the message in the training render
    end: int
    trained: int
    first_trained: int | None
    reasoning_tokens: int
    reasoning_trained: int
    reasoning_present: bool
    reasoning_rendered: bool
    reasoning_text_masked: int  # tokens of the reasoning's own text (not its markers) that are masked
    empty_reasoning_trained: bool
    tool_call_tokens: int
    tool_call_trained: int
    context_matches_inference: bool | None
    training_only: tuple[int, ...] = ()
    inference_only: tuple[int, ...] = ()
    inference_ids: tuple[int, ...] = ()
    prefilled: str = ""  # what the inference prompt adds at its end that the training context lacks
    differs_beyond_prefill: bool = False  # the contexts differ elsewhere too
    tokenized_differently: bool = False  # the same text, only cut into tokens differently at the turn's start
    verdict: str = ""
    flag: str | None = None  # the message's own "do not train" flag
    trained_positions: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn": self.number,
            "message": self.message,
            "span": [self.start, self.end],
            "trained": self.trained,
            "first_trained": self.first_trained,
            "trained_positions": list(self.trained_positions),
            "reasoning_tokens": self.reasoning_tokens,
            "reasoning_trained": self.reasoning_trained,
            "reasoning_present": self.reasoning_present,
            "reasoning_rendered": self.reasoning_rendered,
            "empty_reasoning_trained": self.empty_reasoning_trained,
            "tool_call_tokens": self.tool_call_tokens,
            "tool_call_trained": self.tool_call_trained,
            "context_matches_inference": self.context_matches_inference,
            "differing_positions": {"training": list(self.training_only), "inference": list(self.inference_only)},
            "inference_prompt_tokens": len(self.inference_ids),
            "prefilled": self.prefilled,
            "tokenized_differently": self.tokenized_differently,
            "verdict": self.verdict,
            "flag": self.flag,
        }


def _prompt_ids(
    tokenizer: Any, messages: Sequence[dict[str, Any]], k: int, fe: FormattedExample, template: str
) -> list[int]:
    from inspector.core.data.conversations import render

    text, _ = render(tokenizer, [dict(m) for m in messages[:k]], template, fe.tools, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=fe.add_special)["input_ids"])


def _diff(a: Sequence[int], b: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    only_a: list[int] = []
    only_b: list[int] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, list(a), list(b), autojunk=False).get_opcodes():
        if op in ("replace", "delete"):
            only_a += range(i1, i2)
        if op in ("replace", "insert"):
            only_b += range(j1, j2)
    return tuple(only_a), tuple(only_b)


def _prefill(tokenizer: Any, ctx: Sequence[int], inf: Sequence[int], common: int) -> tuple[str, bool]:
    """(what inference's prompt adds at its end: all it has past the training context when that
    is a prefix of it, else a think opener it ends with that the context lacks; whether the
    contexts differ other than by it)."""
    if list(ctx) == list(inf):
        return "", False
    if common == len(ctx):
        return tokenizer.decode(list(inf[common:])), False
    t_text, i_text = tokenizer.decode(list(ctx)), tokenizer.decode(list(inf))
    end = i_text.rstrip()
    opener = next((o for o in THINK_OPENERS if end.endswith(o)), None)
    if opener is None or t_text.rstrip().endswith(opener):
        return "", True
    cut = len(end) - len(opener)
    return i_text[cut:], i_text[:cut].rstrip() != t_text.rstrip()


def _short(text: str, n: int = 40) -> str:
    text = text if len(text) <= n else text[: n - 1] + "…"
    return repr(text)


def _verdict(
    ids: Sequence[int],
    first: int,
    inf: Sequence[int],
    only_t: Sequence[int],
    only_i: Sequence[int],
    roles: Sequence[str],
    msg_of: Sequence[int | None],
    messages: Sequence[dict[str, Any]],
    tokenizer: Any,
    prefilled: str,
    labels: Sequence[int],
) -> str:
    from inspector.core.data.row_formats import tool_calls_of

    ctx = list(ids[:first])
    if ctx == list(inf):
        return "same context as at inference"
    t_text, i_text = tokenizer.decode(ctx), tokenizer.decode(list(inf))
    if t_text == i_text:
        return "same text as at inference, tokenized differently where the turn starts"
    why: list[str] = []
    reasoned = sorted({msg_of[p] + 1 for p in only_t if roles[p] == "reasoning" and msg_of[p] is not None})
    full = [n for n in reasoned if reasoning_of(messages[n - 1])]
    empty = [n for n in reasoned if not reasoning_of(messages[n - 1])]
    if full:
        which = ", ".join(map(str, full))
        why.append(f"earlier reasoning (message {which}) is in the training context, not at inference")
    if empty:
        which = ", ".join(map(str, empty))
        s = "s" if len(empty) > 1 else ""
        why.append(f"an earlier empty think block{s} (message {which}) is in the training context, not at inference")
    inf_only_text = tokenizer.decode([inf[p] for p in only_i]) if only_i else ""
    earlier = [r.text.strip() for m in messages if (r := reasoning_of(m)) and r.text.strip()]
    if any(e[:30] in i_text and e[:30] not in t_text for e in earlier):
        why.append("earlier reasoning is at inference, not in the training context")
    if prefilled:
        trained_next = tokenizer.decode(
            [ids[p] for p in range(first, min(len(ids), first + len(only_i) + 2)) if labels[p] != -100]
        )
        think = any(o in prefilled for o in THINK_OPENERS)
        what = "a think opener" if think else "text"
        taught = (
            " that training trains as the turn's start"
            if prefilled.strip() and prefilled.strip() in trained_next
            else ""
        )
        why.append(f"inference prefills {what} {_short(prefilled)}{taught}")
    for m in messages:
        for name in tool_calls_of(m):
            if (name in t_text) != (name in i_text):
                side = "training" if name in t_text else "inference"
                why.append(f"the tool call {name} is in the {side} context only (the other template drops it)")
    if not why:
        t_only = tokenizer.decode([ids[p] for p in only_t]) if only_t else ""
        why.append(
            f"differs at {len(only_t)} training / {len(only_i)} inference tokens: "
            f"training has {_short(t_only)}, inference {_short(inf_only_text)}"
        )
    return "; ".join(why)


def turn_reports(
    fe: FormattedExample,
    ids: Sequence[int],
    offsets: Sequence[tuple[int, int]],
    labels: Sequence[int],
    tokenizer: Any,
    inference: InferenceTemplate,
) -> list[Turn]:
    """One Turn per assistant message of a chat row ([] for the article's format)."""
    from inspector.core.data.roles import token_places

    places = token_places(fe, offsets, tokenizer)
    if places is None or not fe.messages:
        return []
    msg_of, roles = places
    msgs = list(fe.messages)
    out = []
    for n, k in enumerate(assistant_indices(msgs), start=1):
        span = [p for p, i in enumerate(msg_of) if i == k]
        start, end = (span[0], span[-1] + 1) if span else (0, 0)
        trained = [p for p in span if labels[p] != -100]
        first = trained[0] if trained else None
        reason = [p for p in span if roles[p] == "reasoning"]
        calls = [p for p in span if roles[p] == "tool_call"]
        r = reasoning_of(msgs[k])
        inner = r.text.strip() if r else ""
        at = fe.text.find(inner, offsets[start][0] if span else 0) if inner else -1
        rendered = bool(inner) and at >= 0 and (not span or at < offsets[end - 1][1])
        text_masked = (
            sum(1 for p in reason if labels[p] == -100 and at <= offsets[p][0] < at + len(inner)) if rendered else 0
        )
        base: dict[str, Any] = dict(
            number=n,
            message=k + 1,
            start=start,
            end=end,
            trained=len(trained),
            first_trained=first,
            reasoning_tokens=len(reason),
            reasoning_trained=sum(1 for p in reason if labels[p] != -100),
            reasoning_present=r is not None,
            reasoning_rendered=rendered,
            reasoning_text_masked=text_masked,
            empty_reasoning_trained=r is None and any(labels[p] != -100 for p in reason),
            tool_call_tokens=len(calls),
            tool_call_trained=sum(1 for p in calls if labels[p] != -100),
            flag=untrained_by_flag(msgs[k]),
            trained_positions=tuple(trained),
        )
        if first is None:
            out.append(Turn(**base, context_matches_inference=None, verdict="not trained: no context to compare"))
            continue
        try:
            inf = _prompt_ids(tokenizer, msgs, k, fe, inference.text)
        except Exception as exc:  # noqa: BLE001 -- a template that refuses the shorter conversation
            said = (str(exc).splitlines() or [""])[0][:120]
            out.append(
                Turn(
                    **base, context_matches_inference=None, verdict=f"the inference template cannot render it ({said})"
                )
            )
            continue
        only_t, only_i = _diff(ids[:first], inf)
        ctx = list(ids[:first])
        common = 0
        while common < min(len(ctx), len(inf)) and ctx[common] == inf[common]:
            common += 1
        prefilled, beyond = _prefill(tokenizer, ctx, inf, common)
        verdict = _verdict(ids, first, inf, only_t, only_i, roles, msg_of, msgs, tokenizer, prefilled, labels)
        # The inference prompt's text ends inside the turn's first trained token: the same text, cut
        # into tokens differently at the turn's start (a tokenizer merging across the boundary).
        merged = ctx != inf and tokenizer.decode(list(ids[: first + 1])).startswith(tokenizer.decode(inf))
        if merged:
            first_text = tokenizer.decode([ids[first]])
            verdict = (
                "same text as at inference, cut into tokens differently where the turn starts (its first trained "
                f"token {_short(first_text)} also covers the end of the inference prompt)"
            )
            prefilled, beyond = "", False
        out.append(
            Turn(
                **base,
                context_matches_inference=ctx == inf,
                training_only=only_t,
                inference_only=only_i,
                inference_ids=tuple(inf),
                prefilled=prefilled,
                differs_beyond_prefill=beyond,
                tokenized_differently=merged,
                verdict=verdict,
            )
        )
    return out


# --- what inspect-data reports ------------------------------------------------------------------

FINDINGS = (
    "reasoning-context-differs",
    "reasoning-not-trained",
    "empty-reasoning-trained",
    "reasoning-prefilled",
    "tool-result-trained",
    "message-flags-ignored",
)


def findings(
    fe: FormattedExample, turns: Sequence[Turn], roles: Sequence[str] | None, labels: Sequence[int]
) -> list[tuple[str, str]]:
    """(kind, detail) of each reasoning / tool-call problem of one labelled row."""
    out: list[tuple[str, str]] = []
    for t in turns:
        if not t.trained:
            continue
        think_prefill = any(o in t.prefilled for o in THINK_OPENERS)
        if (
            t.context_matches_inference is False
            and not t.tokenized_differently
            and (t.differs_beyond_prefill or not think_prefill)
        ):
            out.append(("reasoning-context-differs", f"turn {t.number} (message {t.message}): {t.verdict}"))
        if think_prefill:
            out.append(
                (
                    "reasoning-prefilled",
                    f"turn {t.number} (message {t.message}): inference prefills {_short(t.prefilled)}",
                )
            )
        if t.reasoning_present and not t.reasoning_rendered:
            out.append(
                ("reasoning-not-trained", f"turn {t.number} (message {t.message}): the template drops its reasoning")
            )
        elif t.reasoning_present and t.reasoning_text_masked:
            out.append(
                (
                    "reasoning-not-trained",
                    f"turn {t.number} (message {t.message}): {t.reasoning_text_masked} tokens of its reasoning are masked",
                )
            )
        if t.empty_reasoning_trained:
            out.append(
                (
                    "empty-reasoning-trained",
                    f"turn {t.number} (message {t.message}) has no reasoning, and its empty think block is trained",
                )
            )
    if roles is not None:
        n = sum(1 for r, lab in zip(roles, labels) if r == "tool_result" and lab != -100)
        if n:
            out.append(("tool-result-trained", f"{n} tokens of tool results are trained"))
    # only an assistant message's flag matters: TRL never trains the others anyway
    flagged = [
        (i + 1, f)
        for i, m in enumerate(fe.messages or ())
        if m["role"] in ASSISTANT_ROLES and (f := untrained_by_flag(m))
    ]
    if flagged:
        said = ", ".join(f"message {i} ({f})" for i, f in flagged)
        out.append(("message-flags-ignored", f"TRL's SFTTrainer trains {said} anyway: it has no such field"))
    return out


def reasoning_share(roles: Sequence[str] | None, labels: Sequence[int]) -> tuple[int, int]:
    """(trained reasoning tokens, trained tokens) of one row."""
    trained = sum(1 for lab in labels if lab != -100)
    if roles is None:
        return 0, trained
    return sum(1 for r, lab in zip(roles, labels) if r == "reasoning" and lab != -100), trained
