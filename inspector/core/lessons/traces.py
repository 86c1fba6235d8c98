"""Lesson 14's demo: one conversation with reasoning through TRL's shipped reasoning templates,
turn by turn, the context training gives each turn beside the prompt inference gives it, and
what splitting the conversation by turn changes.

The templates are read from TRL's package (`data.trl_templates`); each assistant turn is
labelled with the template's assistant mask (`{% generation %}` markers: what TRL's
`assistant_only_loss` trains) and reported by `labels.turn_context.turn_reports`. Everything
is computed with the tokenizer in use: on the embedded Gemma the think markers are plain text,
several tokens each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.data.tokens import visible
from inspector.core.labels.turn_context import Turn

# The article's two exchanges, each answer with its reasoning (a `reasoning_content` field, as
# Qwen's and DeepSeek's servers write it).
REASONED: tuple[dict[str, str], ...] = (
    {"role": "user", "content": 'How do you say "dog" in Spanish?'},
    {"role": "assistant", "reasoning_content": "Dog in Spanish is perro.", "content": "perro"},
    {"role": "user", "content": 'And "water"?'},
    {"role": "assistant", "reasoning_content": "Water in Spanish is agua.", "content": "agua"},
)
# (the template trained with, the one the model answers with, reasoning inline in the content):
# DeepSeek-R1-Distill's templates read no reasoning field, only a <think> block in the content.
TEMPLATES = (
    ("qwen3", "qwen3", False),
    ("qwen3_training", "qwen3", False),
    ("deepseek_r1_distill_training", "deepseek_r1_distill", True),
)
MARKERS = ("<think>", "</think>")


def inline(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reasoning written inline, `<think>\\n…\\n</think>\\n\\n` before the answer."""
    out = []
    for m in messages:
        m = dict(m)
        if "reasoning_content" in m:
            m["content"] = f"<think>\n{m.pop('reasoning_content')}\n</think>\n\n{m['content']}"
        out.append(m)
    return out


def template_text(name: str) -> str:
    from inspector.core.data.trl_templates import shipped
    from inspector.core.errors import InspectorError

    files = shipped()
    if name not in files:
        raise InspectorError(f"TRL's chat template {name} was not found", "install trl 1.16 or later")
    return files[name].read_text(encoding="utf-8")


@dataclass(frozen=True)
class Labelled:
    """One chat row, labelled, and its turns."""

    ids: tuple[int, ...]
    labels: tuple[int, ...]
    roles: tuple[str, ...]
    turns: tuple[Turn, ...]
    edges: tuple[int, ...] = ()  # trained tokens that cross a generation block's edge (merged across it)

    @property
    def trained(self) -> int:
        return sum(1 for x in self.labels if x != -100)

    @property
    def reasoning_trained(self) -> int:
        return sum(1 for x, r in zip(self.labels, self.roles) if x != -100 and r == "reasoning")


def assistant_mask(fe: Any, tokenizer: Any, ids: Sequence[int]) -> list[int]:
    """transformers' `assistant_masks` of the row (`apply_chat_template(..., return_assistant_tokens_mask=True)`):
    what TRL's `assistant_only_loss` trains. A token that crosses a `{% generation %}` block's edge is in it."""
    out = tokenizer.apply_chat_template(
        [dict(m) for m in fe.messages], chat_template=fe.chat_template, tools=list(fe.tools) if fe.tools else None,
        tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
    )
    if list(out["input_ids"]) != list(ids):
        raise ValueError("apply_chat_template tokenized the rendering differently")
    return [int(m) for m in out["assistant_masks"]]


def labelled(fe: Any, tokenizer: Any, inference: Any, *, marked: bool = False) -> Labelled:
    """`fe`'s tokens, its labels and its turn reports. With `marked` (a template with generation
    markers) the labels are the assistant mask, as TRL trains them; otherwise the answer spans."""
    from inspector.core.data.roles import token_roles
    from inspector.core.labels.strategies import encode, mask_labels
    from inspector.core.labels.turn_context import turn_reports

    ids, offsets = encode(fe, tokenizer)
    labels = mask_labels(ids, offsets, fe)
    edges: tuple[int, ...] = ()
    if marked:
        mask = assistant_mask(fe, tokenizer, ids)
        inside = [any(a <= s and e <= b for a, b in fe.answer_spans) for s, e in offsets]
        edges = tuple(p for p, (m, whole) in enumerate(zip(mask, inside)) if m and not whole)  # merged across an edge
        labels = [t if m else -100 for t, m in zip(ids, mask)]
    roles = token_roles(fe, offsets, tokenizer) or [""] * len(ids)
    turns = turn_reports(fe, ids, offsets, labels, tokenizer, inference)
    return Labelled(tuple(ids), tuple(labels), tuple(roles), tuple(turns), edges)


@dataclass(frozen=True)
class TemplateTurns:
    template: str  # TRL's name
    inference: str  # the inference template, as `InferenceTemplate.name` says it
    inline: bool  # the reasoning was written inline in the content
    marked: bool  # the template has generation markers
    row: Labelled
    differing: tuple[str, ...]  # per turn: the training context's own tokens, as text ("" where none)
    edge_texts: tuple[str, ...] = ()  # the tokens of `row.edges`, visible


@dataclass(frozen=True)
class PolicyCount:
    template: str
    policy: str  # all or split
    rows: int
    tokens: int  # tokens the model reads, every row's
    trained: int
    reasoning_trained: int
    matching: int  # trained turns whose context is the inference prompt
    turns: int  # trained turns


@dataclass(frozen=True)
class ReasoningView:
    markers: tuple[tuple[str, tuple[str, ...]], ...]  # each think marker and its tokens
    swaps: tuple[tuple[str, str, bool], ...]  # (original, training variant, TRL's get_training_chat_template gives it)
    templates: tuple[TemplateTurns, ...]
    empty_block: tuple[str, ...]  # the tokens of an empty think block (a turn without reasoning)
    empty_trained: int  # of them, trained
    counts: tuple[PolicyCount, ...]


def marker_tokens(tokenizer: Any, text: str) -> tuple[str, ...]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tuple(visible(tokenizer.decode([i])) for i in ids)


def trl_swaps(tokenizer: Any) -> tuple[tuple[str, str, bool], ...]:
    """What TRL's SFTTrainer trains with under `assistant_only_loss` when the tokenizer's template is an
    original: `get_training_chat_template` (TRL 1.16 calls it when the template has no markers)."""
    import copy

    from trl.chat_template_utils import get_training_chat_template

    out = []
    for original in ("qwen3", "deepseek_r1_distill"):
        tok = copy.deepcopy(tokenizer)
        tok.chat_template = template_text(original)
        out.append((original, original + "_training", get_training_chat_template(tok) == template_text(original + "_training")))
    return tuple(out)


def _counts(fe: Any, whole: Labelled, name: str, tokenizer: Any, inference: Any) -> list[PolicyCount]:
    from inspector.core.labels.turn_policy import apply_policy

    trained_turns = [t for t in whole.turns if t.trained]
    out = [
        PolicyCount(
            name, "all", 1, len(whole.ids), whole.trained, whole.reasoning_trained,
            sum(1 for t in trained_turns if t.context_matches_inference), len(trained_turns),
        )
    ]
    rows = [labelled(r.fe, tokenizer, inference) for r in apply_policy(fe, "split", tokenizer, inference)]
    last = [next(t for t in reversed(r.turns) if t.trained) for r in rows]  # each row trains its last turn
    out.append(
        PolicyCount(
            name, "split", len(rows), sum(len(r.ids) for r in rows), sum(r.trained for r in rows),
            sum(r.reasoning_trained for r in rows), sum(1 for t in last if t.context_matches_inference), len(last),
        )
    )
    return out


def reasoning_view(tokenizer: Any) -> ReasoningView:
    from inspector.core.data.conversations import has_generation_markers, render_chat
    from inspector.core.labels.turn_policy import InferenceTemplate

    templates, counts = [], []
    for name, answer_with, is_inline in TEMPLATES:
        text = template_text(name)
        inference = InferenceTemplate(template_text(answer_with), f"{answer_with} (TRL's)")
        fe = render_chat(inline(REASONED) if is_inline else list(REASONED), tokenizer, text, where=name)
        row = labelled(fe, tokenizer, inference, marked=has_generation_markers(text))
        differing = tuple(tokenizer.decode([row.ids[p] for p in t.training_only]) for t in row.turns)
        edge_texts = tuple(visible(tokenizer.decode([row.ids[p]])) for p in row.edges)
        templates.append(
            TemplateTurns(name, inference.name, is_inline, has_generation_markers(text), row, differing, edge_texts)
        )
        if has_generation_markers(text):
            counts += _counts(fe, row, name, tokenizer, inference)
    # A turn without reasoning, through the training variant: its think block is rendered empty.
    bare = [dict(m) for m in REASONED]
    bare[1].pop("reasoning_content")
    fe = render_chat(bare, tokenizer, template_text("qwen3_training"), where="qwen3_training")
    row = labelled(fe, tokenizer, InferenceTemplate(template_text("qwen3"), "qwen3"), marked=True)
    first = row.turns[0]
    block = [p for p in range(first.start, first.end) if row.roles[p] == "reasoning"]
    return ReasoningView(
        markers=tuple((m, marker_tokens(tokenizer, m)) for m in MARKERS),
        swaps=trl_swaps(tokenizer),
        templates=tuple(templates),
        empty_block=tuple(visible(tokenizer.decode([row.ids[p]])) for p in block),
        empty_trained=sum(1 for p in block if row.labels[p] != -100),
        counts=tuple(counts),
    )


# --- the panel's text ---------------------------------------------------------------------------


def _short(text: str, n: int = 44) -> str:
    text = visible(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _turn_line(t: Turn, tt: TemplateTurns, differing: str) -> str:
    head = f"  turn {t.number} (message {t.message}): "
    if not tt.marked:
        said = (
            f"its reasoning in the text, {t.reasoning_tokens} tokens"
            if t.reasoning_rendered
            else "its reasoning DROPPED by the template: nothing to train"
        )
    else:
        said = f"{t.trained} trained, {t.reasoning_trained} of them reasoning"
    if t.context_matches_inference:
        context = "✓ same context as at inference"
    elif t.context_matches_inference is None:
        context = f"? {t.verdict}"
    else:
        counts = f"{len(t.training_only)} tokens only in training, {len(t.inference_only)} only at inference"
        shown = f" ({_short(differing)!r})" if differing.strip() else ""
        context = f"≠ context differs: {counts}{shown}: {t.verdict}"
    return f"{head}{said} · {context}"


def reasoning_text(v: ReasoningView) -> str:
    (opener, o_tokens), (closer, c_tokens) = v.markers
    lines = [
        f"think markers on the model in use: {opener!r} is {len(o_tokens)} token{'s' if len(o_tokens) != 1 else ''} "
        f"({' · '.join(o_tokens)}), {closer!r} is {len(c_tokens)}; a reasoning model's tokenizer "
        "(Qwen 3, DeepSeek-R1) has each as one token of its own",
        "the conversation: 2 exchanges (dog → perro, water → agua), each answer with its reasoning",
    ]
    for original, variant, same in v.swaps:
        lines.append(
            f"TRL's assistant_only_loss on {original}: get_training_chat_template gives {variant}: "
            + ("✓ it trains with that file" if same else "✗ another template")
        )
    for tt in v.templates:
        how = "reasoning inline in the content" if tt.inline else "reasoning_content"
        marks = "generation markers" if tt.marked else "no generation markers"
        lines.append("")
        lines.append(f"{tt.template} ({marks}, {how}); inference: {tt.inference}")
        lines += [_turn_line(t, tt, d) for t, d in zip(tt.row.turns, tt.differing)]
        if tt.row.edges:
            shown = ", ".join(repr(tt.edge_texts[i]) for i in range(len(tt.row.edges)))
            lines.append(
                f"  {len(tt.row.edges)} trained token{'s' if len(tt.row.edges) != 1 else ''} cross a generation "
                f"block's edge ({shown}): merged with the text beside it, in the assistant mask, so TRL trains them"
            )
    lines.append("")
    n = len(v.empty_block)
    lines.append(
        f"a turn with no reasoning, through qwen3_training: an empty think block ({' · '.join(v.empty_block)}), "
        f"{n} tokens, {v.empty_trained} of them trained as the start of its answer"
    )
    lines.append("")
    lines.append("all turns in one row, or split: one row per turn, as inference renders it, its last turn trained")
    for c in v.counts:
        lines.append(
            f"  {c.template}, {c.policy + ':':<6} {c.rows} row{'s' if c.rows != 1 else ' '}, {c.tokens} tokens read, "
            f"{c.trained} trained ({c.reasoning_trained} reasoning), "
            f"{c.matching} of {c.turns} trained turns in inference's context"
        )
    return "\n".join(lines)
