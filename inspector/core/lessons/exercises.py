"""Exercises: write the label function of a lesson yourself, and have it checked.

`causallm-inspect exercise N` writes the starter file of lesson N (the function's signature, a
docstring stating the task, a `TODO`), from the lessons' `exercises/` folder. `--check FILE`
runs the function on the lesson's examples and on hidden ones (more turns, a tokenizer that
puts its own `bos` in front, an empty answer) and compares it with the reference labels:

- lesson 4 (`mask`): the mask strategy: the human part masked, every answer and its closing
  `eos` trained;
- lesson 8 (`multi-turn`): the same, on conversations of several exchanges;
- lesson 10 (`eos-padding`): the copy labels of an example padded with pad == eos, the
  padding masked and the `eos` that ends the text kept;
- lesson 11 (`packing`): `packed_labels(example, tokenizer)`, the labels of a packed row as
  TRL's collator makes them (the example dict gains `position_ids`, `seq_lengths` and
  `completion_mask`), on packs TRL makes (`inspector.core.lessons.batch_exercises`);
- lesson 13 (`weights`): `token_weights(micro_batches)`, each label's weight in an optimizer
  step, against the Trainer's own gradient.

Exercises 11 and 13 name their own function and are not label strategies: the app checks
them on every save but does not train them. They need the model, not only its tokenizer.

A result per example says whether it matches, and where not, the first positions that
differ (expected vs got). An error in the user's code on one example fails that example
with the error (file, line, trimmed traceback); a file that does not load fails the check
as a whole (a LabelCodeError).
"""

from __future__ import annotations

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
from inspector.core.data.tokenizer_variants import TokenizerVariant, variant_of
from inspector.core.labels.process.errors import ONE_LINE_KINDS, LabelCodeError
from inspector.core.labels.process.parent import LabelCall, LabelFunction, WeightsCall
from inspector.core.labels.process.protocol import FunctionKind
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
    reference: str  # "mask", "copy-unpadded" (lesson 10), "packed" (lesson 11), "weights" (lesson 13)
    task: str  # one line
    function: str = "make_labels"
    lesson_cases: Callable[[Lesson], list[Case]] = field(default=lambda lesson: [], repr=False)
    hidden_cases: tuple[Case, ...] = ()
    kind: FunctionKind = FunctionKind.LABELS  # how the function is called, and what it returns

    @property
    def params(self) -> tuple[str, ...]:
        """What the function is called with."""
        return self.kind.params

    @property
    def strategy(self) -> bool:
        """The function is a label strategy (`make_labels(example, tokenizer)` on the views' examples)."""
        return self.reference in ("mask", "copy-unpadded")

    @property
    def unit(self) -> str:
        """What one checked case is: an example, a packed row, an optimizer step (plural)."""
        return {"packed": "packed rows", "weights": "steps"}.get(self.reference, "examples")

    @property
    def needs_model(self) -> bool:
        """Its reference is TRL's trainer on the model, not the tokenizer alone."""
        return not self.strategy

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
    "packing": Exercise(
        lesson_id="packing",
        starter="11-packing.py",
        reference="packed",
        task="the labels of a packed row, as TRL's collator makes them: the completion trained, each boundary -100",
        function="packed_labels",
        kind=FunctionKind.PACKED_LABELS,
    ),
    "weights": Exercise(
        lesson_id="weights",
        starter="13-weights.py",
        reference="weights",
        task="each label's weight in one optimizer step (accumulation and devices), as the Trainer's gradient gives it",
        function="token_weights",
        kind=FunctionKind.WEIGHTS,
    ),
}


def exercise_of_file(path: Path, lessons: Sequence[Lesson]) -> tuple[int, Exercise] | None:
    """The exercise a file is the starter of ("Exercise for lesson N" at its top, as
    `causallm-inspect exercise N` writes it), or None."""
    import re

    try:
        head = Path(path).read_text(encoding="utf-8")[:400]
    except (OSError, UnicodeDecodeError):
        return None
    found = re.search(r"Exercise for lesson (\d+)", head)
    if found is None:
        return None
    number = int(found.group(1))
    if not 1 <= number <= len(lessons) or lessons[number - 1].id not in EXERCISES:
        return None
    return number, EXERCISES[lessons[number - 1].id]


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


@dataclass(frozen=True)
class Difference:
    position: int
    token: str  # visible text of the token
    expected: int | float
    got: int | float
    where: str = ""  # where it is, when not a position of one row ("micro-batch 1, row 0, position 7")

    def to_dict(self) -> dict[str, Any]:
        d = {"position": self.position, "token": self.token, "expected": self.expected, "got": self.got}
        return {**d, "where": self.where} if self.where else d

    def text(self) -> str:
        at = self.where or f"position {self.position}"
        return f"{at} {self.token!r}: expected {_value(self.expected)}, got {_value(self.got)}"


def _value(x: int | float) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class CaseResult:
    case: Case
    passed: bool
    differences: tuple[Difference, ...] = ()  # every differing position
    error: LabelCodeError | None = None
    hint: str = ""
    detail: str = ""  # one more line (a weights case: your gradient against the Trainer's)

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
            "differences": [d.to_dict() for d in self.differences],
            "error": self.error.to_dict() if self.error else None,
            "hint": self.hint,
            "detail": self.detail,
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

    def group_short(self, group: Sequence[CaseResult]) -> str:
        """A group's line for a narrow panel: an error shared by several examples says the error
        first and how many examples it hit (their names are in `group_line`)."""
        first = group[0]
        if len(group) == 1 or first.error is None:
            return first.line()
        return f"✗ {len(group)} examples: {first.error.problem_anywhere()}"

    def text(self) -> str:
        lines = [f"exercise {self.number} ({self.exercise.task}): {self.function.name} in {self.function.file}"]
        for group in self.groups():
            r = group[0]
            lines.append(f"  {self.group_line(group)}")
            if r.error is not None and r.error.traceback and r.error.kind not in ONE_LINE_KINDS:
                lines.extend(f"      {x}" for x in r.error.traceback.splitlines())
            if r.error is not None and r.error.kind in ONE_LINE_KINDS and r.error.fix:
                lines.append(f"      {r.error.fix[0].upper()}{r.error.fix[1:]}.")
            if r.detail:
                lines.append(f"      {r.detail}")
            if r.hint:
                lines.append(f"      hint: {r.hint}")
        ok = sum(r.passed for r in self.results)
        verdict = "all match the reference" if self.passed else "fix the ones marked ✗ and check again"
        lines.append(f"{ok} of {len(self.results)} {self.exercise.unit} pass: {verdict}")
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
    model: Any = None,
    device: str = "cpu",
) -> CheckReport:
    """Run the function on the lesson's examples and the hidden ones; compare with the reference.

    Exercises 11 and 13 (`needs_model`) build their cases with TRL's SFTTrainer on `model`."""
    if exercise.needs_model:
        if model is None:
            raise InspectorError(
                f"exercise {number} is checked against TRL's trainer: it needs the model, not only its tokenizer",
                "load the model (the check does so itself)",
            )
        return _check_batch(exercise, number, lesson, fn, model, tokenizer, template, model_name=model_name, device=device)
    cases = [*exercise.lesson_cases(lesson), *exercise.hidden_cases]
    tokenizers: dict[tuple[bool, bool], Any] = {}

    def tok_for(case: Case) -> Any:
        key = (case.bos_added, case.padded != 0)
        if key not in tokenizers:
            tok = variant_of(tokenizer, TokenizerVariant.ADDS_BOS) if case.bos_added else tokenizer
            tokenizers[key] = (
                variant_of(tok, TokenizerVariant.PADS_WITH_EOS) if case.padded else tok
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


def _batch_cases(exercise: Exercise, lesson: Lesson) -> tuple[Any, ...]:
    from inspector.core.lessons import batch_exercises as bx

    if exercise.reference == "packed":
        return bx.pack_cases(lesson.batch_settings)
    return bx.weight_cases(lesson.batch_settings, lesson.batch_world_size)


def prepare_exercise(
    exercise: Exercise, lesson: Lesson, model: Any, tokenizer: Any, template: ChatTemplate = ARTICLE_TEMPLATE, *,
    model_name: str = "in use", device: str = "cpu",
) -> None:
    """Build (once) the packs or steps an exercise of `needs_model` is checked on: this is where
    TRL's trainer runs (the app takes its trainer turn around it); the check itself then only
    calls the user's function. Nothing for the other exercises."""
    if not exercise.needs_model:
        return
    from inspector.core.lessons import batch_exercises as bx

    bx.prepared_calls(exercise.reference, model, tokenizer, _batch_cases(exercise, lesson), template, device=device,
                      model_name=model_name)


def _check_batch(
    exercise: Exercise, number: int, lesson: Lesson, fn: LabelFunction, model: Any, tokenizer: Any,
    template: ChatTemplate, *, model_name: str, device: str,
) -> CheckReport:
    """Exercises 11 and 13: the user's function on TRL's packs or steps, against TRL's answers."""
    from inspector.core.lessons import batch_exercises as bx

    packed = exercise.reference == "packed"
    prepared = bx.prepared_calls(exercise.reference, model, tokenizer, _batch_cases(exercise, lesson), template,
                                 device=device, model_name=model_name)
    calls: list[LabelCall | WeightsCall] = []
    for i, p in enumerate(prepared):
        if packed:
            arg = p.argument
            extra = {k: arg[k] for k in ("position_ids", "seq_lengths", "completion_mask")}
            calls.append(LabelCall(arg["input_ids"], tokenizer, arg["text"], None, i + 1, extra))
        else:
            calls.append(WeightsCall(p.argument, tokenizer, i + 1))
    answers = fn.call_many(calls, stop_on_error=False)
    results = []
    for p, got in zip(prepared, answers):
        case = Case(p.name, "", hidden=p.hidden)
        if isinstance(got, LabelCodeError):
            results.append(CaseResult(case, False, error=got))
            continue
        if packed:
            diffs = tuple(
                Difference(t, p.texts[t], e, g) for t, (e, g) in enumerate(zip(p.expected, got)) if e != g
            )
            results.append(CaseResult(case, not diffs, diffs, hint=bx.pack_hint(p.argument, p.expected, got)))
            continue
        scale = max((abs(w) for mb in p.expected for row in mb for w in row), default=0.0) or 1.0
        diffs = tuple(
            Difference(t, p.texts[m][b][t] if m < len(p.texts) and b < len(p.texts[m]) else "", e, g,
                       where=f"micro-batch {m}, row {b}, position {t}")
            for m, (e_mb, g_mb) in enumerate(zip(p.expected, got))
            for b, (e_row, g_row) in enumerate(zip(e_mb, g_mb))
            for t, (e, g) in enumerate(zip(e_row, g_row))
            if abs(e - g) > bx.WEIGHT_TOLERANCE * scale
        )
        cosine, ratio = bx.gradient_agreement(p, got)
        detail = (f"your weights' gradient (at the last hidden states) against the Trainer's: cosine {cosine:.6f}, "
                  f"norm ratio {ratio:.6f}; the step trains {p.count} labels")
        results.append(CaseResult(case, not diffs, diffs, hint=bx.weights_hint(p, got), detail=detail))
    return CheckReport(exercise, number, fn, tuple(results))
