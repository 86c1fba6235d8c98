"""Is this chat template made for this model? Its special strings against the tokenizer's vocabulary.

A chat template writes its own turn markers and end-of-turn token (`<|im_start|>`,
`<|im_end|>`, `<start_of_turn>`, `<|eot_id|>`...), and is made for the model whose vocabulary
has each of them as one token. Through another family's tokenizer the same string becomes
several ordinary pieces (Qwen's `<|im_end|>` is six pieces for Gemma: '<', '|', 'im', '_',
'end', '|>'): no token closes the turn, so no end-of-turn token can be trained, and the model
learns markers it has never seen. That is the cause to name, before any check of the
markers or of the stop token, whose advice (a `_training` variant) would not help.

The strings are found by rendering the template on a tiny conversation and taking every
literal that looks like a special token (`<|...|>`, `<｜...｜>`, `<name>`, `</name>`).
Bracketed markers such as `[INST]` are left out: in some vocabularies they are ordinary text
by design (Llama 2's), so their pieces are no sign of another family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["FIX", "KIND", "NotAToken", "describe", "not_single_tokens", "problems_of", "special_strings"]

KIND = "template-not-for-this-model"  # the problem's name, as inspect-data reports it
FIX = (
    "use this model's own chat template, or one made for it (`causallm-inspect templates` lists TRL's, by model family)"
)
_SPECIAL_LOOKING = re.compile(r"<\|[^<>|\s]{1,64}\|>|<｜[^<>\s]{1,64}?｜>|</?[A-Za-z_][\w.\-]{0,63}>")
# Plain words as contents: nothing in them looks like a special token.
_PROBES = (
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Dog?"},
        {"role": "assistant", "content": "Perro."},
    ],
    [{"role": "user", "content": "Dog?"}, {"role": "assistant", "content": "Perro."}],
)


@dataclass(frozen=True)
class NotAToken:
    """A special string of the template that the tokenizer cuts into `pieces`."""

    text: str
    pieces: tuple[str, ...]


def special_strings(tokenizer: Any, template: str) -> list[str]:
    """The special-looking strings the template writes around a short conversation, in order
    of first appearance; none when it renders neither probe (its rendering errors are
    reported where the rows are rendered)."""
    from inspector.core.data.conversations import render

    for messages in _PROBES:  # with a system message first; some templates refuse one
        try:
            text, _ = render(tokenizer, messages, template)
        except Exception:  # noqa: BLE001 -- jinja errors, the template's own raise_exception
            continue
        return list(dict.fromkeys(_SPECIAL_LOOKING.findall(text)))
    return []


def _is_one_token(tokenizer: Any, text: str) -> tuple[bool, list[int]]:
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    unk = tokenizer.unk_token_id
    if len(ids) == 1:
        return ids[0] != unk or text == tokenizer.unk_token, ids  # a word-level vocabulary's unknown: no token
    # A vocabulary entry that encoding alone splits (a SentencePiece prefix space) is still a token.
    tid = tokenizer.convert_tokens_to_ids(text)
    known = isinstance(tid, int) and tid != unk and tokenizer.convert_ids_to_tokens(tid) == text
    return known, ids


def not_single_tokens(tokenizer: Any, template: str | None) -> list[NotAToken]:
    """The template's special strings that are not one token of the tokenizer's vocabulary."""
    if not template:
        return []
    out = []
    for text in special_strings(tokenizer, template):
        one, ids = _is_one_token(tokenizer, text)
        if not one:
            out.append(NotAToken(text, tuple(tokenizer.decode([i]) for i in ids)))
    return out


def describe(found: list[NotAToken], template: str | None = None) -> str:
    """One line naming each string and its pieces: `<|im_end|> → '<', '|', 'im', '_', 'end', '|>'`."""
    from inspector.core.data.trl_templates import name_of

    name = name_of(template) if template else None
    which = f"the chat template (TRL's {name})" if name else "the chat template"
    strings = ", ".join(f.text for f in found)
    each = "; ".join(f"{f.text} → {', '.join(map(repr, f.pieces))}" for f in found)
    verb = "is not a single token" if len(found) == 1 else "are not single tokens"
    return (
        f"{which} writes {strings}, which {verb} of this tokenizer's vocabulary ({each}): "
        "it is made for another model family"
    )


def problems_of(formatted: Any, tokenizer: Any) -> list[str]:
    """For examples already formatted (`FormattedExample`s): one detail line per chat template
    they were rendered with whose special strings are not tokens here (what `labels` says)."""
    templates = dict.fromkeys(fe.chat_template for fe in formatted if fe.kind == "chat" and fe.chat_template)
    out = []
    for template in templates:
        found = not_single_tokens(tokenizer, template)
        if found:
            out.append(describe(found, template))
    return out
