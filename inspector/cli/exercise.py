"""`causallm-inspect exercise N`: the starter file of lesson N's exercise; `--check FILE` checks it.

The check exits 0 when the function matches the reference on every example (the lesson's
and hidden ones), 1 listing per example the first positions that differ, and 2 when the
file does not load (a syntax error, no such function) or an option is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inspector.cli.options import common, dump, labels_timeout_option, load, load_function, status
from inspector.core.errors import InspectorError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "exercise",
        help="write the starter file of a lesson's exercise (4, 8, 10, 11, 13, 15), or --check yours against the reference",
        description="Without --check: write the lesson's starter file (the function's signature, the task, a TODO) "
        "to the current folder. With --check FILE[:FUNCTION]: run your function on the lesson's examples and on "
        "hidden ones and compare it with the reference: 4 the mask strategy (every answer trained), 8 TRL's "
        "completion-only labels (only the last answer), 10 the copy labels with the padding masked (pad == eos, "
        "no attention_mask), 11 TRL's collator on packed rows, 13 each label's weight in an optimizer step, 15 the "
        "final answer after the tool calls (the final turn policy) on conversations through two chat templates. "
        "8, 11 and 13 load the model: TRL's SFTTrainer gives their reference. The file's code runs in a separate "
        "process, stopped after --labels-timeout seconds per example; a file is loaded only when named here.",
    )
    common(p, data=False)
    p.add_argument("number", metavar="N", help="lesson number (4, 8, 10, 11, 13 or 15) or id")
    p.add_argument(
        "--check",
        metavar="FILE[:FUNCTION]",
        nargs="?",
        const="",
        default=None,
        help="check your function (default: the starter file's name in this folder; FUNCTION defaults to the exercise's: make_labels, packed_labels, token_weights, final_answer_labels)",
    )
    labels_timeout_option(p)
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the starter file (default exercise_N_ID.py)")
    p.add_argument("--force", action="store_true", help="write the starter file over an existing one")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inspector.cli.lesson import pick_lesson
    from inspector.core.exercises.registry import exercise_for, write_starter
    from inspector.core.lessons.model import load_lessons

    lessons = load_lessons()
    number, lesson = pick_lesson(lessons, args.number)
    exercise = exercise_for(lesson, number, lessons)
    if args.check is None:
        path = write_starter(exercise, Path(args.output or exercise.file_name(number)).expanduser(), force=args.force)
        status(f"wrote the exercise of lesson {number} ({lesson.title}) to {path}")
        print(f"edit {exercise.function} in {path}, then check it: causallm-inspect exercise {number} --check {path}")
        watch = "its labels" if exercise.strategy else "its check"
        print(f"or watch {watch} in the app as you save: causallm-inspect --labels-from {path}")
        return 0
    from inspector.core.labels.process.protocol import LabelSource

    spec = args.check or exercise.file_name(number)
    source = LabelSource.parse(spec)
    if ":" not in spec.replace(str(source.path), "", 1):
        source = LabelSource(source.path, exercise.function)
    if not source.path.exists():
        raise InspectorError(
            f"there is no file {source.path} to check",
            f"write the starter with: causallm-inspect exercise {number}, or give --check FILE",
        )
    fn = load_function(source, args, exercise.function_kind)  # a file that does not load: exit 2 with the user's traceback
    # Exercises 8, 11 and 13 are checked against TRL's trainer on the model; 4, 10 and 15 need its tokenizer only.
    loaded, markers = load(args, tokenizer_only=not exercise.needs_model)
    from inspector.core.exercises.registry import check_exercise

    if exercise.needs_model:
        status(f"asking TRL's SFTTrainer for the reference on the {exercise.unit}")
    report = check_exercise(
        exercise, number, lesson, fn, loaded.tokenizer, markers, model_name=loaded.name,
        model=loaded.model if exercise.needs_model else None, device=str(loaded.device),
    )
    if args.json:
        dump({"model": loaded.name, **report.to_dict()})
    else:
        print(report.text())
    sys.stdout.flush()
    return 0 if report.passed else 1
