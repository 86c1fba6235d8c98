"""The exercises: which lessons have one, what each asks for, and where a file belongs.

`causallm-inspect exercise N` writes the starter file of lesson N (the function's signature, a
docstring stating the task, a `TODO`) from the lessons' `exercises/` folder; `--check FILE`
checks it (`check_exercise`) by its exercise's kind of check:

- lessons 4 (`mask`), 8 (`multi-turn`) and 10 (`eos-padding`): a label strategy,
  `make_labels(example, tokenizer)` (`example_labels.ExampleLabels`): 4 against the mask
  strategy (every answer trained), 8 against the trl strategy (TRL's completion-only loss: the
  last answer only), 10 against the copy labels with the padding masked (pad == eos, and no
  attention_mask given);
- lesson 11 (`packing`): `packed_labels(example, tokenizer)` on TRL's packed rows
  (`packed_rows.PackedRows`);
- lesson 13 (`weights`): `token_weights(micro_batches)`, each label's weight in an optimizer
  step (`step_weights.StepWeights`);
- lesson 15 (`tool-calls`): `final_answer_labels(example, tokenizer)`, a conversation with tool
  calls trained on its final answer only (the `final` turn policy), on conversations rendered
  by two template families (`final_answer.FinalAnswers`).

Exercises 11, 13 and 15 name their own function and are not label strategies: the app checks
them on every save but does not train them. Exercises 8, 11 and 13 need the model, not only its
tokenizer: their references are asked of TRL's SFTTrainer.

A result per case says whether it matches, and where not, the first positions that differ
(expected vs got). An error in the user's code on one case fails that case with the error (file,
line, trimmed traceback); a file that does not load fails the check as a whole (a LabelCodeError).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, ARTICLE_MARKERS, TurnMarkers
from inspector.core.errors import InspectorError
from inspector.core.exercises.check_report import Case, Checked, CheckReport
from inspector.core.exercises.example_labels import (
    EMPTY_ANSWER,
    EMPTY_LAST_ANSWER,
    THREE_TURNS,
    TWO_TURNS,
    ExampleLabels,
    Reference,
    article_cases,
    own_example,
    padded_article_cases,
)
from inspector.core.exercises.final_answer import FinalAnswers
from inspector.core.exercises.packed_rows import PackedRows
from inspector.core.exercises.step_weights import StepWeights
from inspector.core.labels.process.parent import LabelFunction
from inspector.core.labels.process.protocol import FunctionKind
from inspector.core.lessons.model import Lesson, lessons_dir

EXERCISE_FOLDER = "exercises"
HEADER = re.compile(r"Exercise for lesson (\d+)")  # the starter's first line, as `exercise N` writes it


class Kind(Protocol):
    """A kind of check (`ExampleLabels`, `PackedRows`, `StepWeights`): how its cases are built and
    how the user's function is checked on them."""

    @property
    def unit(self) -> str: ...  # what one checked case is (plural): "examples", "packed rows", "steps"

    @property
    def strategy(self) -> bool: ...  # a label strategy the views show and train

    @property
    def function_kind(self) -> FunctionKind: ...  # how the label process calls the function, what it returns

    @property
    def needs_model(self) -> bool: ...  # its cases are built by TRL's trainer on the model

    def build_cases(self, lesson: Lesson, model: Any, tokenizer: Any, template: TurnMarkers, *,
                    model_name: str, device: str) -> Any: ...

    def check(
        self, exercise: Checked, number: int, lesson: Lesson, fn: LabelFunction, tokenizer: Any,
        template: TurnMarkers, *, model_name: str, model: Any = None, device: str = "cpu",
    ) -> CheckReport: ...


@dataclass(frozen=True)
class Exercise:
    lesson_id: str
    starter: str  # file name in the lessons' exercises/ folder
    kind: Kind
    task: str  # one line
    function: str = FunctionKind.LABELS.function
    compared_with: str = "mask"  # the built-in strategy the labels view compares a label strategy's labels with

    @property
    def function_kind(self) -> FunctionKind:
        """How the label process calls the function and checks what it returns."""
        return self.kind.function_kind

    @property
    def params(self) -> tuple[str, ...]:
        """What the function is called with."""
        return self.kind.function_kind.params

    @property
    def strategy(self) -> bool:
        """The function is a label strategy (`make_labels(example, tokenizer)` on the views' examples)."""
        return self.kind.strategy

    @property
    def unit(self) -> str:
        """What one checked case is: an example, a packed row, an optimizer step (plural)."""
        return self.kind.unit

    @property
    def needs_model(self) -> bool:
        """Its reference is TRL's trainer on the model, not the tokenizer alone."""
        return self.kind.needs_model

    @property
    def packed_rows(self) -> bool:
        """Its function labels a packed row (exercise 11): the batch view shows it beside the collator's."""
        return isinstance(self.kind, PackedRows)

    def file_name(self, number: int) -> str:
        """The starter file's name in the user's folder: `exercise_4_mask.py`."""
        return f"exercise_{number}_{self.lesson_id.replace('-', '_')}.py"


EXERCISES: dict[str, Exercise] = {
    "mask": Exercise(
        lesson_id="mask",
        starter="04-mask.py",
        kind=ExampleLabels(
            Reference.MASK,
            lesson_cases=article_cases,
            hidden_cases=(
                Case("hidden: two turns", TWO_TURNS, hidden=True),
                Case("hidden: three turns", THREE_TURNS, hidden=True),
                Case("hidden: a tokenizer that adds its own bos", ARTICLE_EXAMPLES[0], hidden=True, bos_added=True),
                Case("hidden: two turns, a tokenizer that adds its own bos", TWO_TURNS, hidden=True, bos_added=True),
                Case("hidden: an empty answer", EMPTY_ANSWER, hidden=True),
            ),
        ),
        task="mask the human part: -100 through each answer's bos, the answer and its closing eos kept",
    ),
    "multi-turn": Exercise(
        lesson_id="multi-turn",
        starter="08-multi-turn.py",
        kind=ExampleLabels(
            Reference.TRL,
            lesson_cases=own_example,
            hidden_cases=(
                Case("hidden: one turn", ARTICLE_EXAMPLES[1], hidden=True),
                Case("hidden: three turns", THREE_TURNS, hidden=True),
                Case("hidden: three turns, a tokenizer that adds its own bos", THREE_TURNS, hidden=True, bos_added=True),
                Case("hidden: an empty last answer", EMPTY_LAST_ANSWER, hidden=True),
            ),
        ),
        task="TRL's completion-only labels of a conversation: only the last answer and its eos trained, "
        "everything through the last bos -100",
        compared_with="trl",
    ),
    "eos-padding": Exercise(
        lesson_id="eos-padding",
        starter="10-eos-padding.py",
        kind=ExampleLabels(
            Reference.COPY_UNPADDED,
            lesson_cases=padded_article_cases,
            hidden_cases=(
                Case("hidden: two turns, padded", TWO_TURNS, hidden=True, padded=3),
                Case("hidden: a tokenizer that adds its own bos, padded", ARTICLE_EXAMPLES[2], hidden=True,
                     bos_added=True, padded=2),
                Case("hidden: an empty answer, padded", EMPTY_ANSWER, hidden=True, padded=4),
                Case("hidden: not padded", ARTICLE_EXAMPLES[3], hidden=True),
            ),
            withheld=("attention_mask",),
            pads_with_eos=True,  # "not padded" too: its row ends with one eos, the text's own
        ),
        task="labels copied from input_ids with the padding masked, when pad == eos and no attention_mask: "
        "keep the eos that ends the text",
        compared_with="copy",
    ),
    "packing": Exercise(
        lesson_id="packing",
        starter="11-packing.py",
        kind=PackedRows(),
        task="the labels of a packed row, as TRL's collator makes them: the completion trained, each boundary -100",
        function=FunctionKind.PACKED_LABELS.function,
    ),
    "weights": Exercise(
        lesson_id="weights",
        starter="13-weights.py",
        kind=StepWeights(),
        task="each label's weight in one optimizer step (accumulation and devices), as the Trainer's gradient gives it",
        function=FunctionKind.WEIGHTS.function,
    ),
    "tool-calls": Exercise(
        lesson_id="tool-calls",
        starter="15-tool-calls.py",
        kind=FinalAnswers(),
        task="train only the final answer after the tools: the last assistant message that calls no tool, "
        "its end-of-turn included",
        function=FunctionKind.FINAL_ANSWER_LABELS.function,
    ),
}


@dataclass(frozen=True)
class FoundExercise:
    """The exercise a file is the starter of: its lesson's number, the lesson, the exercise."""

    number: int
    lesson: Lesson
    exercise: Exercise


def find_exercise(path: Path, lessons: Sequence[Lesson]) -> FoundExercise | None:
    """The exercise a file is the starter of ("Exercise for lesson N" at its top, as
    `causallm-inspect exercise N` writes it), or None: the one place a file's exercise is found."""
    try:
        head = Path(path).read_text(encoding="utf-8")[:400]
    except (OSError, UnicodeDecodeError):
        return None
    found = HEADER.search(head)
    if found is None:
        return None
    number = int(found.group(1))
    if not 1 <= number <= len(lessons) or lessons[number - 1].id not in EXERCISES:
        return None
    lesson = lessons[number - 1]
    return FoundExercise(number, lesson, EXERCISES[lesson.id])


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


def build_cases(
    exercise: Exercise, lesson: Lesson, model: Any, tokenizer: Any, template: TurnMarkers = ARTICLE_MARKERS, *,
    model_name: str = "in use", device: str = "cpu",
) -> None:
    """Build (once) what an exercise of `needs_model` is checked against (8: TRL's labels of each
    example; 11, 13: the packs or steps): this is where TRL's trainer runs (the app takes its
    trainer turn around it); the check itself then only calls the user's function. Nothing for
    the other exercises."""
    exercise.kind.build_cases(lesson, model, tokenizer, template, model_name=model_name, device=device)


def check_exercise(
    exercise: Exercise,
    number: int,
    lesson: Lesson,
    fn: LabelFunction,
    tokenizer: Any,
    template: TurnMarkers = ARTICLE_MARKERS,
    *,
    model_name: str = "in use",
    model: Any = None,
    device: str = "cpu",
) -> CheckReport:
    """Run the function on the lesson's cases and the hidden ones; compare with the reference.

    Exercises 8, 11 and 13 (`needs_model`) ask TRL's SFTTrainer on `model` for their reference."""
    if exercise.needs_model and model is None:
        raise InspectorError(
            f"exercise {number} is checked against TRL's trainer: it needs the model, not only its tokenizer",
            "load the model (the check does so itself)",
        )
    return exercise.kind.check(exercise, number, lesson, fn, tokenizer, template, model_name=model_name, model=model,
                               device=device)
