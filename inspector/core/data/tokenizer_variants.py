"""Tokenizers made from another one by a known recipe: one that puts its own bos in front, one
that pads with eos.

The exercises check a user's function with them (hidden cases), and the label process makes
its own copy from the tokenizer it already holds instead of receiving a pickle of the copy
(seconds for a big vocabulary): `TokenizerVariant` is the recipe both sides name, and
`derivation(tokenizer)` says which recipe of which base made a tokenizer, if one did.
Below both (data), so that neither imports the other.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable
from enum import Enum
from typing import Any


def tokenizer_adding_bos(tokenizer: Any) -> Any:
    """A copy of the tokenizer that puts its own bos in front (as Gemma's and Llama's do);
    the tokenizer itself where it already does."""
    probe = tokenizer("a")["input_ids"]
    if probe and probe[0] == tokenizer.bos_token_id:
        return tokenizer
    from tokenizers import processors

    tok = copy.deepcopy(tokenizer)
    bos = tok.bos_token
    backend = tok.backend_tokenizer
    prepend = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.bos_token_id)])
    backend.post_processor = (
        processors.Sequence([backend.post_processor, prepend]) if backend.post_processor else prepend
    )
    return tok


def tokenizer_padding_with_eos(tokenizer: Any) -> Any:
    """The tokenizer with pad == eos (`tokenizer.pad_token = tokenizer.eos_token`), a copy where it differs."""
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        return tokenizer
    tok = copy.deepcopy(tokenizer)
    tok.pad_token = tok.eos_token
    return tok


class TokenizerVariant(Enum):
    """A recipe that makes a tokenizer from another: its value is what the label process is told."""

    ADDS_BOS = "adds-bos"
    PADS_WITH_EOS = "pads-with-eos"

    def make(self, tokenizer: Any) -> Any:
        """The variant of `tokenizer`, made afresh (the tokenizer itself where it is one already)."""
        return _RECIPES[self](tokenizer)


_RECIPES: dict[TokenizerVariant, Callable[[Any], Any]] = {
    TokenizerVariant.ADDS_BOS: tokenizer_adding_bos,
    TokenizerVariant.PADS_WITH_EOS: tokenizer_padding_with_eos,
}

# Owned by the tokenizers they are about: an entry goes when its tokenizer does.
_made: weakref.WeakKeyDictionary[Any, dict[TokenizerVariant, Any]] = weakref.WeakKeyDictionary()  # base -> variants
_made_from: weakref.WeakKeyDictionary[Any, tuple[weakref.ref[Any], TokenizerVariant]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_ITSELF = object()  # the variant is the tokenizer itself (it adds its bos, or pads with eos, already)


def variant_of(tokenizer: Any, variant: TokenizerVariant) -> Any:
    """`variant.make(tokenizer)`, made once per tokenizer (a deep copy of a big vocabulary takes a
    while), and remembered so that `derivation` finds its recipe."""
    with _lock:
        try:
            found = _made.get(tokenizer, {}).get(variant)
        except TypeError:  # neither hashable nor weakly referable: made afresh each time
            return variant.make(tokenizer)
    if found is not None:
        return tokenizer if found is _ITSELF else found
    made = variant.make(tokenizer)
    with _lock:
        # Never the key itself as its own value: the entry would keep its key alive.
        _made.setdefault(tokenizer, {})[variant] = _ITSELF if made is tokenizer else made
        if made is not tokenizer:
            try:
                _made_from[made] = (weakref.ref(tokenizer), variant)
            except TypeError:
                pass
    return made


def derivation(tokenizer: Any) -> tuple[Any, TokenizerVariant] | None:
    """The base tokenizer and the recipe `variant_of` made `tokenizer` with, or None."""
    with _lock:
        try:
            found = _made_from.get(tokenizer)
        except TypeError:
            return None
    if found is None:
        return None
    base = found[0]()
    return None if base is None else (base, found[1])
