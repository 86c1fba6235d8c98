"""The cases of exercises 11 and 13, built by TRL: an SFTTrainer set up on article examples,
whose packed rows (11) or optimizer steps (13) the user's function is called on, with the
answers TRL and the Trainer give (the references are never written here).

A case's setup is sized from the examples' lengths under the tokenizer in use (an answer cut in
its middle, a piece of one token), so the hidden cases hold on any model. The built cases are
kept per model, tokenizer, template and cases (the app checks on every save), as long as the
model and the tokenizer live.
"""

from __future__ import annotations

import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.data.chat_format import TurnMarkers, add_special_tokens, article_text
from inspector.core.data.tokens import IGNORE_INDEX as IGNORE


@dataclass(frozen=True)
class BatchCase:
    """One SFTTrainer setup of a check: article examples (word, answer), SFTConfig flags, ranks.

    `max_length`: sized from the examples' (length, prompt length) as TRL prepares them unpacked.
    `keep`: which of its packed rows a pack case checks (default: all); for a weights case, what
    its step must show (its name says so: a setup that does not show it on a tokenizer fails loudly)."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    flags: Mapping[str, Any]
    world_size: int = 1
    hidden: bool = False
    max_length: Callable[[list[tuple[int, int]]], int] | None = field(default=None, compare=False)
    keep: Callable[[Any], bool] | None = field(default=None, compare=False)


@dataclass
class PreparedCall:
    """One call of the user's function with its reference answer."""

    name: str
    hidden: bool
    argument: Any  # a pack exercise: the example dict's fields; a weights exercise: the micro-batches
    expected: Any  # labels (one row) or weights (per micro-batch, row, label)
    texts: list[Any] = field(default_factory=list)  # the tokens' visible texts (a row, or per micro-batch rows)
    gradients: Any = None  # a weights case: per micro-batch (G, U) of `gradient_weights`
    count: int = 0  # a weights case: the trained labels of the step


def formatted(tokenizer: Any, template: TurnMarkers, pairs: Sequence[tuple[str, str]], model_name: str) -> list[Any]:
    """The case's examples as training formats them, with the tokenizer's special tokens."""
    return [
        add_special_tokens(article_text(w, a, template), tokenizer.bos_token, tokenizer.eos_token, template,
                           model_name=model_name)
        for w, a in pairs
    ]


def _lengths(model: Any, tokenizer: Any, examples: Sequence[Any], device: str) -> list[tuple[int, int]]:
    """(length, prompt length) of each example as TRL prepares it, unpacked and untruncated."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.trainer import sft_trainer

    rows = list(range(1, len(examples) + 1))
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-exercise-") as tmp:
        flags = {"packing": False, "max_length": None, "per_device_train_batch_size": 1}
        setup = examples_setup(examples, rows, "the exercise's examples", flags, output_dir=tmp, device=device)
        with sft_trainer(model, tokenizer, setup) as trainer:
            out = []
            for row in trainer.train_dataset:
                labels = row["labels"]
                prompt = next((i for i, x in enumerate(labels) if x != IGNORE), len(labels))
                out.append((len(row["input_ids"]), prompt))
    return out


def setup_flags(model: Any, tokenizer: Any, case: BatchCase, examples: Sequence[Any], device: str) -> dict[str, Any]:
    """The case's SFTConfig flags, its max_length sized from the examples where it says how."""
    flags = dict(case.flags)
    if case.max_length is not None:
        flags["max_length"] = case.max_length(_lengths(model, tokenizer, examples, device))
    return flags


def visible(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    return [tokenizer.decode([int(i)]) for i in ids]


# model -> tokenizer -> (what, template, cases) -> the calls; gone with the model or the tokenizer.
_built: weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], list[PreparedCall]]]] = (
    weakref.WeakKeyDictionary()
)

BuildCase = Callable[[BatchCase], list[PreparedCall]]


def built_once(what: str, model: Any, tokenizer: Any, cases: Sequence[BatchCase], template: TurnMarkers,
               build: BuildCase) -> list[PreparedCall]:
    """The calls of every case (`build(case)` each), built once per model, tokenizer, template and
    cases; `what` names the exercise's kind."""
    key = (what, repr(template), tuple(c.name for c in cases), tuple(repr(c.flags) for c in cases))
    try:
        by_tokenizer = _built.setdefault(model, weakref.WeakKeyDictionary())
        kept = by_tokenizer.setdefault(tokenizer, {})
    except TypeError:  # an object without weak references: built again next time
        kept = {}
    if key not in kept:
        kept[key] = [call for case in cases for call in build(case)]
    return kept[key]
