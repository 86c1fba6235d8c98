"""Exercises: write the label function of a lesson yourself, and have it checked.

`causallm-inspect exercise N` writes the starter file of lesson N (the function's signature, a
docstring stating the task, a `TODO`), from the lessons' `exercises/` folder. `--check FILE`
runs the function on the lesson's examples and on hidden ones (more turns, a tokenizer that
puts its own `bos` in front, an empty answer) and compares it with the reference labels:

- lesson 4 (`mask`): the mask strategy: the human part masked, every answer and its closing
  `eos` trained;
- lesson 8 (`multi-turn`): the same, on conversations of several exchanges;
- lesson 10 (`eos-padding`): the copy labels of an example padded with pad == eos, the
  padding masked and the `eos` that ends the text kept.

A result per example says whether it matches, and where not, the first positions that
differ (expected vs got). An error in the user's code on one example fails that example
with the error (file, line, trimmed traceback); a file that does not load fails the check
as a whole (a LabelCodeError).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.core.data.chat_format import (
    ARTICLE_EXAMPLES,
    ARTICLE_TEMPLATE,
    ChatTemplate,
    FormattedExample,
    add_special_tokens,
    article_text,
)
from inspector.core.errors import InspectorError
from inspector.core.labels.custom import ONE_LINE_KINDS, LabelCall, LabelCodeError, LabelFunction
from inspector.core.labels.strategies import IGNORE_INDEX, encode, label_example, make_rows
from inspector.core.lessons.model import Lesson, lessons_dir

EXERCISE_FOLDER = "exercises"
SHOWN_DIFFERENCES = 3  # the first positions that differ, per example

TWO_TURNS = article_text("dog", "perro") + "\n\n### Human: And \"water\"?\n\n### Assistant: agua"
THREE_TURNS = TWO_TURNS + "\n\n### Human: And \"tree\"?\n\n### Assistant: árbol"
EMPTY_ANSWER = article_text("silence")  # the assistant marker and nothing after it
EMPTY_FIRST_ANSWER = article_text("silence") + "\n\n### Human: And \"dog\"?\n\n### Assistant: perro"


@dataclass(frozen=True)
class Case:
    """One example a check runs: its chat text, whether it is hidden, how it is tokenized."""

    name: str
    text: str
    hidden: bool = False
    bos_added: bool = False  # tokenized by a copy of the tokenizer that puts its own bos in front
    padded: int = 0  # pad tokens (pad == eos) appended, attention_mask 0 over them; -1: as in a batch


@dataclass(frozen=True)
class Exercise:
    lesson_id: str
    starter: str  # file name in the lessons' exercises/ folder
    reference: str  # "mask", or "copy-unpadded" (lesson 10)
    task: str  # one line
    function: str = "make_labels"
    lesson_cases: Callable[[Lesson], list[Case]] = field(default=lambda lesson: [], repr=False)
    hidden_cases: tuple[Case, ...] = ()

    def file_name(self, number: int) -> str:
        """The starter file's name in the user's folder: `exercise_4_mask.py`."""
        return f"exercise_{number}_{self.lesson_id.replace('-', '_')}.py"


def _article_cases(lesson: Lesson) -> list[Case]:
    return [Case(f"lesson example {i + 1}", t) for i, t in enumerate(ARTICLE_EXAMPLES)]


def _own_example(lesson: Lesson) -> list[Case]:
    return [Case("lesson example", lesson.example or TWO_TURNS)]


def _padded_article_cases(lesson: Lesson) -> list[Case]:
    # Padded as in one batch of the five, to two past the longest (found at check time).
    return [Case(f"lesson example {i + 1}, padded", t, padded=-1) for i, t in enumerate(ARTICLE_EXAMPLES)]


EXERCISES: dict[str, Exercise] = {
    "mask": Exercise(
        lesson_id="mask",
        starter="04-mask.py",
        reference="mask",
        task="mask the human part: -100 through each answer's bos, the answer and its closing eos kept",
        lesson_cases=_article_cases,
        hidden_cases=(
            Case("hidden: two turns", TWO_TURNS, hidden=True),
            Case("hidden: three turns", THREE_TURNS, hidden=True),
            Case("hidden: a tokenizer that adds its own bos", ARTICLE_EXAMPLES[0], hidden=True, bos_added=True),
            Case("hidden: two turns, a tokenizer that adds its own bos", TWO_TURNS, hidden=True, bos_added=True),
            Case("hidden: an empty answer", EMPTY_ANSWER, hidden=True),
        ),
    ),
    "multi-turn": Exercise(
        lesson_id="multi-turn",
        starter="08-multi-turn.py",
        reference="mask",
        task="train every assistant turn of a conversation, each with its closing eos; mask every human turn",
        lesson_cases=_own_example,
        hidden_cases=(
            Case("hidden: one turn", ARTICLE_EXAMPLES[1], hidden=True),
            Case("hidden: three turns", THREE_TURNS, hidden=True),
            Case("hidden: three turns, a tokenizer that adds its own bos", THREE_TURNS, hidden=True, bos_added=True),
            Case("hidden: an empty first answer", EMPTY_FIRST_ANSWER, hidden=True),
        ),
    ),
    "eos-padding": Exercise(
        lesson_id="eos-padding",
        starter="10-eos-padding.py",
        reference="copy-unpadded",
        task="labels copied from input_ids with the padding masked, when pad == eos: keep the eos that ends the text",
        lesson_cases=_padded_article_cases,
        hidden_cases=(
            Case("hidden: two turns, padded", TWO_TURNS, hidden=True, padded=3),
            Case("hidden: a tokenizer that adds its own bos, padded", ARTICLE_EXAMPLES[2], hidden=True, bos_added=True,
                 padded=2),
            Case("hidden: an empty answer, padded", EMPTY_ANSWER, hidden=True, padded=4),
            Case("hidden: not padded", ARTICLE_EXAMPLES[3], hidden=True),
        ),
    ),
}


def exercise_for(lesson: Lesson, number: int, lessons: Sequence[Lesson] = ()) -> Exercise:
    """The exercise of a lesson, or an InspectorError naming the lessons that have one."""
    if lesson.id in EXERCISES:
        return EXERCISES[lesson.id]
    with_one = [str(i + 1) for i, les in enumerate(lessons) if les.id in EXERCISES]
    raise InspectorError(
        f"lesson {number} ({lesson.title}) has no exercise",
        f"choose lesson {', '.join(with_one[:-1])} or {with_one[-1]}" if len(with_one) > 1
        else f"choose lesson {''.join(with_one)}" if with_one else "choose a lesson with an exercise",
    )


def starter_text(exercise: Exercise) -> str:
    """The starter file's text, as shipped in the lessons' exercises/ folder."""
    f = lessons_dir() / EXERCISE_FOLDER / exercise.starter
    if not f.is_file():
        raise InspectorError(f"the exercise file {EXERCISE_FOLDER}/{exercise.starter} was not found", "reinstall causallm-inspect")
    return f.read_text(encoding="utf-8")


def write_starter(exercise: Exercise, path: Path, *, force: bool = False) -> Path:
    """Write the starter file to `path`; never over an existing file unless `force`."""
    if path.is_dir():
        raise InspectorError(f"{path} is a folder", "give a file name, e.g. -o my_mask.py")
    if path.exists() and not force:
        raise InspectorError(
            f"{path} already exists (your work so far?)",
            f"check it with --check {path}, choose another file with -o, or pass --force to start again",
        )
    try:
        path.write_text(starter_text(exercise), encoding="utf-8")
    except OSError as exc:
        raise InspectorError(f"{path} could not be written ({exc.strerror})", "choose another path with -o") from exc
    return path


# --- the check ------------------------------------------------------------------------------


_variants: dict[tuple[int, str], tuple[Any, Any]] = {}  # (id(base), recipe) -> (base's weakref, variant)


def _variant(tokenizer: Any, recipe: str, make: Callable[[Any], Any]) -> Any:
    """`make(tokenizer)`, made once per tokenizer (a deep copy of a big vocabulary takes a while),
    and noted so that the label process makes its own copy the same way."""
    import weakref

    from inspector.core.labels.sandbox import note_derived

    key = (id(tokenizer), recipe)
    found = _variants.get(key)
    if found is not None and found[0]() is tokenizer:
        return found[1]
    variant = make(tokenizer)
    _variants[key] = (weakref.ref(tokenizer), variant)
    if variant is not tokenizer:
        note_derived(variant, tokenizer, f"{__name__}:{recipe}")
    return variant


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


@dataclass(frozen=True)
class Difference:
    position: int
    token: str  # visible text of the token
    expected: int
    got: int

    def text(self) -> str:
        return f"position {self.position} {self.token!r}: expected {self.expected}, got {self.got}"


@dataclass(frozen=True)
class CaseResult:
    case: Case
    passed: bool
    differences: tuple[Difference, ...] = ()  # every differing position
    error: LabelCodeError | None = None
    hint: str = ""

    def line(self) -> str:
        """One line, rustlings style: ✓ or ✗, the example, and what differs."""
        if self.passed:
            return f"✓ {self.case.name}"
        if self.error is not None:
            return f"✗ {self.case.name}: {self.error.problem}"
        n = len(self.differences)
        first = "; ".join(d.text() for d in self.differences[:SHOWN_DIFFERENCES])
        more = f" (and {n - SHOWN_DIFFERENCES} more)" if n > SHOWN_DIFFERENCES else ""
        return f"✗ {self.case.name}: {n} position{'s differ' if n != 1 else ' differs'}: {first}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "example": self.case.name,
            "hidden": self.case.hidden,
            "passed": self.passed,
            "differences": [vars(d) for d in self.differences],
            "error": self.error.to_dict() if self.error else None,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class CheckReport:
    exercise: Exercise
    number: int
    function: LabelFunction
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def groups(self) -> list[list[CaseResult]]:
        """The results in order, those failing with the same error (on any example) in one group,
        placed where the first of them is; every other result a group of its own."""
        groups: list[list[CaseResult]] = []
        by_error: dict[tuple[Any, ...], list[CaseResult]] = {}
        for r in self.results:
            if r.error is None:
                groups.append([r])
                continue
            key = r.error.same_as
            if key in by_error:
                by_error[key].append(r)
            else:
                by_error[key] = [r]
                groups.append(by_error[key])
        return groups

    def group_line(self, group: Sequence[CaseResult]) -> str:
        """One line for a group: a result's own line, or an error shared by several examples, once."""
        first = group[0]
        if len(group) == 1 or first.error is None:
            return first.line()
        names = ", ".join(r.case.name for r in group)
        return f"✗ {len(group)} examples ({names}): {first.error.problem_anywhere()}"

    def text(self) -> str:
        lines = [f"exercise {self.number} ({self.exercise.task}): {self.function.name} in {self.function.file}"]
        for group in self.groups():
            r = group[0]
            lines.append(f"  {self.group_line(group)}")
            if r.error is not None and r.error.traceback and r.error.kind not in ONE_LINE_KINDS:
                lines.extend(f"      {x}" for x in r.error.traceback.splitlines())
            if r.error is not None and r.error.kind in ONE_LINE_KINDS and r.error.fix:
                lines.append(f"      {r.error.fix[0].upper()}{r.error.fix[1:]}.")
            if r.hint:
                lines.append(f"      hint: {r.hint}")
        ok = sum(r.passed for r in self.results)
        verdict = "all match the reference" if self.passed else "fix the ones marked ✗ and check again"
        lines.append(f"{ok} of {len(self.results)} examples pass: {verdict}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise": self.number,
            "lesson": self.exercise.lesson_id,
            "function": self.function.name,
            "file": self.function.file,
            "fingerprint": self.function.fingerprint,
            "passed": self.passed,
            "results": [r.to_dict() for r in self.results],
        }


def _reference(exercise: Exercise, fe: FormattedExample, tok: Any, pads: int) -> tuple[list[int], list[int]]:
    """(input_ids, expected labels) of one case, padding included."""
    if exercise.reference == "mask":
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


def check_exercise(
    exercise: Exercise,
    number: int,
    lesson: Lesson,
    fn: LabelFunction,
    tokenizer: Any,
    template: ChatTemplate = ARTICLE_TEMPLATE,
    *,
    model_name: str = "in use",
) -> CheckReport:
    """Run the function on the lesson's examples and the hidden ones; compare with the reference."""
    cases = [*exercise.lesson_cases(lesson), *exercise.hidden_cases]
    tokenizers: dict[tuple[bool, bool], Any] = {}

    def tok_for(case: Case) -> Any:
        key = (case.bos_added, case.padded != 0)
        if key not in tokenizers:
            tok = _variant(tokenizer, "tokenizer_adding_bos", tokenizer_adding_bos) if case.bos_added else tokenizer
            tokenizers[key] = (
                _variant(tok, "tokenizer_padding_with_eos", tokenizer_padding_with_eos) if case.padded else tok
            )
        return tokenizers[key]

    formatted = [
        add_special_tokens(c.text, tokenizer.bos_token, tokenizer.eos_token, template, model_name=model_name)
        for c in cases
    ]
    longest = max(len(encode(fe, tok_for(c))[0]) for c, fe in zip(cases, formatted) if c.padded < 0) if any(
        c.padded < 0 for c in cases
    ) else 0
    prepared = []
    for i, (case, fe) in enumerate(zip(cases, formatted)):
        tok = tok_for(case)
        pads = longest + 2 - len(encode(fe, tok)[0]) if case.padded < 0 else case.padded
        ids, expected = _reference(exercise, fe, tok, pads)
        mask = [1] * (len(ids) - pads) + [0] * pads
        prepared.append((case, tok, ids, expected, LabelCall(ids, tok, fe.text, mask, i + 1)))
    # One request to the label process for every case; an error fails its case, not the others.
    answers = fn.call_many([p[-1] for p in prepared], stop_on_error=False)
    results = []
    for (case, tok, ids, expected, _), got in zip(prepared, answers):
        if isinstance(got, LabelCodeError):
            results.append(CaseResult(case, False, error=got))
            continue
        rows = make_rows(tok, ids, [0] * len(ids))
        diffs = tuple(
            Difference(p, rows[p].text, e, g) for p, (e, g) in enumerate(zip(expected, got)) if e != g
        )
        results.append(CaseResult(case, not diffs, diffs, hint=_hint(case, diffs, ids, got, tok)))
    return CheckReport(exercise, number, fn, tuple(results))
