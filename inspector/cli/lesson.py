"""`causallm-inspect lesson N` and `causallm-inspect export N`: the lessons without the app.

`lesson N` prints a lesson's prose, then its live view computed as text (the labels, a
burst per epoch, or teacher-forced predictions), then its demo panel. `export N` writes
the code behind the lesson as a standalone script, or with `--notebook` a notebook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.cli.options import (
    check_batch_config,
    check_data_early,
    common,
    dump,
    load,
    per_step,
    status,
    template,
    train_rows_option,
)
from inspector.core.errors import InspectorError
from inspector.core.lab.context import lesson_epochs
from inspector.core.lessons.model import Lesson, load_lessons

if TYPE_CHECKING:
    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.data.examples import Example
    from inspector.core.models import LoadedModel


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lesson", help="a lesson headless: its prose and its computed views as text")
    common(p)
    p.add_argument("number", metavar="N", help="lesson number (1, 2, ...) or id")
    p.add_argument("--plain", action="store_true", help="plain text, no colours (the default when not a terminal)")
    train_rows_option(p)
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="a `trl sft --config` YAML: the batch view's step (lessons 11 and 13) is built with its settings "
        "under the lesson's, as in the app",
    )
    p.set_defaults(run=run_lesson)

    p = sub.add_parser("export", help="a lesson's code as a standalone script that runs on its own")
    common(p, json_flag=False)
    p.add_argument("number", metavar="N", help="lesson number (1, 2, ...) or id")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write it (default: print it)")
    p.add_argument("--notebook", action="store_true", help="write a Jupyter notebook (.ipynb) instead of a script")
    p.set_defaults(run=run_export)


def pick_lesson(lessons: list[Lesson], wanted: str) -> tuple[int, Lesson]:
    """A lesson by its number (1-based) or its id."""
    ids = ", ".join(lesson.id for lesson in lessons)
    if wanted.strip().isdigit():
        n = int(wanted)
        if 1 <= n <= len(lessons):
            return n, lessons[n - 1]
        raise InspectorError(f"there is no lesson {n}", f"choose a number from 1 to {len(lessons)}, or an id ({ids})")
    for i, lesson in enumerate(lessons):
        if lesson.id == wanted.strip():
            return i + 1, lesson
    raise InspectorError(
        f"there is no lesson {wanted!r}", f"choose a number from 1 to {len(lessons)}, or an id ({ids})"
    )


def _heading(text: str) -> str:
    return f"\n{'=' * 8} {text} {'=' * max(4, 70 - len(text))}"


# --- lesson N ------------------------------------------------------------------------------


class LessonRun:
    """Everything one `lesson N` run computes, printed as it goes (or kept for --json);
    `scripts/lesson_times.py` times `compute` to measure a lesson's live seconds."""

    def __init__(
        self, args: argparse.Namespace, lesson: Lesson, loaded: LoadedModel, template: TurnMarkers, examples: list[Example]
    ) -> None:
        from inspector.cli.turns import use_policy_rows
        from inspector.core.lab import Lab

        self.args, self.lesson = args, lesson
        # The lesson's context and bursts, the app's: the same Lab, the same training rows.
        self.lab = Lab.around(loaded, examples, template, train_rows=args.train_rows)
        use_policy_rows(self.lab, args)  # the rows --turn-policy trains
        self.lab.use_batch_config(args.config)
        self.example = self.lab.lesson_example(lesson)
        self.epochs = lesson_epochs(lesson)
        self.json: dict[str, Any] = {}

    def prepared(self) -> Any:
        """Which of what `prepare --lessons N` records for the lesson is stored for this model and
        these rows, with the lesson's burst settings (a `PreparedState`)."""
        from inspector.core.training.burst import BurstSettings

        return self.lab.prepared_state(self.lesson, BurstSettings(epochs=self.epochs))

    def say(self, text: str = "") -> None:
        if not self.args.json:
            print(text, flush=True)

    def compute(self) -> dict[str, float]:
        """The lesson's view (its bursts where it trains, unless its demo covers it), then its demo;
        returns the wall seconds of the bursts ("bursts") and of the demo ("demo") where it ran them."""
        import time

        from inspector.core.lessons.demos import DEMOS

        lesson = self.lesson
        covered = lesson.demo is not None and DEMOS[lesson.demo].covers_view
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        if lesson.view == "labels":
            self.labels()
        elif lesson.view == "batch":
            self.batch()
        elif not covered:
            self.training(full_table=lesson.view == "predictions")
            seconds["bursts"] = time.perf_counter() - start
        if lesson.demo:
            start = time.perf_counter()
            self.demo()
            seconds["demo"] = time.perf_counter() - start
        return seconds

    # --- the views -------------------------------------------------------------------

    def labels(self) -> None:
        from inspector.core.labels.strategies import differing_positions
        from inspector.core.reports.tables import labels_table

        wanted = ("mask", "trl") if self.lesson.strategy == "trl" else (self.lesson.strategy,)
        # The Lab labels a text as the app's labels view does; trl (an SFTTrainer) only where wanted.
        from inspector.core.lab.context import lesson_text

        shown = lesson_text(self.lesson, self.lab) or self.example.source  # a conversation: as the app shows it
        self.say(_heading(f"labels: {self.lesson.strategy}"))
        try:
            every = self.lab.labels(shown, cancelled=lambda: "trl" not in wanted)
        except InspectorError as exc:  # the lesson's own conversation, too long for a small model: its demo still runs
            if not self.lesson.messages:
                raise
            self.say(f"the lesson's conversation cannot be labelled on this model: {exc.problem}. {exc.fix}.")
            self.json["labels_error"] = exc.problem
            return
        found = {s: every[s] for s in wanted}
        self.say(f"text: {self.example.text!r}")
        self.say(labels_table(found[self.lesson.strategy]))
        self.say()
        if len(found) == 2:
            from inspector.core.lessons.demo_report import compact_labels

            self.say(f"mask labels: {compact_labels(found['mask'].labels)}")
            self.say(f"trl labels:  {compact_labels(found['trl'].labels)}")
            differ = differing_positions(found["mask"], found["trl"])
            self.say(
                f"positions where mask and trl differ: {differ}" if differ else "mask and trl agree on every position"
            )
            self.json["differing_positions"] = differ
        self.json["labels"] = {s: lab.to_dict() for s, lab in found.items()}

    def _burst(self, strategy: str) -> None:
        """The Lab's live burst of `strategy` (on a copy of the model), the lesson's epochs."""
        from inspector.core.training.burst import BurstSettings

        settings = BurstSettings(epochs=self.epochs)
        prompt, answer = self.lab.holdout(settings)
        self.say(f"{strategy}: held-out prompt {prompt!r}")
        self.say(f"untrained answer: {answer!r}")

        def on_epoch(log: Any) -> None:
            self.say(f"epoch {log.epoch:>3}  loss {log.loss:8.4f}  held-out: {log.holdout!r}")

        result = self.lab.burst(strategy, settings, on_epoch=on_epoch)
        assert result is not None  # live: a command never replays
        self.say(
            f"{strategy}: {len(result.steps)} steps in {result.train_runtime:.1f} s{per_step(result)}, "
            f"{result.tokens_per_second:.0f} tokens/s, {result.trained_tokens} of {result.input_tokens} tokens trained"
        )
        if result.epoch_loss is not None:
            self.say(f"{strategy}: epoch loss {result.epoch_loss:.4f} (the mean step loss of the last epoch)")
        self.json.setdefault("bursts", {})[strategy] = result.to_dict()

    def training(self, full_table: bool = False) -> None:
        """The Lab's bursts of the lesson's strategies, then its predictions and learning of the held-out example."""
        from inspector.core.reports.tables import predictions_summary, predictions_table

        text = self.lab.predicted_text()
        self.lab.learning(text)  # watched from each burst's start, as the app's learning view
        for strategy in self.lesson.trains:
            self.say(_heading(f"training: {strategy}, {self.epochs} epochs"))
            self._burst(strategy)
        found = self.lab.predictions(text)
        answer = found.answer
        self.say(_heading("teacher-forced predictions of the held-out example"))
        self.say(f"text: {self.lab.formatted_for(text).text!r}")
        predictions = {name: found.rows[name] for name in ("untrained", *self.lesson.trains)}
        for name, rows in predictions.items():
            self.say(predictions_summary(rows, answer, name))
        if full_table:
            name = self.lesson.strategy if self.lesson.strategy in predictions else list(predictions)[-1]
            self.say()
            self.say(predictions_table(predictions[name], title=f"{name}, position by position"))
        self.json["predictions"] = {n: [r.to_dict() for r in rows] for n, rows in predictions.items()}
        self._learning(self.lab.learning(text).curves, answer)

    def _learning(self, curves: dict[str, Any], answer: frozenset[int]) -> None:
        """The learning view (F5) as text: p(true next token) per position after every epoch."""
        from inspector.core.training.learning import heat_map_lines

        if not curves:
            return
        self.say(_heading("epoch by epoch: p(true next token) of the held-out example (the app's F5)"))
        self.say("one line per epoch (0: untrained), a shade per position: ' ░▒▓█' by fifths of p; ^: the answer")
        for curve in curves.values():
            self.say(f"{curve.name}:")
            self.say("\n".join(heat_map_lines(curve.epochs, answer)))
        for curve in curves.values():
            self.say(curve.summary(answer))
        self.json["learning"] = {
            s: {
                "summary": c.summary(answer),
                "epochs": [{"epoch": e, "p_target": [r.p_target for r in rows]} for e, rows in sorted(c.epochs.items())],
            }
            for s, c in curves.items()
        }

    def batch(self) -> None:
        """The batch view (F6) as text: step 1 of an SFTTrainer as the app's Lab builds it, from the
        training rows (numbered as in the file) with the lesson's batch settings and --config."""
        from inspector.core.batches.report import format_view

        view = self.lab.batch_step(self.lesson.batch_flags, world_size=self.lesson.batch_world_size)
        self.say(_heading("batch: step 1 as TRL's SFTTrainer builds it"))
        self.say(format_view(view))
        self.json["batch"] = view.to_dict()

    def demo(self) -> None:
        """The lesson's demo panel, as the app's Lab runs it (live: a command never replays)."""
        from inspector.core.lessons.demos import DEMOS

        assert self.lesson.demo is not None
        spec = DEMOS[self.lesson.demo]
        self.say(_heading(f"demo: {spec.title}"))
        if spec.on_demand:
            status(f"running the demo (it trains): {spec.title}")
        result = self.lab.demo(self.lesson, progress=status, again="close other programs and run this command again")
        self.say(result.text)
        self.json["demo"] = {"name": result.name, "title": result.title, "text": result.text}


def run_lesson(args: argparse.Namespace) -> int:
    number, lesson = pick_lesson(load_lessons(), args.number)
    examples = check_data_early(args)
    check_batch_config(args)
    loaded, markers = load(args)
    run = LessonRun(args, lesson, loaded, markers, examples)
    from inspector.core.lessons.facts import header_lines, version_notes

    if not args.json:
        _print_prose(lesson, number, header_lines(lesson, number, prepared=run.prepared()),
                     plain=args.plain or not sys.stdout.isatty())
    run.json["versions"] = [
        {"library": n.library, "describes": n.described, "installed": n.installed, "differs": n.differs}
        for n in version_notes(lesson)
    ]
    with run.lab:
        run.compute()
    if args.json:
        dump(
            {
                "lesson": {"number": number, "id": lesson.id, "title": lesson.title, "view": lesson.view},
                "model": loaded.name,
                **run.json,
            }
        )
    return 0


def _print_prose(lesson: Lesson, number: int, header: list[str], *, plain: bool) -> None:
    """The title, the lines the app shows above the prose (versions described and installed; for a
    lesson that trains, how long it takes live and whether a prepared run exists), the prose."""
    if plain:
        print(f"Lesson {number}: {lesson.title}\n")
        if header:
            print("\n".join(header) + "\n")
        print(lesson.body.rstrip())
        return
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.text import Text

    console = Console()
    console.print(Markdown(f"*Lesson {number}*"))
    for line in header:
        console.print(Text(line, style="bold" if line.startswith("⚠") else "dim"))
    console.print(Markdown(lesson.body))


# --- export N ------------------------------------------------------------------------------


def run_export(args: argparse.Namespace) -> int:
    from inspector.core.lessons.code import CodeSpec, notebook_json, render_code

    number, lesson = pick_lesson(load_lessons(), args.number)
    examples = check_data_early(args)
    model = args.model
    if model and not Path(model).expanduser().exists() and (model.startswith(("/", ".", "~")) or model.count("/") > 1):
        raise InspectorError(f"the model folder {model} does not exist", "check the path given to --model")
    spec = CodeSpec(
        model=model,
        device=args.device or "auto",
        examples=tuple(e.text for e in examples),
        template=template(args),
        bos_token=args.bos_token,
        eos_token=args.eos_token,
    )
    code = render_code(lesson, number, spec)
    text = notebook_json(code, lesson, number) if args.notebook else code
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = Path(args.output).expanduser()
    if out.is_dir():
        raise InspectorError(f"{args.output} is a folder", "give a file name to -o, e.g. lesson.py")
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InspectorError(
            f"{args.output} could not be written ({exc.strerror})", "choose another path for -o"
        ) from exc
    run = f"jupyter lab {out}" if args.notebook else f"python {out}"
    status(f"wrote lesson {number} ({lesson.title}) to {out}; run it with: {run}")
    return 0
