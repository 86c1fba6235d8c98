"""Plain text of the lessons' computed demos, for `lesson N --plain` and the app's demo panel.

Every sentence that states a result is chosen by the numbers it sits next to, so the text
never claims what the model in use did not do.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from itertools import groupby

from inspector.core.lessons.anatomy import LossWeights, PaddingView, ShiftView, TokenizeView
from inspector.core.lessons.chat_templates import ChatTemplateView, TrlAssistantOnly
from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.labels.strategies import LabeledExample, TokenRow
from inspector.core.data.tokens import visible
from inspector.core.lessons.demo_runs import EosRun, StepTiming
from inspector.core.lessons.pitfalls import (
    CollatorLabels,
    OldCollatorView,
    ResizeCheck,
    SpecialTokensView,
    TemplatePitfall,
)


def compact_labels(labels: Sequence[int]) -> str:
    """`[-100 ×20, 83588, 1]`: runs of -100 counted, other labels as they are."""
    parts = []
    for value, run in groupby(labels):
        n = len(list(run))
        if value == IGNORE_INDEX and n > 1:
            parts.append(f"-100 ×{n}")
        else:
            parts.extend([str(value)] * n)
    return "[" + ", ".join(parts) + "]"


def token_list(rows: Sequence[TokenRow], with_ids: bool = True) -> str:
    """`↵↵(108) ###(10354) ␣Assistant(22083)`: each token's visible text and id."""
    return " ".join(f"{r.text}({r.id})" if with_ids else r.text for r in rows)


def wrapped(items: Sequence[str], width: int = 96, indent: str = "  ") -> list[str]:
    """Items joined by spaces, in lines of at most `width` characters."""
    lines: list[str] = []
    line = ""
    for item in items:
        if line and len(indent) + len(line) + 1 + len(item) > width:
            lines.append(indent + line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    if line:
        lines.append(indent + line)
    return lines


def hanging_wrap(line: str, width: int, hang: int = 4) -> list[str]:
    """One line of a demo's text in lines of at most `width` characters, for a narrow panel.

    Continuation lines are indented `hang` more than the line itself, so a wrapped line
    reads as one; runs of spaces (the columns of a table) are kept where nothing wraps.
    """
    if len(line) <= width or width < 8:
        return [line]
    indent = " " * (len(line) - len(line.lstrip(" ")))
    follow = indent + " " * hang
    if len(follow) > width // 2:
        follow = " " * hang
    return textwrap.wrap(
        line,
        width,
        subsequent_indent=follow,
        break_long_words=True,
        break_on_hyphens=False,
        replace_whitespace=False,
    ) or [line]


def trained_texts(lab: LabeledExample) -> str:
    return " ".join(r.text for r in lab.rows[1:] if not r.masked) or "nothing"


def shift_text(v: ShiftView, strategy: str) -> str:
    same = abs(v.model_loss - v.shifted_loss) < 1e-4 * max(1.0, abs(v.model_loss))
    lines = [
        f"{'model(input_ids, labels=labels).loss':<46}{v.model_loss:.4f}",
        f"{'logits[:-1] vs labels[1:], computed by hand':<46}{v.shifted_loss:.4f}"
        + ("  (the same: the model shifts inside)" if same else "  (different!)"),
        f"{'labels shifted by hand too (i scored on i+2)':<46}{v.twice_loss:.4f}"
        + ("  (another number: never shift the labels yourself)" if abs(v.twice_loss - v.model_loss) > 1e-4 else ""),
        f"{v.scored} positions scored; the label at position 0 is never a target.",
        "",
        f"The {strategy} labels: position i reads its token and is scored on the next one.",
        f"{'pos':>4}  {'reads':<16} {'scored on':<16} {'label':>8}",
    ]
    for p in v.pairs:
        label = "-100 (masked)" if p.label == IGNORE_INDEX else str(p.label)
        lines.append(f"{p.position:>4}  {p.reads[:16]:<16} {p.scored_on[:16]:<16} {label:>8}")
    lines.append(f"{len(v.pairs):>4}  (the last position has no next token: nothing to score)")
    return "\n".join(lines)


def loss_weights_text(v: LossWeights, names: Sequence[str] = ("copy", "mask")) -> str:
    """Lesson 4's quick part: the loss is a mean over the scored labels, so fewer of them weigh more."""
    lines = ["The loss is the mean over the labels scored (positions 1.. whose label is not -100), example 1:"]
    for name in names:
        n = v.scored[name]
        weight = f", each weighs 1/{n} = {v.weight(name):.4f} of the loss" if n else ": nothing to weigh"
        lines.append(f"  under {name}: {n:>2} of {v.tokens} tokens scored{weight}")
    first, last = names[0], names[-1]
    if v.scored[first] and v.scored[last]:
        ratio = v.scored[first] / v.scored[last]
        lines.append(
            f"  an answer token weighs {ratio:.1f}× more under {last} than under {first}: at the same learning rate"
            f" its gradient is {ratio:.1f}× larger"
        )
    if v.answer_grad.get(first):
        measured = v.answer_grad[last] / v.answer_grad[first]
        lines.append(
            f"  measured on the model in use, the gradient of the loss at the logits that predict the answer"
            f" (norm): {first} {v.answer_grad[first]:.4g}, {last} {v.answer_grad[last]:.4g} ({measured:.1f}×)"
        )
    return "\n".join(lines)


def tokenize_text(v: TokenizeView, pad: PaddingView | None) -> str:
    specials = " · ".join(f"{s.role} {s.text} = {s.id}" for s in v.specials)
    lines = [
        f"special tokens: {specials} · padding side: {v.padding_side}"
        + (" · pad == eos" if v.pad_is_eos else " · pad ≠ eos"),
        "the tokenizer puts its own bos in front of every text (position 0)"
        if v.prepends_bos
        else "the tokenizer adds nothing in front; the only bos is the one after the assistant marker",
        f"as written:  {v.source}",
        f"formatted:   {v.formatted}",
        f"{len(v.rows)} tokens (position:token(id)):",
        *wrapped([f"{r.position}:{r.text}({r.id})" for r in v.rows]),
    ]
    if pad is not None:
        lines += ["", *padding_lines(pad)]
    return "\n".join(lines)


def padding_lines(p: PaddingView) -> list[str]:
    n = len(p.right[0].ids) - p.pads

    def row(r: tuple[int, ...]) -> str:
        return " ".join("-100" if x == IGNORE_INDEX else str(x) for x in r)

    lines = [
        f"Padding: the example ({n} tokens) batched with a two-turn one gets {p.pads} pad tokens.",
        f"  its loss: alone {p.loss_alone:.4f} · right-padded {p.loss_right:.4f} · left-padded {p.loss_left:.4f}",
        f"  positions scored: alone {p.scored_alone} · right {p.scored_right} · left {p.scored_left}",
        f"  largest change of its logits vs alone: right {p.max_diff_right:.1e} · left {p.max_diff_left:.1e}",
    ]
    if p.scored_left > p.scored_alone:
        lines.append("  with left padding the last pad is scored on the first real token, a guess from nothing")
    if p.max_diff_left > 1e-3:
        lines.append("  left padding moves the real tokens to other positions, and their logits change")
    else:
        lines.append("  its logits barely move when its tokens shift right: this model's position encoding is relative")
    lines += [
        f"  right  ids    {row(p.right[0].ids)}",
        f"         mask   {row(p.right[0].attention)}",
        f"         labels {row(p.right[0].labels)}",
        f"  left   ids    {row(p.left[0].ids)}",
        f"         mask   {row(p.left[0].attention)}",
        f"         labels {row(p.left[0].labels)}",
    ]
    return lines


def old_collator_text(v: OldCollatorView) -> str:
    eos_pos = len(v.mask.rows) - 1
    last_mask, last_old = v.mask.rows[-1], v.old.rows[-1]
    lines = [
        "TRL 0.7's DataCollatorForCompletionOnlyLM(instruction_template=eos, response_template=bos),",
        "removed in TRL 0.20; its algorithm rerun here on this tokenizer's ids.",
        f"  response template (bos) at positions {', '.join(map(str, v.bos_positions)) or 'none'}",
        f"  create_special_mask  trains {v.mask.trained_tokens:>3}: {trained_texts(v.mask)}",
        f"  old collator         trains {v.old.trained_tokens:>3}: {trained_texts(v.old)}",
        f"  create_special_mask  {compact_labels(v.mask.labels)}",
        f"  old collator         {compact_labels(v.old.labels)}",
    ]
    if last_mask.text == last_old.text and not last_mask.masked and last_old.masked:
        lines.append(
            f"  the final {last_old.text} (position {eos_pos}) is MASKED by the old collator: the model is never scored on stopping"
        )
    elif not last_old.masked:
        lines.append(f"  the final {last_old.text} is trained by both here")
    if 0 in v.bos_positions:
        lines.append(
            "  this tokenizer's own bos at position 0 is also a response template: the old collator pairs the"
            " templates wrongly and trains the prompt"
        )
    lines += [f"  warning: {w}" for w in v.warnings]
    return "\n".join(lines)


def pitfall_text(v: TemplatePitfall) -> str:
    lines = ["Response templates, each in the text as characters; are their tokens among the text's tokens?"]
    for c in v.checks:
        alone = " ".join(str(r.id) for r in c.alone)
        where = f"✓ found at position {c.found_at}" if c.found else "✗ not found"
        lines.append(f"  {c.template!r:<22} alone [{alone}]  {where}  ({c.found_in} of {c.examples} examples)")
    bad = v.failing
    if bad is None:
        lines.append("Every way of writing it is found on this tokenizer: this pitfall does not bite here.")
        return "\n".join(lines)
    around = range(max(0, bad.span[0] - 2), min(len(bad.context), bad.span[-1] + 3)) if bad.span else range(0)
    lines += [
        "",
        f"The first that fails: {bad.template!r}",
        f"  alone:      {token_list(bad.alone)}",
        f"  in context: … {token_list([bad.context[i] for i in around])} …",
        f'  the old collator finds no response key ("Could not find response key"): all labels -100,'
        f" {bad.old_trained} trained in this example",
        f"  fix: take the ids from the context, [{' '.join(map(str, bad.fixed_ids))}]: found in"
        f" {bad.fixed_found_in} of {bad.examples} examples, {bad.old_trained_fixed} labels trained",
    ]
    return "\n".join(lines)


def special_tokens_text(v: SpecialTokensView) -> str:
    added = ", ".join(f"{t!r} → {i}" for t, i in v.added)
    lines = [
        "tokenizer.add_special_tokens({'additional_special_tokens': [human marker, assistant marker]})",
        f"  new ids: {added}; vocabulary {v.vocab_before} → {v.vocab_after}",
        *(resize_lines(v.resize, v.vocab_after) if v.resize is not None else [
            f"  model.resize_token_embeddings({v.vocab_after}) adds {v.vocab_after - v.vocab_before} embedding rows"
            " that no training has touched"]),
        f"  before: {len(v.before.rows)} tokens, mask labels {compact_labels(v.before.labels)}",
        f"  after:  {len(v.after.rows)} tokens, mask labels {compact_labels(v.after.labels)}",
        "  tokens after:",
        *wrapped([r.text for r in v.after.rows], indent="    "),
    ]
    return "\n".join(lines)


def resize_lines(r: ResizeCheck, size: int) -> list[str]:
    """What resize_token_embeddings did to a copy of the model, measured: where its new rows start."""
    head = "; the LM head is tied to it: the same rows" if r.tied else ""
    if r.added == 0:
        return [f"  model.resize_token_embeddings({size}): the embedding already has {r.rows_before} rows: it adds none{head}"]
    if r.added < 0:
        return [
            f"  model.resize_token_embeddings({size}): the embedding had {r.rows_before} rows, more than the tokenizer's"
            f" vocabulary: it REMOVES {-r.added} of them{head}"
        ]
    lines = [
        f"  model.resize_token_embeddings({size}): embedding rows {r.rows_before} → {r.rows_after}{head}",
        f"  its {r.added} new rows vs the mean of the {r.rows_before} old rows: at most {r.mean_distance:.1e} apart,"
        f" cosine {r.mean_cosine:.6f} (an old row lies {r.spread:.3g} from that mean on average)",
    ]
    lines.append(
        "  the new rows start at the average token (mean_resizing=True, the default): untrained, not random"
        if r.at_mean else "  the new rows do NOT start at the mean of the old rows here"
    )
    lines.append(
        f"  with mean_resizing=False they would start at random: {r.random_distance:.3g} from the mean,"
        f" cosine {r.random_cosine:.2f} with it"
    )
    return lines


def chat_template_text(v: ChatTemplateView, marked: TrlAssistantOnly | None, bare: TrlAssistantOnly | None) -> str:
    lines = [
        "the model's tokenizer has a chat template of its own; shown here with the shipped one instead"
        if v.model_template
        else "the model's tokenizer has no chat template (tokenizer.chat_template is None): using the shipped"
        " inspector/templates/gemma-generation.jinja",
        f"with {{% generation %}} markers: {v.trained} of {len(v.rows)} tokens in the assistant mask",
        f"without the markers: {v.unmarked_trained} of {v.unmarked_tokens}"
        + (" (transformers warns and returns an all-zero mask)" if v.unmarked_trained == 0 else ""),
    ]
    if marked is not None:
        if marked.labels is not None:
            trained = [x for x in marked.labels if x != IGNORE_INDEX]
            mask_ids = [r.id for r in v.rows if not r.masked]
            same = "the same tokens as the mask" if trained == mask_ids else "not the same tokens as the mask"
            lines.append(
                f"TRL SFTConfig(assistant_only_loss=True), with markers: {len(trained)} labels trained, {same}"
            )
        else:
            lines.append(f"TRL SFTConfig(assistant_only_loss=True), with markers: refused: {marked.error}")
        lines += [f"  TRL warned: {w}" for w in marked.warnings]
    if bare is not None:
        if bare.error:
            lines.append(f"TRL, without markers: raises ValueError: {bare.error}")
        else:
            n = sum(1 for x in bare.labels or () if x != IGNORE_INDEX)
            lines.append(f"TRL, without markers: accepted the template (it may patch known ones), {n} labels trained")
    lines += [
        "tokens, ✓ where assistant_masks is 1:",
        *wrapped([r.text + ("✓" if not r.masked else "") for r in v.rows]),
        f"rendered: {visible(v.rendered)}",
    ]
    return "\n".join(lines)


def timing_text(rows: Sequence[StepTiming], device: str, threads: int, again: str = "run it again") -> str:
    """The measured seconds per step, and what their medians say against copy's.

    `again` says how to measure again (the app: press g; the command line: run the command).
    """
    from inspector.core.training.step_times import busy_advice, compare, seconds

    if not rows:
        return "no steps were timed"
    lines = [
        f"seconds per training step on {device} ({threads} torch threads), each variant on a fresh copy of the model:",
        "the median of its steps after a warm-up step, and (in brackets) its fastest and slowest step",
    ]
    for r in rows:
        lines.append(
            f"  {r.name:<42} {seconds(r.median_s):>7} s  ({seconds(r.min_s)}–{seconds(r.max_s)}, {r.steps} steps)"
            f"  {r.tokens_per_step:.0f} tokens, {r.trained_per_step:.0f} trained"
        )
    base = next((r for r in rows if r.name == "copy"), None)
    if base is None:
        return "\n".join(lines)
    verdicts = [
        compare(r.name, r.times or (r.median_s,), base.name, base.times or (base.median_s,))
        for r in rows
        if r is not base
    ]
    lines += [f"  {v.text}" for v in verdicts]
    if any(v.kind == "busy" for v in verdicts):
        lines.append(f"  {busy_advice(again)}")
    return "\n".join(lines)


def eos_text(run: EosRun, collators: Sequence[CollatorLabels], pad_differs: bool) -> str:
    first = collators[0]
    lines = [
        ("this tokenizer's pad differs from its eos; " if pad_differs else "this tokenizer's pad IS its eos; ")
        + f"with tokenizer.pad_token = tokenizer.eos_token and the example padded beside a longer one ({first.pads} pads), "
        "its labels from the last answer token on:"
    ]
    for c in collators:
        verdict = "eos trained ✓" if c.eos_trained else "eos masked ✗"
        lines.append(f"  {c.name}: {compact_labels(c.labels[c.eos_at - 1:])} → {verdict}")
    for variant, labels in run.trained_labels.items():
        lines.append(f"  {variant:<18} trains {compact_labels(labels)}")
    lines.append(f"held-out prompt {visible(run.prompt)!r}, greedy:")
    lines.append(
        f"  {'untrained':<18}          {run.untrained!r}  " + ("stops" if run.stops(run.untrained) else "runs on")
    )
    for variant, logs in run.answers.items():
        for log in logs:
            state = "stops ✓" if run.stops(log.holdout) else "runs on ✗"
            lines.append(f"  {variant:<18} epoch {log.epoch:>2}  {log.holdout!r}  {state}")
    return "\n".join(lines)
