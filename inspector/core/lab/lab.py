"""The lab: one model, its examples and one burst source per strategy, behind every front end.

A `Lab` owns the loaded model, the formatted examples (and the slice the bursts train on),
one `BurstSource` per strategy (live training, or the replay of a prepared run), the cache
of teacher-forced predictions, the locks that let the app's workers share the model, and
the lesson context (`inspector.core.lab.context`). This class is the facade; the work is
done by concept in `bursts` (sources, locks, refusals, reset), `predictions` (one cache for
the predictions and the learning curves) and `demos` (a lesson's panel, live or replayed).
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

from inspector.core.data.chat_format import ARTICLE_TEMPLATE, ChatTemplate, FormattedExample
from inspector.core.data.examples import Example, article_examples
from inspector.core.errors import InspectorError
from inspector.core.lab import bursts, context, demos
from inspector.core.lab import predictions as predicting
from inspector.core.lab.label_host import LabelHost
from inspector.core.lab.predictions import Predictions
from inspector.core.lab.sources import BurstSource, StepProgress
from inspector.core.labels.strategies import ALL_STRATEGIES, CUSTOM, display_name, strategies_with
from inspector.core.training.burst import DEFAULT_SEED, BurstResult, BurstSettings, EpochLog
from inspector.core.training.predictions import DEFAULT_TOP_K

if TYPE_CHECKING:
    from inspector.core.batches.step_types import StepView
    from inspector.core.data.examples import RowProblem
    from inspector.core.exercises.registry import FoundExercise
    from inspector.core.exercises.report import CheckReport
    from inspector.core.labels.process.errors import LabelCodeError
    from inspector.core.labels.process.parent import LabelFunction
    from inspector.core.labels.reload import LabelReloader
    from inspector.core.lessons.code import CodeSpec
    from inspector.core.lessons.demos import DemoContext
    from inspector.core.lessons.model import Lesson
    from inspector.core.models import LoadedModel
    from inspector.core.training.learning import Learning
    from inspector.core.training.session import TrainingSession

Tell = bursts.Tell
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
        template: ChatTemplate | None = None,
        trust_remote_code: bool = False,
        bos_token: str | None = None,
        eos_token: str | None = None,
        train_rows: int | None = None,
        labels_from: LabelReloader | None = None,
        custom: LabelFunction | None = None,
        in_place: bool = False,
        batch_config: str | None = None,
        exercise: FoundExercise | None = None,
    ) -> None:
        self.model_spec = model_spec
        self.batch_config = batch_config  # a `trl sft --config` YAML the batch view starts from
        # --labels-from: the user's label function (the `custom` strategy, or an exercise's own),
        # reloaded on save (the app), or loaded once (`custom`, a command).
        self.label_host = LabelHost(labels_from, custom, exercise)
        # A command's one burst trains the loaded model itself, not a copy: the untrained model's
        # rows are those computed before it (`predictions`, `learning`), and one strategy trains.
        self.in_place = in_place
        self.device = device
        self.template = template or ARTICLE_TEMPLATE
        self.examples = [
            e if isinstance(e, Example) else Example(e, i + 1, "given")
            for i, e in enumerate(examples or article_examples())
        ]
        self.trust_remote_code = trust_remote_code
        self.special_tokens = {"bos_token": bos_token, "eos_token": eos_token}
        self.train_rows = len(self.examples) if train_rows is None else train_rows
        self.loaded: LoadedModel | None = None
        self.formatted: list[FormattedExample] = []  # the examples the bursts train on
        self.train_examples: list[Example] = []  # the same, as read
        self.extra_examples: dict[str, Example] = {}  # data rows read on demand (past the rows kept)
        self._formatted_by_text: dict[str, FormattedExample] = {}
        self.sources: dict[str, BurstSource] = {}
        self.prediction_cache: dict[tuple[Any, ...], list[Any]] = {}  # teacher-forced rows (`predictions`)
        self.watched: set[str] = set()  # texts recorded after every epoch besides the defaults (`learning`)
        self.base_lock = threading.Lock()  # the untrained model: read by labels, predictions, copies
        self.source_locks = {s: threading.Lock() for s in ALL_STRATEGIES}
        self._trainer_lock = threading.Lock()
        self.training_now: str | None = None  # the strategy a burst trains (or replays) right now
        self.data_error: str | None = None  # no example could be formatted: no training until fixed
        self.closing = threading.Event()  # set on quit: bursts and demos end after their current step

    @classmethod
    def around(
        cls,
        loaded: LoadedModel,
        examples: Sequence[Example | str],
        template: ChatTemplate,
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
        lab.train_examples = list(lab.examples[:train_rows])
        lab.formatted = formatted[:train_rows]
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
        self.train_examples = [ex for ex, _ in pairs[: self.train_rows]]
        self.formatted = [fe for _, fe in pairs[: self.train_rows]]
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

        if text in self._formatted_by_text:
            return self._formatted_by_text[text]
        lm = self.model
        if text in self.extra_examples:  # a data row read on demand: formatted as training would
            (fe,) = format_examples([self.extra_examples[text]], lm.tokenizer, self.template, lm.name)
            self._formatted_by_text[text] = fe
            return fe
        tok = lm.tokenizer
        return add_special_tokens(text, tok.bos_token, tok.eos_token, self.template, model_name=lm.name)

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
        """The held-out prompt a burst of `settings` answers after each epoch, and the untrained
        model's answer to it (before any burst of a lab that trains in place)."""
        from inspector.core.training.session import greedy_answer, holdout_prompt

        lm = self.model
        prompt = holdout_prompt(lm.tokenizer, settings.holdout, self.template)
        with self.base_lock:
            answer = greedy_answer(lm.model, lm.tokenizer, lm.tokenizer(prompt.text)["input_ids"])
        return prompt.text, answer

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
        return context.demo_context(lesson, self.model, self.template, self.formatted, **options)

    def code_spec(self) -> CodeSpec:
        """What the exported code of a lesson needs to know of this lab (`causallm-inspect export`)."""
        from inspector.core.lessons.code import CodeSpec

        return CodeSpec(
            model=self.model_spec,
            device=self.device,
            examples=tuple(e.text for e in self.examples),
            template=self.template,
            bos_token=self.special_tokens["bos_token"],
            eos_token=self.special_tokens["eos_token"],
        )

    # --- locks ------------------------------------------------------------------------------

    @contextmanager
    def one_trainer(self, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        """A turn to make or run HF trainers; `waiting` is called first if it must wait.

        Making a Trainer or an SFTTrainer (their TrainingArguments, in fact) resets accelerate's
        process-wide AcceleratorState, which a training loop reads at every step: a trainer made
        during a burst failed it. Bursts, TRL's labels and the demos that train take turns;
        and a turn puts that state back if a refused trainer left it reset.
        """
        from inspector.core.labels.trl_bridge import accelerate_state_kept

        if waiting is not None and self._trainer_lock.locked():
            waiting()
        with self._trainer_lock, accelerate_state_kept():
            yield

    @property
    def trainer_busy(self) -> bool:
        return self._trainer_lock.locked()

    # --- labels -----------------------------------------------------------------------------

    def labels(
        self, text: str, partial: Callable[[dict[str, Any]], None] | None = None, cancelled: Callable[[], bool] = bool
    ) -> dict[str, Any]:
        """The labels of `text` under every strategy: copy, mask and custom at once (the tokenizer
        and the user's code, given to `partial` first), then trl (TRL makes an SFTTrainer: after a
        running burst). Where the user's function fails on this text, "custom" holds its
        LabelCodeError instead of labels.

        An InspectorError of trl comes back as the error of the strategy, under "trl:error".
        """
        from inspector.core.labels.strategies import label_examples

        lm = self.model
        fe = self.formatted_for(text)
        found: dict[str, Any] = {
            s: label_examples(s, [fe], lm.tokenizer, max_length=lm.max_length)[0] for s in ("copy", "mask")
        }
        custom = self.custom
        if custom is not None:
            from inspector.core.labels.process.errors import LabelCodeError

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

    def roles(self, text: str) -> list[str] | None:
        """The role of each token of `text` (user, assistant, call, tool...) where a chat template
        rendered it; None for the article's format (`conversations.token_roles`)."""
        from inspector.core.data.conversations import token_roles
        from inspector.core.labels.strategies import encode

        fe = self.formatted_for(text)
        _, offsets = encode(fe, self.model.tokenizer)
        return token_roles(fe, offsets, self.model.tokenizer)

    # --- bursts (inspector.core.lab.bursts) --------------------------------------------------

    @property
    def sessions(self) -> dict[str, TrainingSession]:
        """The strategies trained live, and their sessions."""
        return {s: src.session for s, src in self.sources.items() if src.session is not None}

    def replaying(self, strategy: str) -> bool:
        source = self.sources.get(strategy)
        return source is not None and source.replays

    def settings_of(self, strategy: str) -> BurstSettings | None:
        """The settings a live strategy was first trained with (None: not trained live)."""
        source = self.sources.get(strategy)
        return None if source is None else source.settings

    def refusal(self, strategy: str, speed: float | None) -> tuple[str, str] | None:
        """Why a burst of `strategy` cannot run now (`bursts.refusal`), or None."""
        return bursts.refusal(self, strategy, speed)

    def burst(
        self,
        strategy: str,
        settings: BurstSettings,
        *,
        speed: float | None = None,
        on_start: Callable[[int, int, str], None] | None = None,
        on_step: Callable[[StepProgress], None] | None = None,
        on_epoch: Callable[[EpochLog], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        tell: Tell | None = None,
    ) -> BurstResult | None:
        """`settings.epochs` more epochs of `strategy` (`bursts.burst`); None when a replay has no more."""
        return bursts.burst(self, strategy, settings, speed=speed, on_start=on_start, on_step=on_step,
                            on_epoch=on_epoch, should_stop=should_stop, tell=tell)

    def reset(self) -> None:
        """Every strategy back to the untrained model: close every source, give the memory back."""
        bursts.reset(self)

    def close(self) -> None:
        """The app is quitting: running bursts and demos end after their current step; then reset."""
        self.closing.set()
        self.reset()
        self.label_host.close()  # the label process and whatever your function is doing in it

    # --- predictions and learning (inspector.core.lab.predictions) ---------------------------

    @property
    def untrained_gone(self) -> bool:
        """Whether the untrained model is no more: a lab training in place trained it."""
        return self.in_place and any(src.steps_done for src in self.sources.values())

    def predictions(self, text: str, top_k: int = DEFAULT_TOP_K) -> Predictions:
        """Teacher-forced rows of the untrained model and of every strategy trained or replayed."""
        return predicting.predictions(self, text, top_k)

    def watch(self, text: str) -> None:
        """Record `text`'s rows after every epoch from now on, in every source (`learning`)."""
        predicting.watch(self, text)

    def learning(self, text: str) -> Learning:
        """Per strategy, `text`'s teacher-forced rows after every epoch (0: untrained) and the losses."""
        return predicting.learning(self, text)

    # --- demos (inspector.core.lab.demos) -----------------------------------------------------

    def demo(
        self,
        lesson: Lesson,
        *,
        epochs: int | None = None,
        learning_rate: float | None = None,
        seed: int = DEFAULT_SEED,
        prepared: bool = False,
        progress: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_epoch: Callable[[str, Any], None] | None = None,
        again: str = "close other programs and run it again",
        waiting: Callable[[], None] | None = None,
    ) -> demos.DemoOutcome:
        """The lesson's demo, run now or replayed from a prepared run (`demos.demo`); takes its own locks."""
        return demos.demo(self, lesson, epochs=epochs, learning_rate=learning_rate, seed=seed, prepared=prepared,
                          progress=progress, should_stop=should_stop, on_epoch=on_epoch, again=again, waiting=waiting)

    def use_batch_config(self, config: str | None) -> None:
        """Build the batch steps from this `trl sft --config` YAML, as the app's --config does
        (`lesson N --config`, whose lab is made `around` its model)."""
        self.batch_config = config
