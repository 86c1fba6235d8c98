"""The pitfalls the lessons show live: template tokenization, the removed TRL collator,
templates as special tokens (and the embedding rows `resize_token_embeddings` adds for them),
and a masked `eos`.

Everything is computed on the tokenizer (and, where said, the model) in use, so a lesson
states what this model does rather than what the article's Bloom did.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.data.chat_format import ARTICLE_MARKERS, TurnMarkers, FormattedExample
from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.labels.strategies import LabeledExample, TokenRow, label_example, make_rows


def find_sublist(haystack: Sequence[int], needle: Sequence[int]) -> int | None:
    """Start of the first occurrence of `needle` as a contiguous run of `haystack`, or None."""
    n = len(needle)
    if n == 0:
        return None
    for i in range(len(haystack) - n + 1):
        if list(haystack[i : i + n]) == list(needle):
            return i
    return None


def token_rows(tokenizer: Any, ids: Sequence[int]) -> tuple[TokenRow, ...]:
    """Ids as rows with their visible text (labels unused: set to the ids)."""
    return make_rows(tokenizer, list(ids), list(ids))


# --- the template-tokenization pitfall --------------------------------------------------------


@dataclass(frozen=True)
class TemplateCheck:
    """Is a response template, tokenized on its own, found among the examples' tokens?"""

    template: str
    alone: tuple[TokenRow, ...]  # the template tokenized alone (add_special_tokens=False)
    context: tuple[TokenRow, ...]  # the first example, tokenized as training tokenizes it
    found_at: int | None  # where the alone-ids occur as a contiguous run of that example's ids
    span: tuple[int, ...]  # positions of that example's tokens that overlap the template's characters
    found_in: int  # examples whose ids contain the alone-ids
    fixed_found_in: int  # examples whose ids contain the fix: the ids at `span`
    examples: int
    old_trained: int  # labels the old collator trains in the first example with the alone-ids
    old_trained_fixed: int  # ... with the fix

    @property
    def found(self) -> bool:
        return self.found_at is not None

    @property
    def fixed_ids(self) -> tuple[int, ...]:
        """The fix: the template's ids as the text tokenizes it, taken from the context."""
        return tuple(self.context[p].id for p in self.span)


def template_candidates(marker: str) -> list[str]:
    """The assistant marker and shorter ways of writing it, each a substring of the marker.

    Authors write response templates all these ways; each occurs in the text as characters,
    but not necessarily as tokens.
    """
    stripped = marker.strip()
    words = stripped.split()
    out = [marker, "\n" + marker.lstrip("\n"), stripped, words[-1] if words else stripped]
    seen: list[str] = []
    for c in out:
        if c and c in marker and c not in seen:
            seen.append(c)
    return seen


def _span(text: str, template: str, offsets: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Positions of the tokens that overlap the template's last occurrence in the text.

    A token that straddles the boundary (Bloom's `'?\\n\\n'`) is part of it: that is the id
    the collator meets in the data.
    """
    start = text.rfind(template)
    if start < 0:
        return ()
    end = start + len(template)
    return tuple(p for p, (s, e) in enumerate(offsets) if e > s and s < end and e > start)


def check_template(tokenizer: Any, texts: Sequence[str], template: str) -> TemplateCheck:
    """Tokenize `template` alone and every text whole, and look for the one inside the other."""
    alone = tokenizer(template, add_special_tokens=False)["input_ids"]
    encoded = [tokenizer(t, return_offsets_mapping=True) for t in texts]
    all_ids = [list(e["input_ids"]) for e in encoded]
    first = all_ids[0]
    span = _span(texts[0], template, [tuple(o) for o in encoded[0]["offset_mapping"]])
    fixed = [first[p] for p in span]

    def old_trained(response: list[int]) -> int:
        labels, _ = old_collator_labels(first, response, None, tokenizer.pad_token_id)
        return sum(1 for x in labels[1:] if x != IGNORE_INDEX)

    return TemplateCheck(
        template=template,
        alone=token_rows(tokenizer, alone),
        context=token_rows(tokenizer, first),
        found_at=find_sublist(first, alone),
        span=span,
        found_in=sum(find_sublist(ids, alone) is not None for ids in all_ids),
        fixed_found_in=sum(find_sublist(ids, fixed) is not None for ids in all_ids),
        examples=len(all_ids),
        old_trained=old_trained(list(alone)),
        old_trained_fixed=old_trained(fixed),
    )


@dataclass(frozen=True)
class TemplatePitfall:
    checks: tuple[TemplateCheck, ...]  # one per candidate template, the marker itself first

    @property
    def failing(self) -> TemplateCheck | None:
        """The first candidate that is in the text as characters but not as tokens."""
        return next((c for c in self.checks if not c.found), None)


def template_pitfall(
    tokenizer: Any, examples: Sequence[FormattedExample], template: TurnMarkers = ARTICLE_MARKERS
) -> TemplatePitfall:
    """Every way of writing the response template, checked against this tokenizer and these
    examples (the first one is shown token by token)."""
    texts = [fe.text for fe in examples]
    return TemplatePitfall(tuple(check_template(tokenizer, texts, c) for c in template_candidates(template.assistant)))


# --- the removed DataCollatorForCompletionOnlyLM ----------------------------------------------


def old_collator_labels(
    input_ids: Sequence[int],
    response_ids: Sequence[int],
    instruction_ids: Sequence[int] | None = None,
    pad_id: int | None = None,
) -> tuple[list[int], list[str]]:
    """The labels TRL's `DataCollatorForCompletionOnlyLM` (removed in TRL 0.20) made for one
    example, and the warnings it gave: its algorithm, step for step, on plain lists.

    It started from `DataCollatorForLanguageModeling(mlm=False)` labels (a copy of the ids,
    -100 wherever the id is the pad id), then searched those labels for the templates' ids.
    """
    labels = [IGNORE_INDEX if pad_id is not None and t == pad_id else int(t) for t in input_ids]
    warnings: list[str] = []
    response = list(response_ids)
    n = len(labels)

    def starts(needle: list[int]) -> list[int]:
        return [i for i in range(n) if labels[i : i + len(needle)] == needle] if needle else []

    if instruction_ids is None:
        found = starts(response)
        if not found:
            warnings.append("Could not find response key in the instance: every label of it is -100")
            return [IGNORE_INDEX] * n, warnings
        end = found[-1] + len(response)
        return [IGNORE_INDEX] * end + labels[end:], warnings
    response_ends = [i + len(response) for i in starts(response)]
    if not response_ends:
        warnings.append("Could not find response key in the instance: every label of it is -100")
        labels = [IGNORE_INDEX] * n
    human = starts(list(instruction_ids))
    if not human:
        warnings.append("Could not find instruction key in the instance: every label of it is -100")
        labels = [IGNORE_INDEX] * n
    if human and response_ends and human[0] > response_ends[0]:
        human = [0, *human]
    for k, (start, end) in enumerate(zip(human, response_ends)):
        for i in range(0 if k == 0 else start, min(end, n)):
            labels[i] = IGNORE_INDEX
    if len(response_ends) < len(human):
        for i in range(human[-1], n):
            labels[i] = IGNORE_INDEX
    return labels, warnings


@dataclass(frozen=True)
class OldCollatorView:
    mask: LabeledExample  # the article's create_special_mask
    old: LabeledExample  # the removed collator with instruction_template=eos, response_template=bos
    warnings: tuple[str, ...]
    bos_positions: tuple[int, ...]  # where the response template (bos) occurs in the ids


def old_collator_view(tokenizer: Any, fe: FormattedExample) -> OldCollatorView:
    """The article's TRL setup, `instruction_template=eos, response_template=bos`, on this tokenizer."""
    mask = label_example("mask", fe, tokenizer)
    ids = mask.input_ids
    bos, eos = tokenizer.convert_tokens_to_ids(fe.bos), tokenizer.convert_tokens_to_ids(fe.eos)
    labels, warnings = old_collator_labels(ids, [bos], [eos], tokenizer.pad_token_id)
    old = LabeledExample("old collator", make_rows(tokenizer, ids, labels), fe)
    return OldCollatorView(mask, old, tuple(warnings), tuple(i for i, t in enumerate(ids) if t == bos))


# --- templates as special tokens ---------------------------------------------------------------


@dataclass(frozen=True)
class ResizeCheck:
    """What `model.resize_token_embeddings(n)` did to a copy of the model's input embedding."""

    rows_before: int
    rows_after: int
    tied: bool  # the LM head shares the embedding's weight: its new rows are the same rows
    spread: float = 0.0  # mean distance (L2) of an old row from the mean of the old rows
    mean_distance: float = 0.0  # largest distance of a new row from that mean (mean_resizing=True, the default)
    mean_cosine: float = 0.0  # smallest cosine of a new row with that mean
    random_distance: float = 0.0  # ... of a row added with mean_resizing=False (random init), the largest
    random_cosine: float = 0.0  # ... its cosine with the mean, the largest

    @property
    def added(self) -> int:
        return self.rows_after - self.rows_before

    @property
    def at_mean(self) -> bool:
        """The new rows start at the old rows' mean: closer to it than 1% of an old row's distance."""
        return self.added > 0 and self.mean_distance < 0.01 * self.spread


def resize_check(model: Any, rows: int, seed: int = 1) -> ResizeCheck:
    """Resize a copy of the model to `rows` embedding rows as the notebook does, and measure the
    new rows against the mean of the old ones; then add as many with `mean_resizing=False`
    (transformers' random init) for comparison. Seeded: the mean-resized rows carry a tiny
    random part (a multivariate normal around the mean with 1e-9 times the old rows' covariance)."""
    import torch

    lm = copy.deepcopy(model)
    old = lm.get_input_embeddings().weight.detach().float().clone()
    n = old.shape[0]
    devices = [lm.device.index or 0] if lm.device.type == "cuda" else []

    def resized(size: int, mean_resizing: bool) -> Any:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            lm.resize_token_embeddings(size, mean_resizing=mean_resizing)
        return lm.get_input_embeddings().weight.detach().float()

    weight = resized(rows, True)
    head = lm.get_output_embeddings()
    tied = head is not None and head.weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()
    if rows <= n:
        del lm
        return ResizeCheck(n, weight.shape[0], tied)
    mean = old.mean(dim=0)

    def distances(new: Any) -> tuple[float, float, float]:
        d = (new - mean).norm(dim=1)
        cos = torch.nn.functional.cosine_similarity(new, mean[None], dim=1)
        return float(d.max()), float(cos.min()), float(cos.max())

    mean_d, mean_cos, _ = distances(weight[n:].clone())
    random_d, _, random_cos = distances(resized(2 * rows - n, False)[rows:].clone())
    del lm
    return ResizeCheck(n, rows, tied, float((old - mean).norm(dim=1).mean()), mean_d, mean_cos, random_d, random_cos)


@dataclass(frozen=True)
class SpecialTokensView:
    added: tuple[tuple[str, int], ...]  # (template, its new id)
    vocab_before: int
    vocab_after: int  # rows the embedding must have after resize_token_embeddings
    before: LabeledExample  # mask labels with the templates as ordinary text
    after: LabeledExample  # mask labels with each template one special token
    resize: ResizeCheck | None = None  # what resize_token_embeddings did to a copy of the model


def special_tokens_view(
    tokenizer: Any, fe: FormattedExample, template: TurnMarkers = ARTICLE_MARKERS, model: Any = None, seed: int = 1
) -> SpecialTokensView:
    """The notebook's fix: both markers as additional special tokens, on a copy of the tokenizer.

    With `model`, a copy of it is resized to the new vocabulary (`resize_check`, seeded with
    `seed`); the model itself is left alone.
    """
    tok = copy.deepcopy(tokenizer)
    before_len = len(tok)
    tok.add_special_tokens({"additional_special_tokens": [template.human, template.assistant]})
    added = tuple((t, tok.convert_tokens_to_ids(t)) for t in (template.human, template.assistant))
    return SpecialTokensView(
        added=added,
        vocab_before=before_len,
        vocab_after=len(tok),
        before=label_example("mask", fe, tokenizer),
        after=label_example("mask", fe, tok),
        resize=resize_check(model, len(tok), seed) if model is not None else None,
    )


# --- a masked eos ------------------------------------------------------------------------------


def eos_masked_labels(labels: Sequence[int], input_ids: Sequence[int], eos_id: int) -> list[int]:
    """Labels with every `eos` position set to -100, whatever the strategy made of it.

    This is what a collator that masks the pad id does when pad == eos
    (`DataCollatorForLanguageModeling` sets `labels[input_ids == pad_token_id] = -100`), and
    what the old collator did with `eos` as its instruction template: the answers stay
    trained, the token that ends them does not.
    """
    return [IGNORE_INDEX if int(t) == eos_id else int(l) for t, l in zip(input_ids, labels, strict=True)]


def eos_masked(lab: LabeledExample, tokenizer: Any) -> LabeledExample:
    """A labelling with its eos labels masked (see `eos_masked_labels`)."""
    labels = eos_masked_labels(lab.labels, lab.input_ids, tokenizer.eos_token_id)
    return LabeledExample(f"{lab.strategy}, eos masked", make_rows(tokenizer, lab.input_ids, labels), lab.formatted)


@dataclass(frozen=True)
class CollatorLabels:
    name: str
    labels: list[int]  # the example's row of the padded batch
    eos_at: int  # where its closing eos sits in that row
    pads: int  # pad tokens the batch added to it

    @property
    def eos_trained(self) -> bool:
        return self.labels[self.eos_at] != IGNORE_INDEX


def pad_eos_collators(tokenizer: Any, input_ids: Sequence[int], longer_ids: Sequence[int]) -> list[CollatorLabels]:
    """The example padded in a batch beside a longer one, with the pad token set to the eos (the
    common `tokenizer.pad_token = tokenizer.eos_token`), through the two collators named
    `DataCollatorForLanguageModeling`: transformers' (`mlm=False`), which labels every pad id -100,
    the eos with it; and TRL 1.x's (`trl.trainer.sft_trainer`, built from `pad_token_id` alone),
    which pads the labels with -100 by length and keeps the eos. The tokenizer in use is left alone."""
    from transformers import DataCollatorForLanguageModeling as TransformersCollator
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling as TrlCollator

    if len(longer_ids) <= len(input_ids):
        raise ValueError("the second example must be longer: the first one is to be padded")
    tok = copy.deepcopy(tokenizer)
    tok.pad_token = tok.eos_token
    examples = [{"input_ids": list(input_ids)}, {"input_ids": list(longer_ids)}]
    out = []
    for name, collator in (
        ("transformers' DataCollatorForLanguageModeling", TransformersCollator(tok, mlm=False)),
        ("TRL's DataCollatorForLanguageModeling", TrlCollator(pad_token_id=tok.pad_token_id)),
    ):
        batch = collator(examples)
        mask = [int(x) for x in batch["attention_mask"][0].tolist()]
        real = [i for i, m in enumerate(mask) if m]
        labels = [int(x) for x in batch["labels"][0].tolist()]
        out.append(CollatorLabels(name, labels, real[-1], len(mask) - len(real)))
    return out
