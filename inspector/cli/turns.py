"""The turn options of every command that reads data: `--turn-policy` (which assistant turns
are trained: all, last, final, split) and `--inference-template` (what the model answers
with), the rows a policy gives, and the one line saying what TRL does with per-message flags.

A policy applies to the rows as formatted (`labels.turn_policy.policy_examples`): conversations,
and the article's texts with several answers (last, final and split cut their answers the
same way); a policy that changes no row is said in one line, and the rows are used as they are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspector.core.data.chat_format import FormattedExample
    from inspector.core.data.examples import Example
    from inspector.core.lab import Lab
    from inspector.core.labels.turn_policy import InferenceTemplate


def turn_options(g: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """--turn-policy and --inference-template, beside the other options of how --data is read."""
    from inspector.core.labels.turn_policy import DEFAULT_POLICY, POLICY_HELP, TURN_POLICIES

    said = "; ".join(f"{name}: {POLICY_HELP[name]}" for name in TURN_POLICIES)
    g.add_argument(
        "--turn-policy",
        choices=TURN_POLICIES,
        default=DEFAULT_POLICY,
        help=f"which assistant turns of a conversation are trained (default {DEFAULT_POLICY}). {said}",
    )
    g.add_argument(
        "--inference-template",
        metavar="FILE|NAME",
        help="the chat template the model answers with, that each trained turn's context is compared with (and "
        "split renders its rows with): a .jinja file, or the name of one TRL ships, that exact file (qwen3, not "
        "qwen3_training); default: for a _training variant TRL ships, its original; else the model's own",
    )


def check_turn_options(args: argparse.Namespace) -> None:
    """A bad --inference-template fails in one line before the model loads."""
    given = getattr(args, "inference_template", None)
    if given:
        from inspector.core.labels.turn_policy import inference_template_for

        inference_template_for(None, None, given)


def policy(args: argparse.Namespace) -> str:
    from inspector.core.labels.turn_policy import DEFAULT_POLICY

    return getattr(args, "turn_policy", None) or DEFAULT_POLICY


def inference_of(args: argparse.Namespace, formatted: Sequence[FormattedExample], tokenizer: Any) -> InferenceTemplate | None:
    """The inference template of these rows: --inference-template, or the one their training
    template comes from (`turns.inference_template_for`); None for rows without a chat template."""
    from inspector.core.labels.turn_policy import inference_template_for

    chat = next((fe for fe in formatted if fe.kind == "chat"), None)
    if chat is None:
        return None
    return inference_template_for(tokenizer, chat.chat_template, getattr(args, "inference_template", None))


def policy_rows(
    args: argparse.Namespace,
    examples: Sequence[Example],
    formatted: Sequence[FormattedExample],
    tokenizer: Any,
    *,
    flags: bool = True,
) -> tuple[list[Example], list[FormattedExample], InferenceTemplate | None]:
    """The rows to label or train under --turn-policy: each with the example it came from (split
    makes several of one), and the inference template. `flags`: a message's own "do not train"
    flag is honoured (mask and custom; TRL ignores it, `flags_note`)."""
    from inspector.core.labels.turn_policy import DEFAULT_POLICY, policy_examples

    chosen = policy(args)
    inference = inference_of(args, formatted, tokenizer)
    out_ex, out_fe = policy_examples(list(examples), list(formatted), chosen, tokenizer, inference, flags=flags)
    if chosen != DEFAULT_POLICY and not any(_turns(fe) > 1 for fe in formatted):
        print(
            f"causallm-inspect: --turn-policy {chosen} changes nothing here: no row has more than one assistant turn",
            file=sys.stderr,
        )
    return out_ex, out_fe, inference


def _turns(fe: FormattedExample) -> int:
    """The assistant turns of a row: its assistant messages, or the article's answers."""
    if fe.kind == "chat" and fe.messages:
        from inspector.core.data.conversations import ASSISTANT_ROLES

        return sum(1 for m in fe.messages if m["role"] in ASSISTANT_ROLES)
    return len(fe.answer_spans)


def use_policy_rows(lab: Lab, args: argparse.Namespace, *, flags: bool = True) -> None:
    """The rows a lab's bursts train, under --turn-policy: its training slice, made again from the
    examples it formatted (a command's Lab, after `Lab.around` or `Lab.use`). `flags` as in `policy_rows`."""
    from inspector.core.labels.turn_policy import DEFAULT_POLICY

    if policy(args) == DEFAULT_POLICY and not (flags and any(_flagged(ex) for ex in lab.train_examples)):
        return
    examples, formatted, _ = policy_rows(args, lab.train_examples, lab.formatted, lab.model.tokenizer, flags=flags)
    lab.train_examples, lab.formatted = examples, formatted


def _flagged(ex: Example) -> list[str]:
    from inspector.core.data.reasoning import flags_of

    return [f for m in ex.messages or () for f in flags_of(m)]


def flags_note(examples: Sequence[Example]) -> str | None:
    """What TRL does with per-message flags (`weight`, `train`, `loss`): nothing. One line naming
    the messages and rows that carry one, or None when none does."""
    from inspector.core.data.examples import rows_text
    from inspector.core.data.reasoning import flags_of, untrained_by_flag

    messages = rows = asks = 0
    where: list[int] = []
    for ex in examples:
        carried = [m for m in ex.messages or () if flags_of(m)]
        if carried:
            messages += len(carried)
            asks += sum(1 for m in carried if untrained_by_flag(m) is not None)
            rows += 1
            where.append(ex.row)
    if not messages:
        return None
    unit = examples[0].unit if examples else "row"
    one = messages == 1
    which = f"{unit}{'' if rows == 1 else 's'} {rows_text(sorted(set(where)))}"
    asking = (
        ("it says do not train" if asks else "it does not say do not train")
        if one
        else f"{asks} of them saying do not train"
    )
    return (
        f"TRL's SFTTrainer ignores per-message flags (weight, train, loss): {messages} message{'' if one else 's'} "
        f"in {which} carr{'ies' if one else 'y'} one ({asking}), trained as if there were none; "
        "the mask and custom strategies honour them"
    )


def say_flags_ignored(examples: Sequence[Example], strategies: Sequence[str]) -> None:
    """`flags_note` on stderr, once, when TRL's SFTTrainer is among the strategies run."""
    if "trl" in strategies:
        note = flags_note(examples)
        if note:
            print(f"causallm-inspect: note: {note}", file=sys.stderr)
