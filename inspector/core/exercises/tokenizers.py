"""The tokenizers the per-example exercises check a function with besides the model's own: one
that puts its own bos in front (as Gemma's and Llama's do), one whose pad is its eos.

Each is made once per tokenizer (a deep copy of a big vocabulary takes a while) and noted with
`sandbox.note_derived`, so that the label process makes its own copy with the same function of
this module (named "module:function": the label process imports it by that name).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable
from typing import Any

# tokenizer -> {the function that made a variant of it: the variant}; gone with the tokenizer.
_variants: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def variant(tokenizer: Any, make: Callable[[Any], Any]) -> Any:
    """`make(tokenizer)` (a function of this module), made once per tokenizer and noted for the
    label process; the tokenizer itself where `make` leaves it as it is."""
    from inspector.core.labels.sandbox import note_derived

    made = _variants.setdefault(tokenizer, {})
    if make.__name__ in made:
        return made[make.__name__]
    found = make(tokenizer)
    if found is tokenizer:  # not kept: a value that holds its key would keep it alive
        return found
    made[make.__name__] = found
    note_derived(found, tokenizer, f"{__name__}:{make.__name__}")
    return found


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
    backend.post_processor = processors.Sequence([backend.post_processor, prepend]) if backend.post_processor else prepend
    return tok


def tokenizer_padding_with_eos(tokenizer: Any) -> Any:
    """The tokenizer with pad == eos (`tokenizer.pad_token = tokenizer.eos_token`), a copy where it differs."""
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        return tokenizer
    tok = copy.deepcopy(tokenizer)
    tok.pad_token = tok.eos_token
    return tok
