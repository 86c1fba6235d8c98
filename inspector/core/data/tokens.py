"""Tokens as the views show them: which ids are special, whitespace made visible, and the label
that trains nothing.

Its own module because the label strategies, the chat-template rendering and the batch view need it.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy skips: the token is not trained on
_VISIBLE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


def visible(text: str) -> str:
    """Whitespace made visible: spaces, newlines and tabs get a glyph each."""
    return text.translate(_VISIBLE) if text else "∅"


def special_token_ids(tokenizer: Any) -> set[int]:
    """The ids of every special token: the named ones (bos, eos, pad...) and the added tokens
    marked special, which chat templates use (Gemma's `<end_of_turn>` is one and is not in
    `all_special_ids`)."""
    ids = set(tokenizer.all_special_ids)
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(int(i) for i, token in decoder.items() if getattr(token, "special", False))
    return ids
