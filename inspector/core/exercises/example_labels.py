"""The check of a label strategy written by the user (exercises 4, 8 and 10): its labels of each
example against the reference's, on the lesson's examples and on hidden ones (more turns, a
tokenizer that puts its own bos in front, an empty answer, padding).

- `Reference.MASK` (lesson 4): the mask strategy: the human part masked, every answer and its
  closing `eos` trained;
- `Reference.TRL` (lesson 8): the `trl` strategy, asked of TRL's SFTTrainer on the model
  (`labels.trl_bridge.trl_dataset_rows`): completion-only loss on the text cut at its last
  `bos`, so only the last answer and its closing `eos` are trained, everything before masked;
- `Reference.COPY_UNPADDED` (lesson 10): the copy labels of an example padded with pad == eos,
  the padding masked and the `eos` that ends the text kept. Its example dict has no
  `attention_mask` (`withheld`): like transformers' DataCollatorForLanguageModeling, the
  function sees only the ids.

The function is called once per example, all of them in one request to the label process; an
error in it fails that example, not the others.
"""

from __future__ import annotations

import enum
import weakref
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
EMPTY_LAST_ANSWER = article_text("dog", "perro") + "\n\n### Human: And \"silence\"?\n\n### Assistant:"


class Reference(enum.Enum):
    """What a per-example exercise's labels are compared with."""

    MASK = "mask"  # the mask strategy's labels
    TRL = "trl"  # the trl strategy's labels: TRL's SFTTrainer, completion-only loss (the last answer)
    COPY_UNPADDED = "copy-unpadded"  # input_ids copied, the padding masked


def article_cases(lesson: Lesson) -> list[Case]:
    return [Case(f"lesson example {i + 1}", t) for i, t in enumerate(ARTICLE_EXAMPLES)]


def own_example(lesson: Lesson) -> list[Case]:
    return [Case("lesson example", lesson.example or TWO_TURNS)]


def padded_article_cases(lesson: Lesson) -> list[Case]:
    # Padded as in one batch of the five, to two past the longest (found at check time).
    return [Case(f"lesson example {i + 1}, padded", t, padded=-1) for i, t in enumerate(ARTICLE_EXAMPLES)]


# model -> tokenizer -> the cases' texts -> TRL's (input_ids, labels) of each; gone with either.
_trl_rows: weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], list[Any]]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class ExampleLabels:
    """A label strategy's exercise: `make_labels(example, tokenizer)` on each example."""

    reference: Reference
    lesson_cases: Callable[[Lesson], list[Case]] = field(repr=False)
    hidden_cases: tuple[Case, ...] = ()
    withheld: tuple[str, ...] = ()  # keys the example dict does not have (exercise 10: attention_mask)
    pads_with_eos: bool = False  # every case's tokenizer has pad == eos, a row without padding too (exercise 10)

    unit = "examples"  # what one checked case is (plural)
    function_kind = FunctionKind.LABELS  # how the label process calls it
    strategy = True  # a label strategy the views show and train

    @property
    def needs_model(self) -> bool:
        """TRL's reference is asked of its SFTTrainer on the model; the others need the tokenizer only."""
        return self.reference is Reference.TRL

    def _cases(self, lesson: Lesson, tokenizer: Any, template: TurnMarkers,
               model_name: str) -> tuple[list[Case], list[FormattedExample]]:
        """The lesson's cases and the hidden ones, formatted with the tokenizer's special tokens."""
        cases = [*self.lesson_cases(lesson), *self.hidden_cases]
        formatted = [
            add_special_tokens(c.text, tokenizer.bos_token, tokenizer.eos_token, template, model_name=model_name)
            for c in cases
        ]
        return cases, formatted

    def _tokenizer(self, tokenizer: Any, case: Case) -> Any:
        """The tokenizer a case is tokenized with: one that adds its own bos, one that pads with eos."""
        tok = variant_of(tokenizer, TokenizerVariant.ADDS_BOS) if case.bos_added else tokenizer
        return variant_of(tok, TokenizerVariant.PADS_WITH_EOS) if case.padded or self.pads_with_eos else tok

    def build_cases(self, lesson: Lesson, model: Any, tokenizer: Any, template: TurnMarkers, *,
                    model_name: str, device: str) -> list[Any] | None:
        """`Reference.TRL`: TRL's (input_ids, labels) of every case, asked of its SFTTrainer once per
        model, tokenizer and texts (one trainer per tokenizer the cases use). Nothing for the
        others: their cases are made at check time from the tokenizer."""
        if self.reference is not Reference.TRL:
            return None
        from inspector.core.labels.trl_bridge import trl_dataset_rows

        cases, formatted = self._cases(lesson, tokenizer, template, model_name)
        key = tuple(f"{c.bos_added}:{fe.text}" for c, fe in zip(cases, formatted))
        try:
            kept = _trl_rows.setdefault(model, weakref.WeakKeyDictionary()).setdefault(tokenizer, {})
        except TypeError:  # an object without weak references: asked again next time
            kept = {}
        if key not in kept:
            rows: list[Any] = [None] * len(cases)
            for bos_added in sorted({c.bos_added for c in cases}):
                which = [i for i, c in enumerate(cases) if c.bos_added == bos_added]
                tok = self._tokenizer(tokenizer, cases[which[0]])
                for i, row in zip(which, trl_dataset_rows(model, tok, [formatted[i] for i in which])):
                    rows[i] = row
            kept[key] = rows
        return kept[key]

    def check(
        self, exercise: Checked, number: int, lesson: Lesson, fn: LabelFunction, tokenizer: Any,
        template: TurnMarkers, *, model_name: str, model: Any = None, device: str = "cpu",
    ) -> CheckReport:
        """Run the function on the lesson's examples and the hidden ones; compare with the reference."""
        cases, formatted = self._cases(lesson, tokenizer, template, model_name)
        trl = self.build_cases(lesson, model, tokenizer, template, model_name=model_name, device=device)
        longest = max(
            (len(encode(fe, self._tokenizer(tokenizer, c))[0]) for c, fe in zip(cases, formatted) if c.padded < 0),
            default=0,
        )
        calls = []
        for i, (case, fe) in enumerate(zip(cases, formatted)):
            tok = self._tokenizer(tokenizer, case)
            pads = longest + 2 - len(encode(fe, tok)[0]) if case.padded < 0 else case.padded
            ids, expected = (list(trl[i][0]), list(trl[i][1])) if trl is not None else self._expected(fe, tok, pads)
            mask = [1] * (len(ids) - pads) + [0] * pads
            calls.append((case, tok, ids, expected, LabelCall(ids, tok, fe.text, mask, i + 1, withheld=self.withheld)))
        # One request to the label process for every case; an error fails its case, not the others.
        answers = fn.call_many([c[-1] for c in calls], stop_on_error=False)
        results = []
        for (case, tok, ids, expected, _), got in zip(calls, answers):
            if isinstance(got, LabelCodeError):
                results.append(CaseResult(case, False, error=got, hint=self._error_hint(got)))
                continue
            rows = make_rows(tok, ids, [0] * len(ids))
            diffs = tuple(
                Difference(p, rows[p].text, e, g) for p, (e, g) in enumerate(zip(expected, got)) if e != g
            )
            results.append(CaseResult(case, not diffs, diffs, hint=_hint(self.reference, case, diffs, ids, expected, got, tok)))
        return CheckReport(exercise, number, fn, tuple(results))

    def _error_hint(self, error: LabelCodeError) -> str:
        """A line where the user's code asked for a key this exercise withholds."""
        for key in self.withheld:
            if error.kind == "exception" and error.message.startswith("KeyError") and repr(key) in error.message:
                return (f"this exercise's example has no {key!r}: like transformers' DataCollatorForLanguageModeling, "
                        "find the padding from input_ids alone")
        return ""

    def _expected(self, fe: FormattedExample, tok: Any, pads: int) -> tuple[list[int], list[int]]:
        """(input_ids, expected labels) of one case, padding included (`Reference.TRL`'s: `build_cases`)."""
        if self.reference is Reference.MASK:
            lab = label_example("mask", fe, tok)
            ids, labels = lab.input_ids, lab.labels
        else:
            ids, _ = encode(fe, tok)
            labels = list(ids)
        return ids + [tok.pad_token_id] * pads, labels + [IGNORE_INDEX] * pads


def _hint(reference: Reference, case: Case, diffs: Sequence[Difference], ids: Sequence[int], expected: Sequence[int],
          got: Sequence[int], tok: Any) -> str:
    """A line on the usual cause of a failure, where one fits."""
    if not diffs:
        return ""
    eos = tok.eos_token_id
    if any(d.expected == eos and d.got == IGNORE_INDEX and ids[d.position] == eos for d in diffs):
        if case.padded or reference is Reference.COPY_UNPADDED:
            return ("the eos that ends the text is masked: with pad == eos, the padding is the run of eos at the "
                    "end of the row less its first, which is the text's own")
        return "an answer's closing eos is masked: it is the one token that teaches the model to stop"
    if case.bos_added and ids[0] == tok.bos_token_id and got[0] == IGNORE_INDEX and diffs[0].position == 1:
        # The article's state machine: masked through the first bos it meets, which is the tokenizer's own.
        return "the bos at position 0 is the tokenizer's own, not the one that opens an answer"
    if case.padded and any(d.position >= len(ids) - case.padded for d in diffs):
        return "the padding is trained: mask the pad ids after the eos that ends the text"
    if reference is Reference.TRL:
        completion = next((p for p, e in enumerate(expected) if e != IGNORE_INDEX), len(expected))
        if any(d.got != IGNORE_INDEX and d.position < completion for d in diffs):
            return ("trained before the last answer: TRL's completion is what follows the last bos; "
                    "every earlier turn, the earlier answers too, is prompt and masked")
    return ""
