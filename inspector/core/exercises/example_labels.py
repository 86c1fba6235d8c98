"""The check of a label strategy written by the user (exercises 4, 8 and 10): its labels of each
example against the reference's, on the lesson's examples and on hidden ones (more turns, a
tokenizer that puts its own bos in front, an empty answer, padding).

- `Reference.MASK` (lessons 4 and 8): the mask strategy: the human part masked, every answer
  and its closing `eos` trained;
- `Reference.COPY_UNPADDED` (lesson 10): the copy labels of an example padded with pad == eos,
  the padding masked and the `eos` that ends the text kept.

The function is called once per example, all of them in one request to the label process; an
error in it fails that example, not the others.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.data.chat_format import (
    ARTICLE_EXAMPLES,
    FormattedExample,
    TurnMarkers,
    add_special_tokens,
    article_text,
)
from inspector.core.data.tokenizer_variants import TokenizerVariant, variant_of
from inspector.core.exercises.check_report import Case, CaseResult, Checked, CheckReport, Difference
from inspector.core.labels.process.code_errors import LabelCodeError
from inspector.core.labels.process.parent import LabelCall, LabelFunction
from inspector.core.labels.process.protocol import FunctionKind
from inspector.core.labels.strategies import IGNORE_INDEX, encode, label_example, make_rows
from inspector.core.lessons.model import Lesson

TWO_TURNS = article_text("dog", "perro") + "\n\n### Human: And \"water\"?\n\n### Assistant: agua"
THREE_TURNS = TWO_TURNS + "\n\n### Human: And \"tree\"?\n\n### Assistant: árbol"
EMPTY_ANSWER = article_text("silence")  # the assistant marker and nothing after it
EMPTY_FIRST_ANSWER = article_text("silence") + "\n\n### Human: And \"dog\"?\n\n### Assistant: perro"


class Reference(enum.Enum):
    """What a per-example exercise's labels are compared with."""

    MASK = "mask"  # the mask strategy's labels
    COPY_UNPADDED = "copy-unpadded"  # input_ids copied, the padding masked


def article_cases(lesson: Lesson) -> list[Case]:
    return [Case(f"lesson example {i + 1}", t) for i, t in enumerate(ARTICLE_EXAMPLES)]


def own_example(lesson: Lesson) -> list[Case]:
    return [Case("lesson example", lesson.example or TWO_TURNS)]


def padded_article_cases(lesson: Lesson) -> list[Case]:
    # Padded as in one batch of the five, to two past the longest (found at check time).
    return [Case(f"lesson example {i + 1}, padded", t, padded=-1) for i, t in enumerate(ARTICLE_EXAMPLES)]


@dataclass(frozen=True)
class ExampleLabels:
    """A label strategy's exercise: `make_labels(example, tokenizer)` on each example."""

    reference: Reference
    lesson_cases: Callable[[Lesson], list[Case]] = field(repr=False)
    hidden_cases: tuple[Case, ...] = ()

    unit = "examples"  # what one checked case is (plural)
    function_kind = FunctionKind.LABELS  # how the label process calls it
    strategy = True  # a label strategy the views show and train
    needs_model = False  # the tokenizer is enough

    def build_cases(self, lesson: Lesson, model: Any, tokenizer: Any, template: TurnMarkers, *,
                    model_name: str, device: str) -> None:
        """Nothing to build ahead: the cases are made at check time from the tokenizer."""

    def check(
        self, exercise: Checked, number: int, lesson: Lesson, fn: LabelFunction, tokenizer: Any,
        template: TurnMarkers, *, model_name: str, model: Any = None, device: str = "cpu",
    ) -> CheckReport:
        """Run the function on the lesson's examples and the hidden ones; compare with the reference."""
        cases = [*self.lesson_cases(lesson), *self.hidden_cases]
        tokenizers: dict[tuple[bool, bool], Any] = {}

        def tok_for(case: Case) -> Any:
            key = (case.bos_added, case.padded != 0)
            if key not in tokenizers:
                tok = variant_of(tokenizer, TokenizerVariant.ADDS_BOS) if case.bos_added else tokenizer
                tokenizers[key] = variant_of(tok, TokenizerVariant.PADS_WITH_EOS) if case.padded else tok
            return tokenizers[key]

        formatted = [
            add_special_tokens(c.text, tokenizer.bos_token, tokenizer.eos_token, template, model_name=model_name)
            for c in cases
        ]
        longest = max(len(encode(fe, tok_for(c))[0]) for c, fe in zip(cases, formatted) if c.padded < 0) if any(
            c.padded < 0 for c in cases
        ) else 0
        calls = []
        for i, (case, fe) in enumerate(zip(cases, formatted)):
            tok = tok_for(case)
            pads = longest + 2 - len(encode(fe, tok)[0]) if case.padded < 0 else case.padded
            ids, expected = self._expected(fe, tok, pads)
            mask = [1] * (len(ids) - pads) + [0] * pads
            calls.append((case, tok, ids, expected, LabelCall(ids, tok, fe.text, mask, i + 1)))
        # One request to the label process for every case; an error fails its case, not the others.
        answers = fn.call_many([c[-1] for c in calls], stop_on_error=False)
        results = []
        for (case, tok, ids, expected, _), got in zip(calls, answers):
            if isinstance(got, LabelCodeError):
                results.append(CaseResult(case, False, error=got))
                continue
            rows = make_rows(tok, ids, [0] * len(ids))
            diffs = tuple(
                Difference(p, rows[p].text, e, g) for p, (e, g) in enumerate(zip(expected, got)) if e != g
            )
            results.append(CaseResult(case, not diffs, diffs, hint=_hint(case, diffs, ids, got, tok)))
        return CheckReport(exercise, number, fn, tuple(results))

    def _expected(self, fe: FormattedExample, tok: Any, pads: int) -> tuple[list[int], list[int]]:
        """(input_ids, expected labels) of one case, padding included."""
        if self.reference is Reference.MASK:
            lab = label_example("mask", fe, tok)
            ids, labels = lab.input_ids, lab.labels
        else:
            ids, _ = encode(fe, tok)
            labels = list(ids)
        return ids + [tok.pad_token_id] * pads, labels + [IGNORE_INDEX] * pads


def _hint(case: Case, diffs: Sequence[Difference], ids: Sequence[int], got: Sequence[int], tok: Any) -> str:
    """A line on the usual cause of a failure, where one fits."""
    if not diffs:
        return ""
    eos = tok.eos_token_id
    if any(d.expected == eos and d.got == IGNORE_INDEX and ids[d.position] == eos for d in diffs):
        if case.padded:
            return "the eos that ends the text is masked: with pad == eos, tell padding from it by the attention_mask"
        return "an answer's closing eos is masked: it is the one token that teaches the model to stop"
    if case.bos_added and ids[0] == tok.bos_token_id and got[0] == IGNORE_INDEX and diffs[0].position == 1:
        # The article's state machine: masked through the first bos it meets, which is the tokenizer's own.
        return "the bos at position 0 is the tokenizer's own, not the one that opens an answer"
    if case.padded and any(d.position >= len(ids) - case.padded for d in diffs):
        return "the padding is trained: mask the positions where attention_mask is 0"
    return ""
