"""The lab: one model, its examples and one burst source per strategy, behind every front end.

A `Lab` owns the loaded model, the formatted examples (and the slice the bursts train on),
the locks that let the app's workers share the model and the lesson context
(`inspector.core.lab.context`), and composes three parts, each owning its state: `bursts`
(`Bursts`: a source per strategy, live or a prepared run's replay, their locks, refusals,
reset), `prediction_cache` (`PredictionCache`: teacher-forced rows, the texts watched) and
`demos` (`Demos`: a lesson's panel, live or replayed). The parts read the Lab as a
`Workbench` and import no Lab; front ends ask the Lab only, which hands the work on. With
`--run DIR`, `recording` (`RecordingSource`) gives the batch view a run's recorded steps.
The app drives one from its workers; `train`, `predict`, `lesson N` and `prepare` build one
around the model they loaded. No UI here: the callers pass callbacks and show what comes back.

Threads: the untrained model is read under `base_lock`; a strategy's source is used under
its own lock; HF trainers are made and run one at a time (`one_trainer`), always before
the other locks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import ARTICLE_MARKERS, FormattedExample, TurnMarkers
from inspector.core.data.examples import Example, article_examples
from inspector.core.errors import InspectorError
from inspector.core.lab import context
from inspector.core.lab.bursts import Bursts
from inspector.core.lab.label_host import LabelHost
from inspector.core.lab.lesson_demos import DemoOutcome, Demos
from inspector.core.lab.policy import TurnPolicy
from inspector.core.lab.prediction_cache import PredictionCache, Predictions
from inspector.core.lab.turns import TrainerTurn
from inspector.core.labels.strategies import CUSTOM, display_name, strategies_with
from inspector.core.training.burst import BurstResult, BurstSettings
from inspector.core.training.predictions import DEFAULT_TOP_K

if TYPE_CHECKING:
    from inspector.core.batches.step_types import StepView
    from inspector.core.data.examples import RowProblem
    from inspector.core.exercises.check_report import CheckReport
    from inspector.core.exercises.registry import FoundExercise
    from inspector.core.lab.policy import TurnsShown
    from inspector.core.lab.recorded import RecordingSource
    from inspector.core.labels.process.code_errors import LabelCodeError
    from inspector.core.labels.process.parent import LabelFunction
    from inspector.core.labels.reload import LabelReloader
    from inspector.core.lessons.code import CodeSpec
    from inspector.core.lessons.demos import DemoContext
    from inspector.core.lessons.facts import PreparedState
    from inspector.core.lessons.model import Lesson
    from inspector.core.models import LoadedModel
    from inspector.core.reports.data_report import DataReport
    from inspector.core.training.learning import Learning
    from inspector.core.training.session import TrainingSession

__all__ = ["Lab", "Loaded", "Predictions"]


@dataclass
class Loaded:
    """What `Lab.load` found: the examples it could not format, and the strategies with prepared runs."""

    problems: list[RowProblem] = field(default_factory=list)
    data_error: str | None = None  # no example could be formatted: no training until fixed
    prepared: list[str] = field(default_factory=list)


class Lab:
    """The model, the examples and the strategies' burst sources (see the module's docstring)."""

    def __init__(
        self,
        model_spec: str | None = None,
        *,
        device: str = "auto",
        examples: Sequence[Example | str] | None = None,
        template: TurnMarkers | None = None,
        trust_remote_code: bool = False,
        bos_token: str | None = None,
        eos_token: str | None = None,
        train_rows: int | None = None,
        labels_from: LabelReloader | None = None,
        custom: LabelFunction | None = None,
        in_place: bool = False,
        batch_config: str | None = None,
        exercise: FoundExercise | None = None,
        turn_policy: str = "all",
        inference_template: str | None = None,
        recording: RecordingSource | None = None,
    ) -> None:
        self.model_spec = model_spec
        self.turn_policy = TurnPolicy(turn_policy, inference_template)  # which turns train, and beside what
        self.batch_config = batch_config  # a `trl sft --config` YAML the batch view starts from
        self.recording = recording  # --run DIR: the batch view shows its recorded steps instead
        # --labels-from: the user's label function (the `custom` strategy, or an exercise's own),
        # reloaded on save (the app), or loaded once (`custom`, a command).
        self.label_host = LabelHost(labels_from, custom, exercise)
        # A command's one burst trains the loaded model itself, not a copy: the untrained model's
        # rows are those computed before it (`predictions`, `learning`), and one strategy trains.
        self.in_place = in_place
        self.device = device
        self.template = template or ARTICLE_MARKERS
        self.examples = [
            e if isinstance(e, Example) else Example(e, i + 1, "given")
            for i, e in enumerate(examples or article_examples(self.template))
        ]
        self.trust_remote_code = trust_remote_code
        self.special_tokens = {"bos_token": bos_token, "eos_token": eos_token}
        self.train_rows = len(self.examples) if train_rows is None else train_rows
        self.loaded: LoadedModel | None = None
        self.formatted: list[FormattedExample] = []  # the examples the bursts train (under the turn policy)
        self.train_examples: list[Example] = []  # the same, as read
        self._read: tuple[list[Example], list[FormattedExample]] = ([], [])  # the same before the policy
        self._extra_examples: dict[str, Example] = {}  # data rows read on demand (past the rows kept)
        self._formatted_by_text: dict[str, FormattedExample] = {}
        self._examples_lock = threading.Lock()  # for the two above: a worker adds a row read on demand
        self.base_lock = threading.Lock()  # the untrained model: read by labels, predictions, copies
        self.one_trainer = TrainerTurn()  # `with lab.one_trainer():` HF trainers one at a time
        self.data_error: str | None = None  # no example could be formatted: no training until fixed
        self.closing = threading.Event()  # set on quit: bursts and demos end after their current step
        # The parts: each owns its state and reads this lab through `Workbench`.
        self.bursts = Bursts(self, base_lock=self.base_lock, one_trainer=self.one_trainer,
                             on_new_source=lambda source: self.prediction_cache.watch_source(source))
        self.prediction_cache = PredictionCache(self, self.bursts, base_lock=self.base_lock)
        self.demos = Demos(self, base_lock=self.base_lock, one_trainer=self.one_trainer)

    @classmethod
    def around(
        cls,
        loaded: LoadedModel,
        examples: Sequence[Example | str],
        template: TurnMarkers,
        *,
        train_rows: int,
        custom: LabelFunction | None = None,
        in_place: bool = False,
    ) -> Lab:
        """A lab around a model loaded already (a command's), its examples formatted strictly;
        the bursts train the first `train_rows` of them."""
        from inspector.core.data.examples import format_examples

        lab = cls(loaded.name, device=loaded.device, examples=examples, template=template, train_rows=train_rows,
                  custom=custom, in_place=in_place)
        lab.loaded = loaded
        formatted = format_examples(lab.examples, loaded.tokenizer, lab.template, loaded.name)
        lab._formatted_by_text = {ex.text: fe for ex, fe in zip(lab.examples, formatted)}
        lab.train_examples, lab.formatted = list(lab.examples[:train_rows]), formatted[:train_rows]
        lab._read = (lab.train_examples, lab.formatted)  # the turn policy all: as read
        return lab

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the model and the examples ---------------------------------------------------------

    def load(self, progress: Callable[[str], None] | None = None) -> Loaded:
        """Load the model, format the examples (a row that cannot be is a problem, not an error)."""
        from inspector.core.models import load_model

        loaded = load_model(
            self.model_spec,
            device=self.device,
            trust_remote_code=self.trust_remote_code,
            progress=progress or (lambda text: None),
            **self.special_tokens,
        )
        return self.use(loaded)

    def use(self, loaded: LoadedModel) -> Loaded:
        """Work on this model: format the examples for it (leniently) and keep the training slice."""
        from inspector.core.data.examples import format_leniently
        from inspector.core.runs.store import stored_runs_of

        pairs, problems = format_leniently(self.examples, loaded.tokenizer, self.template, loaded.name)
        self._formatted_by_text = {ex.text: fe for ex, fe in pairs}
        self._read = ([ex for ex, _ in pairs[: self.train_rows]], [fe for _, fe in pairs[: self.train_rows]])
        try:
            self.train_examples, self.formatted = self.turn_policy.rows(*self._read, loaded.tokenizer)
        except InspectorError as exc:  # the inference template cannot split a row: no training until fixed
            self.loaded, self.data_error = loaded, str(exc)
            return Loaded(problems, data_error=self.data_error)
        try:
            prepared = stored_runs_of(loaded)
        except OSError:  # an unreadable store: nothing to replay
            prepared = []
        self.loaded = loaded
        if not pairs:  # bad data: the model is still good for the lessons
            self.data_error = str(problems[0])
            return Loaded(problems, data_error=self.data_error)
        return Loaded(problems, prepared=prepared)

    @property
    def model(self) -> LoadedModel:
        if self.loaded is None:
            raise InspectorError("the model is not loaded yet", "wait for it to load")
        return self.loaded

    def formatted_for(self, text: str) -> FormattedExample:
        """The formatted example behind a shown text: a data row as training formats it (a
        conversation through its chat template), else the text with the article's special tokens."""
        from inspector.core.data.chat_format import add_special_tokens
        from inspector.core.data.examples import format_examples

        with self._examples_lock:
            if text in self._formatted_by_text:
                return self._formatted_by_text[text]
            extra = self._extra_examples.get(text)
        lm = self.model
        if extra is not None:  # a data row read on demand: formatted as training would
            (fe,) = format_examples([extra], lm.tokenizer, self.template, lm.name)
            with self._examples_lock:
                self._formatted_by_text[text] = fe
            return fe
        tok = lm.tokenizer
        return add_special_tokens(text, tok.bos_token, tok.eos_token, self.template, model_name=lm.name)

    def set_turn_policy(self, policy: str) -> None:
        """Train (and show) under another turn policy: the rows made again (an InspectorError where
        the inference template cannot split one: the policy stays). Off the UI thread: it renders."""
        rows = self.turn_policy.rows(*self._read, self.model.tokenizer, policy)
        self.turn_policy.policy = policy
        self.train_examples, self.formatted = rows

    def shown_rows(self, text: str, policy: str | None = None) -> list[FormattedExample]:
        """The rows the turn policy (or `policy`) makes of a shown text (split: one per assistant turn)."""
        return self.turn_policy.parts(self.formatted_for(text), self.model.tokenizer, policy)

    def turns(self, labeled: Any) -> TurnsShown:
        """Training beside inference, turn by turn, for a labelled row (`TurnPolicy.turns`)."""
        return self.turn_policy.turns(labeled, self.model.tokenizer)

    def add_example(self, example: Example) -> None:
        """A data row read on demand (past the rows kept), formatted as training would (any thread)."""
        with self._examples_lock:
            self._extra_examples[example.text] = example

    def check_data(self, reading: dict[str, Any], progress: Callable[[int], None] | None = None) -> DataReport:
        """`inspect-data`'s report on the file the examples came from (`reading`: its `path` and how it
        was read), for copy and mask in this lab's turn markers; `progress` hears the rows done."""
        from inspector.core.reports.data_report import inspect_data

        options, lm = {k: v for k, v in reading.items() if k not in ("path", "more")}, self.model
        return inspect_data(reading["path"], lm, strategies=("copy", "mask"), template=self.template,
                            max_length=lm.max_length, batch_size=64, progress=progress, **options)

    @staticmethod
    def problem_words(kind: str) -> tuple[str, str]:
        """What a data problem of this kind means, and its fix (`inspect-data`'s words)."""
        from inspector.core.reports.data_report import FIXES, PROBLEMS

        return PROBLEMS.get(kind, ""), FIXES.get(kind, "")

    # --- the strategies, and the user's label function (its host: `label_host`) -----------

    @property
    def custom(self) -> LabelFunction | None:
        """The user's label strategy (`LabelHost.custom`), or None."""
        return self.label_host.custom

    @property
    def strategies(self) -> tuple[str, ...]:
        """copy, mask, trl, and custom where a label function is given."""
        return strategies_with(self.custom)

    def name_of(self, strategy: str) -> str:
        """What the views call a strategy: its name, or the label function's for custom."""
        return display_name(strategy, self.custom)

    def reload_labels(self) -> LabelFunction | LabelCodeError | None:
        """The label function's file changed (or may have): its new version, its error, or None
        (`LabelHost.reload`). Runs the user's code (in the label process): call it off the UI thread."""
        return self.label_host.reload(self.loaded, self.formatted)

    def hand_over_tokenizer(self) -> None:
        """Hand the tokenizer to the label process ahead of the first call of the user's function."""
        if self.loaded is not None:
            self.label_host.hand_over(self.loaded.tokenizer)

    def stale(self, strategy: str) -> bool:
        """A custom strategy trained on an earlier version of the label function than the one loaded."""
        session = self.sessions.get(strategy)
        return strategy == CUSTOM and session is not None and session.steps_done > 0 and session.is_stale(self.custom)

    def exercise_check(self) -> CheckReport | None:
        """The check of the exercise the label function's file is the starter of, or None
        (`LabelHost.check`); exercises 11 and 13 build their cases in a trainer turn."""
        return self.label_host.check(self.loaded, self.template, self._trainer_turn)

    @contextmanager
    def _trainer_turn(self) -> Iterator[None]:
        with self.one_trainer(), self.base_lock:
            yield

    def packed_row_labels(self, view: StepView, micro_batch: int, batch_row: int) -> Any:
        """Exercise 11's `packed_labels` on one row of a batch view's step (`LabelHost.packed_row_labels`).
        Runs the user's code: off the UI thread."""
        return self.label_host.packed_row_labels(self.loaded, view, micro_batch, batch_row)

    # --- the lesson context -----------------------------------------------------------------

    def holdout(self, settings: BurstSettings) -> tuple[str, str]:
        """The held-out prompt a burst of `settings` answers, and the untrained model's answer (`Bursts.holdout`)."""
        return self.bursts.holdout(settings)

    def batch_step(self, flags: dict[str, Any], *, step: int = 1, world_size: int = 1) -> StepView:
        """The micro-batches of one optimizer step as TRL's SFTTrainer builds them from the
        training rows with these SFTConfig flags (a `core.batches.step_types.StepView`). Builds a
        trainer (no training) on the untrained model: one trainer at a time."""
        from inspector.core.batches.steps import build_step

        if not self.formatted:
            raise InspectorError("there are no training rows to batch", "give --data rows that can be formatted")
        rows = [ex.row for ex in self.train_examples]
        source = f"the {len(rows)} training rows"
        with self.one_trainer(), self.base_lock:
            return build_step(self.model, self.formatted, rows, source, flags, step=step, world_size=world_size,
                              config_file=self.batch_config)

    def batch_defaults(self) -> dict[str, Any]:
        """The SFTConfig values the batch config sets (none without one)."""
        from inspector.core.batches.setup import given_values

        return given_values(self.batch_config, {}) if self.batch_config else {}

    def predicted_text(self) -> str:
        return context.predicted_text(self.template)

    def lesson_example(self, lesson: Lesson) -> FormattedExample:
        return context.lesson_example(lesson, self.model, self.template, self.formatted)

    def demo_context(self, lesson: Lesson, **options: Any) -> DemoContext:
        """The context of a lesson's demo; `options` as `context.demo_context` takes them."""
        return self.demos.context(lesson, **options)

    def prepared_state(self, lesson: Lesson, settings: BurstSettings) -> PreparedState:
        """What `prepare --lessons N` records for the lesson (its view's bursts, its slow demo) and which
        of it is stored for the model in use, the training rows and these burst settings (its demo's
        context built with them, as the app's demo panel builds it). Reads the store: off the UI thread."""
        from inspector.core.lessons.facts import PreparedState, lesson_bursts, prepared_demo
        from inspector.core.runs import store

        needed: list[str] = []
        found: dict[str, float | None] = {}  # what is needed -> when it was recorded (None: not stored)
        for strategy in lesson_bursts(lesson):
            needed.append(f"{strategy} run")
            run, _ = store.find(self.model, self.formatted, strategy, settings, self.predicted_text(), explain=False)
            found[needed[-1]] = None if run is None else run.created
        demo = prepared_demo(lesson)
        if demo is not None:
            needed.append(f"demo {demo}")
            try:
                ctx = self.demo_context(lesson, epochs=settings.epochs, learning_rate=settings.learning_rate,
                                        seed=settings.seed)
                stored, _ = store.find_demo(self.model, ctx, demo)
            except InspectorError:  # no example to run it on: nothing stored for it either
                stored = None
            found[needed[-1]] = None if stored is None else stored.created
        missing = tuple(what for what in needed if found[what] is None)
        return PreparedState(tuple(needed), missing, min((t for t in found.values() if t is not None), default=None))

    def code_spec(self) -> CodeSpec:
        """What the exported code of a lesson needs to know of this lab (`causallm-inspect export`)."""
        from inspector.core.lessons.code import CodeSpec

        return CodeSpec(model=self.model_spec, device=self.device, examples=tuple(e.text for e in self.examples),
                        template=self.template, **self.special_tokens)

    @property
    def trainer_busy(self) -> bool:  # a burst, a demo or TRL's labels hold the trainer turn right now
        return self.one_trainer.busy

    # --- labels -----------------------------------------------------------------------------

    def labels(
        self, text: str, partial: Callable[[dict[str, Any]], None] | None = None, cancelled: Callable[[], bool] = bool,
        policy: str | None = None, part: int = 0,
    ) -> dict[str, Any]:
        """The labels of `text` under every strategy: copy, mask and custom at once (the tokenizer
        and the user's code, given to `partial` first), then trl (TRL makes an SFTTrainer: after a
        running burst). Where the user's function fails on this text, "custom" holds its
        LabelCodeError instead of labels.

        An InspectorError of trl comes back as the error of the strategy, under "trl:error".
        `part`: which of the rows the turn policy (or `policy`) makes of the text (`shown_rows`).
        """
        from inspector.core.labels.strategies import label_examples

        lm = self.model
        rows = self.shown_rows(text, policy)
        fe = rows[min(part, len(rows) - 1)]
        found: dict[str, Any] = {
            s: label_examples(s, [fe], lm.tokenizer, max_length=lm.max_length)[0] for s in ("copy", "mask")
        }
        custom = self.custom
        if custom is not None:
            from inspector.core.labels.process.code_errors import LabelCodeError

            try:
                found[CUSTOM] = label_examples(CUSTOM, [fe], lm.tokenizer, max_length=lm.max_length, custom=custom)[0]
            except LabelCodeError as exc:  # the user's code failed on this text: theirs to see, not ours
                found[CUSTOM] = exc
        if partial is not None:
            partial(dict(found))
        if cancelled():
            return found
        with self.one_trainer(), self.base_lock:
            found["trl"] = label_examples("trl", [fe], lm.tokenizer, lm.model, max_length=lm.max_length)[0]
        return found

    def roles(self, text: str, policy: str | None = None, part: int = 0) -> list[str] | None:
        """Each token's role (`roles.token_roles`: user, reasoning, tool_call...) in a chat template's render, else None."""
        from inspector.core.data.roles import token_roles
        from inspector.core.labels.strategies import encode

        rows = self.shown_rows(text, policy)
        fe = rows[min(part, len(rows) - 1)]
        _, offsets = encode(fe, self.model.tokenizer)
        return token_roles(fe, offsets, self.model.tokenizer)

    # --- bursts (`self.bursts`) ---------------------------------------------------------------

    @property
    def sessions(self) -> dict[str, TrainingSession]:
        """The strategies trained live, and their sessions."""
        return self.bursts.sessions

    @property
    def training_now(self) -> str | None:  # the strategy a burst trains (or replays) right now
        return self.bursts.training_now

    def replaying(self, strategy: str) -> bool:
        return self.bursts.replaying(strategy)

    def settings_of(self, strategy: str) -> BurstSettings | None:  # those it was first trained with live
        return self.bursts.settings_of(strategy)

    def source_label(self, strategy: str) -> str:
        """Where the strategy's bursts come from, in words ("live", or the prepared run it replays)."""
        return self.bursts.label_of(strategy)

    def epoch_rows(self, strategy: str, text: str) -> dict[int, list[Any]]:
        """`text`'s teacher-forced rows after each epoch the strategy trained or replayed (a text watched)."""
        return self.bursts.epoch_rows(strategy, text)

    def refusal(self, strategy: str, speed: float | None) -> tuple[str, str] | None:
        """Why a burst of `strategy` cannot run now (`Bursts.refusal`), or None."""
        return self.bursts.refusal(strategy, speed)

    def burst(self, strategy: str, settings: BurstSettings, **options: Any) -> BurstResult | None:
        """`settings.epochs` more epochs of `strategy`, None when a replay has no more; `options` are
        `Bursts.burst`'s (the replay `speed`, on_start, on_step, on_epoch, should_stop, tell)."""
        return self.bursts.burst(strategy, settings, **options)

    def reset(self) -> None:
        """Every strategy back to the untrained model: forget the rows, close every source, give the memory back."""
        self.prediction_cache.clear()
        self.bursts.reset()

    def close(self) -> None:
        """The app is quitting: running bursts and demos end after their current step; then reset."""
        self.closing.set()
        self.reset()
        self.label_host.close()  # the label process and whatever your function is doing in it

    # --- predictions and learning (`self.prediction_cache`) ------------------------------------

    def predictions(self, text: str, top_k: int = DEFAULT_TOP_K) -> Predictions:
        """Teacher-forced rows of the untrained model and of every strategy trained or replayed."""
        return self.prediction_cache.predictions(text, top_k)

    def watch(self, text: str) -> None:
        """Record `text`'s rows after every epoch from now on, in every source (`learning`)."""
        self.prediction_cache.watch(text)

    def learning(self, text: str) -> Learning:
        """Per strategy, `text`'s teacher-forced rows after every epoch (0: untrained) and the losses."""
        return self.prediction_cache.learning(text)

    def default_texts(self) -> list[str]:
        """The texts every live source watches: the held-out example, then the first training example."""
        return self.prediction_cache.default_texts()

    # --- demos (`self.demos`) ---------------------------------------------------------------------

    def demo(self, lesson: Lesson, **options: Any) -> DemoOutcome:
        """The lesson's demo, run now or replayed from a prepared run, under its own locks; `options`
        are `Demos.run`'s (epochs, learning_rate, seed, prepared, the callbacks, again, waiting)."""
        return self.demos.run(lesson, **options)

    def use_batch_config(self, config: str | None) -> None:
        """Build the batch steps from this `trl sft --config` YAML, as the app's --config does
        (`lesson N --config`, whose lab is made `around` its model)."""
        self.batch_config = config
