"""What `labels` adds about roles and turns: each token's role in the JSON, and with `--turns`
per assistant turn its span, what is trained (reasoning and tool calls too), the verdict, and
the training context beside the inference prompt, each token where they differ marked with a
mark and a word (`+training`, `+inference`), never by colour alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspector.core.data.chat_format import FormattedExample
    from inspector.core.labels.strategies import LabeledExample
    from inspector.core.labels.turn_context import Turn
    from inspector.core.labels.turn_policy import InferenceTemplate

SHOWN_DIFFERENCES = 40  # differing tokens listed per turn in the text; the JSON lists them all
AROUND = 2  # tokens the same shown on each side of a difference


def token_offsets(fe: FormattedExample, ids: Sequence[int], tokenizer: Any) -> list[tuple[int, int]] | None:
    """The character span of each of `ids` in the row's text: the tokenizer's offsets where it
    reads the text into these very ids (TRL tokenizes itself), else the ids decoded one by one
    where they decode to the text; None where neither holds."""
    from inspector.core.labels.strategies import encode

    own, offsets = encode(fe, tokenizer)
    if [int(i) for i in own] == [int(i) for i in ids]:
        return offsets
    out: list[tuple[int, int]] = []
    end = 0
    for n in range(len(ids)):
        upto = len(tokenizer.decode(list(ids[: n + 1])))
        out.append((end, upto))
        end = upto
    return out if tokenizer.decode(list(ids)) == fe.text else None


def article_roles(fe: FormattedExample, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """The roles of the article's `### Human:` / `### Assistant:` format: each marker opens its
    turn (`user`, `assistant`, as a chat template's header does), text before the first marker
    is `system`."""
    import re

    markers = fe.template
    starts = [(m.start(), "user" if m.group(0) == markers.human else "assistant")
              for m in re.finditer("|".join(re.escape(x) for x in (markers.human, markers.assistant)), fe.text)]
    out = []
    for a, b in offsets:
        mid = (a + b) / 2 if b > a else a
        role = "system" if not starts or mid < starts[0][0] else ""
        for at, name in starts:
            if at <= mid:
                role = name
        out.append(role)
    return out


def roles_of(fe: FormattedExample, offsets: Sequence[tuple[int, int]], tokenizer: Any) -> list[str | None]:
    """Each token's role (`data.roles.ROLES`; the article's format: user, assistant, system);
    None for each token of a conversation whose messages cannot be placed in the text."""
    from inspector.core.data.roles import token_roles

    if fe.kind == "chat":
        roles = token_roles(fe, offsets, tokenizer)
        if roles is not None:
            return list(roles)
        return [None] * len(offsets)
    return list(article_roles(fe, offsets))


def labeled_json(
    lab: LabeledExample, fe: FormattedExample, tokenizer: Any, inference: InferenceTemplate | None, turns: bool
) -> dict[str, Any]:
    """The example's `LabeledExample.to_dict()` with `role` on each token, `part`/`parts` for a
    split row, and (with `turns`) `"turns"`: `Turn.to_dict()` per assistant turn."""
    fe = lab.formatted or fe  # the trl strategy's row as TRL renders it (`turn_policy.trl_view`)
    out = lab.to_dict()
    ids = lab.input_ids
    offsets = token_offsets(fe, ids, tokenizer)
    roles = roles_of(fe, offsets, tokenizer) if offsets is not None else [None] * len(ids)
    for token, role in zip(out["tokens"], roles):
        token["role"] = role
    if fe.part is not None:
        out["part"], out["parts"] = fe.part
    if turns:
        out["turns"] = [t.to_dict() for t in turn_list(lab, fe, tokenizer, inference, offsets)]
    return out


def turn_list(
    lab: LabeledExample,
    fe: FormattedExample,
    tokenizer: Any,
    inference: InferenceTemplate | None,
    offsets: Sequence[tuple[int, int]] | None = None,
) -> list[Turn]:
    """`turns.turn_reports` of one labelled row ([] for the article's format, or rows whose tokens
    cannot be placed in the text)."""
    from inspector.core.labels.turn_context import turn_reports

    fe = lab.formatted or fe
    if inference is None or fe.kind != "chat":
        return []
    offsets = offsets if offsets is not None else token_offsets(fe, lab.input_ids, tokenizer)
    if offsets is None:
        return []
    return turn_reports(fe, lab.input_ids, offsets, lab.labels, tokenizer, inference)


# --- the text -----------------------------------------------------------------------------------


def turns_section(lab: LabeledExample, fe: FormattedExample, tokenizer: Any, inference: InferenceTemplate | None) -> str:
    """The `--turns` section under an example's labels table."""
    fe = lab.formatted or fe
    if fe.kind != "chat":
        return "turns: the article's format has no chat template to compare with inference (conversations only)"
    turns = turn_list(lab, fe, tokenizer, inference)
    if not turns:
        return "turns: this row's tokens could not be placed in its messages"
    assert inference is not None  # turn_list gives none without it
    lines = [f"turns: training beside inference ({inference.name}):"]
    for t in turns:
        lines += turn_lines(t, lab, tokenizer)
    return "\n".join(lines)


def turn_lines(t: Turn, lab: LabeledExample, tokenizer: Any) -> list[str]:
    """One turn: its span and what is trained, the verdict, and where the contexts differ."""
    parts = [f"tokens {t.start}-{t.end - 1}" if t.end > t.start else "no tokens", f"{t.trained} trained"]
    if t.reasoning_present and not t.reasoning_rendered:
        parts.append("its reasoning is not in this render (the template drops it)")
    elif t.empty_reasoning_trained:
        parts.append(f"an empty think block ({t.reasoning_tokens} tokens) trained as part of the answer")
    elif t.reasoning_tokens or t.reasoning_present:
        parts.append(f"reasoning {t.reasoning_trained} of {t.reasoning_tokens} trained")
    if t.tool_call_tokens:
        parts.append(f"tool call {t.tool_call_trained} of {t.tool_call_tokens} trained")
    if t.flag:
        parts.append(f"its flag {t.flag}")
    lines = [f"  turn {t.number} (message {t.message}): {', '.join(parts)}"]
    mark = {True: "✓ same:", False: "✗ differs:", None: "·"}[t.context_matches_inference]
    lines.append(f"    {mark} {t.verdict}")
    if t.context_matches_inference is False and t.first_trained is not None:
        lines += _beside(t, lab, tokenizer)
    return lines


def _texts(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    from inspector.core.labels.strategies import make_rows

    return [r.text for r in make_rows(tokenizer, ids, ids)]


def _beside(t: Turn, lab: LabeledExample, tokenizer: Any) -> list[str]:
    """The training context (the tokens before the turn's first trained one) beside the inference
    prompt: equal runs folded, each differing token on its own line with `+training` / `+inference`."""
    assert t.first_trained is not None
    train = [r.text for r in lab.rows[: t.first_trained]]
    infer = _texts(tokenizer, t.inference_ids)
    pairs = align(len(train), len(infer), set(t.training_only), set(t.inference_only))
    width = 34
    lines = [
        f"    {'training context (' + str(len(train)) + ' tokens)':<{width}} │ inference prompt ({len(infer)} tokens)"
    ]
    shown = 0
    differing = len(t.training_only) + len(t.inference_only)
    for kind, items in _folded(pairs):
        if kind == "same":
            (i0, j0), (i1, j1) = items[0], items[-1]
            lines.append(f"    {f'  … {len(items)} the same ({i0}-{i1})':<{width}} │   … ({j0}-{j1})")
            continue
        for i, j in items:
            if i is not None and j is not None:
                left, right = f"  {i:>4} {_clip(train[i])}", f"  {j:>4} {_clip(infer[j])}"
            elif i is not None:
                if shown >= SHOWN_DIFFERENCES:
                    continue
                shown += 1
                left, right = f"▶ {i:>4} {_clip(train[i])} +training", ""
            else:
                assert j is not None
                if shown >= SHOWN_DIFFERENCES:
                    continue
                shown += 1
                left, right = "", f"◀ {j:>4} {_clip(infer[j])} +inference"
            lines.append(f"    {left:<{width}} │ {right}")
    if differing > shown:
        lines.append(f"    … and {differing - shown} more differing tokens (labels --turns --json lists them all)")
    return lines


def _clip(text: str, width: int = 16) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def align(n_train: int, n_infer: int, train_only: set[int], infer_only: set[int]) -> list[tuple[int | None, int | None]]:
    """The two token sequences side by side: (training position, inference position) for tokens
    both have, (i, None) or (None, j) for a token only one has. The positions found only in one
    are the core's (`Turn.training_only`, `Turn.inference_only`); the rest pair up in order."""
    out: list[tuple[int | None, int | None]] = []
    i = j = 0
    while i < n_train or j < n_infer:
        if i < n_train and (i in train_only or j >= n_infer):
            out.append((i, None))
            i += 1
        elif j < n_infer and (j in infer_only or i >= n_train):
            out.append((None, j))
            j += 1
        else:
            out.append((i, j))
            i += 1
            j += 1
    return out


def _folded(pairs: list[tuple[int | None, int | None]]) -> list[tuple[str, list[tuple[int | None, int | None]]]]:
    """The pairs in runs: a long run of tokens both have folds to one `same` entry, keeping
    `AROUND` tokens on each side of a difference; the rest are `shown` one per line."""
    runs: list[tuple[bool, list[tuple[int | None, int | None]]]] = []
    for p in pairs:
        both = p[0] is not None and p[1] is not None
        if runs and runs[-1][0] == both:
            runs[-1][1].append(p)
        else:
            runs.append((both, [p]))
    out: list[tuple[str, list[tuple[int | None, int | None]]]] = []
    for n, (both, items) in enumerate(runs):
        if not both:
            out.append(("shown", items))
            continue
        head = AROUND if n > 0 else 0
        tail = AROUND if n < len(runs) - 1 else 0
        if len(items) <= head + tail + 1:
            out.append(("shown", items))
            continue
        if head:
            out.append(("shown", items[:head]))
        out.append(("same", items[head : len(items) - tail]))
        if tail:
            out.append(("shown", items[len(items) - tail :]))
    return out
