"""`inspect-data`'s reasoning and tool-call checks per row, and the share of trained tokens that are reasoning.

Per row: which turns train in a context inference never gives, which reasoning is dropped or
masked, which empty think blocks are trained as the answer, where inference prefills the think
opener, which tool results are trained, and which per-message flags TRL will ignore.

The rows are the turn policy's (`labels.turn_policy`: all, last, final, split), made per row in
the worker that checks it; the findings are the core's (`labels.turn_context.findings`), one
`Problem` per finding and strategy (message-flags-ignored once per row: it is about what TRL
will do, whatever the strategy checked). The copy strategy trains every token: it has no turn
to compare, so only its reasoning share is counted. Findings come back as (kind, detail,
strategy), which `row_checks` makes its problems of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inspector.core.errors import InspectorError

if TYPE_CHECKING:
    from inspector.core.data.chat_format import FormattedExample
    from inspector.core.labels.turn_policy import InferenceTemplate

# (kind, detail, strategy): a row's Problem, its row aside (row_checks makes the Problem)
Finding = tuple[str, str, "str | None"]

FLAGS_IGNORED = "message-flags-ignored"
REASONING_PROBLEMS = {
    "reasoning-context-differs": "a trained turn's context (the tokens the training render puts before it) differs "
    "from the prompt the model is given at inference before that turn",
    "reasoning-not-trained": "a turn's reasoning is in the row, but the template drops it or its tokens are masked",
    "empty-reasoning-trained": "a turn without reasoning is rendered with an empty think block, and that block is "
    "trained as part of the answer: the model learns to answer without thinking",
    "reasoning-prefilled": "inference puts the think opener in the prompt, while training trains the turn from "
    "before it: the first think token is part of the prompt at inference",
    "tool-result-trained": "tokens of a tool's result are trained: the model learns to write what tools return",
    FLAGS_IGNORED: 'a message carries a "do not train" flag ("weight": 0, "train": false, "loss": false) that '
    "TRL's SFTTrainer ignores: it trains the message anyway",
}
REASONING_FIXES = {
    "reasoning-context-differs": "train with --turn-policy split (each turn in the prompt inference gives it), "
    "or render the rows with the template the model answers with (--inference-template says which one that is)",
    "reasoning-not-trained": "use a template that renders every turn's reasoning (TRL's _training variants: "
    "--chat-template qwen3 uses qwen3_training), or --turn-policy split so each turn is the last of its row",
    "empty-reasoning-trained": "write the reasoning of those turns, drop them, or leave them out of training "
    '(--turn-policy last or final, or "weight": 0 with the mask or custom strategy)',
    "reasoning-prefilled": "make the training prompt end where inference's does (prompt/completion rows whose "
    "prompt is rendered with add_generation_prompt), so training starts where the model starts writing",
    "tool-result-trained": "mask the tool messages: a template whose {% generation %} block covers assistant "
    "messages only, or a label function that masks role tool_result",
    FLAGS_IGNORED: "for TRL, drop the flagged messages or make those rows prompt/completion (the completion being "
    "the turns to train), or split them (--turn-policy split) and drop the flagged turns' rows; the mask and custom "
    "strategies honour the flags",
}


CANNOT_COMPARE = "pass --inference-template with a template that renders these messages"


def inference_for(tokenizer: Any, training_template: str | None, given: str | None = None) -> InferenceTemplate | None:
    """The template contexts are compared with. A template named with --inference-template that
    cannot be found is the user's error (raised); none found otherwise: no comparison (None)."""
    from inspector.core.labels.turn_policy import inference_template_for

    if given:
        return inference_template_for(tokenizer, training_template, given)
    try:
        return inference_template_for(tokenizer, training_template)
    except InspectorError:  # no chat template anywhere: the rows are the article's format, no turns
        return None


def check_policy(policy: str) -> None:
    from inspector.core.labels.turn_policy import TURN_POLICIES

    if policy not in TURN_POLICIES:
        raise InspectorError(f"--turn-policy {policy!r} is not a turn policy", f"choose from {', '.join(TURN_POLICIES)}")


def carries_flag(fe: FormattedExample) -> bool:
    from inspector.core.data.reasoning import untrained_by_flag

    return any(untrained_by_flag(m) for m in fe.messages or ())


def carries_reasoning(fe: FormattedExample) -> bool:
    from inspector.core.data.reasoning import reasoning_of

    return any(reasoning_of(m) for m in fe.messages or ())


def policy_rows(
    job: Any, fe: FormattedExample, policy: str, tokenizer: Any, inference: InferenceTemplate | None, *, flags: bool
) -> list[FormattedExample]:
    """The rows a policy makes of one formatted row (`turn_policy.policy_examples`); raises the
    core's InspectorError naming the row where the policy cannot make them (the inference
    template refuses the conversation)."""
    from inspector.core.labels.turn_policy import policy_examples

    _, rows = policy_examples([job], [fe], policy, tokenizer, inference, flags=flags)
    return rows


def flag_findings(fe: FormattedExample) -> list[Finding]:
    """message-flags-ignored: the row's own "do not train" flags, which TRL's SFTTrainer ignores."""
    from inspector.core.labels.turn_context import findings

    return [(kind, detail, None) for kind, detail in findings(fe, [], None, []) if kind == FLAGS_IGNORED]


@dataclass
class RowReasoning:
    """One labelled row's reasoning checks under one strategy: its findings, and its trained
    reasoning tokens (position 0, which nothing predicts, left out as the report's totals leave
    it out)."""

    findings: list[Finding]
    reasoning_trained: int


def check_row(
    fe: FormattedExample,
    ids: Sequence[int],
    offsets: Sequence[tuple[int, int]],
    labels: Sequence[int],
    strategy: str,
    tokenizer: Any,
    inference: InferenceTemplate | None,
    roles: Sequence[str] | None,
) -> RowReasoning:
    from inspector.core.labels.turn_context import findings, reasoning_share, turn_reports

    scored = [-100, *labels[1:]] if labels else []
    aligned = roles if roles is not None and len(roles) == len(labels) else None
    reasoning, _trained = reasoning_share(aligned, scored)  # the trained count is the report's totals'
    out: list[Finding] = []
    if strategy != "copy" and inference is not None and aligned is not None and len(ids) == len(labels):
        try:
            turns = turn_reports(fe, ids, offsets, labels, tokenizer, inference)
        except InspectorError as exc:
            out.append((exc.kind or "bad-row", f"{exc.problem} ({exc.fix})" if exc.fix else exc.problem, strategy))
            turns = []
        for kind, detail in findings(fe, turns, aligned, labels):
            if kind != FLAGS_IGNORED:  # said once per row (flag_findings), whatever the strategy
                out.append((kind, detail, strategy))
        for t in turns:
            if t.trained and t.context_matches_inference is None:  # the inference template raised on the messages
                # Counted as --turn-policy split counts it (the same template cannot make that row), once per row.
                detail = f"turn {t.number} (message {t.message}): {t.verdict} ({CANNOT_COMPARE})"
                out.append(("bad-row", detail, None))
    return RowReasoning(out, reasoning)


def token_roles(fe: FormattedExample, offsets: Sequence[tuple[int, int]], tokenizer: Any) -> list[str] | None:
    """Each token's role for a chat row; None for the article's format."""
    from inspector.core.data.roles import token_roles as roles_of

    if fe.kind != "chat" or not fe.messages:
        return None
    return roles_of(fe, offsets, tokenizer)


def share_dict(reasoning: int, trained: int) -> dict[str, Any]:
    return {"trained_reasoning_tokens": reasoning, "trained_tokens": trained, "share": reasoning / trained if trained else 0.0}


def format_share(shares: dict[str, tuple[int, int]], rows: int) -> list[str]:
    """The text report's lines: each strategy's trained reasoning tokens of its trained tokens."""
    if not rows and not any(r for r, _ in shares.values()):
        return []
    carry = "1 row carries" if rows == 1 else f"{rows} rows carry"
    lines = [f"reasoning share of trained tokens ({carry} reasoning; think markers and empty blocks count):"]
    width = max([5, *map(len, shares)])
    for s, (r, t) in shares.items():
        lines.append(f"  {s:<{width}} {r:>10} of {t:<10} {100 * r / t if t else 0.0:6.2f}%")
    return [*lines, ""]
