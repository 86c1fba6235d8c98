"""The Lab's host of the user's function (`--labels-from`, or a command's label function): the
version in use, its reload on save, and the check of the exercise its file is the starter of.

The file is a label strategy (the views show and train it as `custom`), or an exercise's own
function (11: `packed_labels`, 13: `token_weights`, 15: `final_answer_labels`) that is checked
on every save and never trained. Which exercise the file belongs to is found once, by whoever
builds the Lab, and given here (`exercises.registry.find_exercise`); a save reloads the
function, never the lessons.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.core.errors import InspectorError

if TYPE_CHECKING:
    from inspector.core.batches.step_types import StepView
    from inspector.core.data.chat_format import FormattedExample, TurnMarkers
    from inspector.core.exercises.check_report import CheckReport
    from inspector.core.exercises.registry import FoundExercise
    from inspector.core.labels.process.code_errors import LabelCodeError
    from inspector.core.labels.process.parent import LabelFunction
    from inspector.core.labels.reload import LabelReloader
    from inspector.core.models import LoadedModel


class LabelHost:
    """The user's function of a Lab: followed on save (`reloader`), or loaded once (`custom`)."""

    def __init__(
        self, reloader: LabelReloader | None = None, custom: LabelFunction | None = None,
        exercise: FoundExercise | None = None,
    ) -> None:
        self._reloader = reloader
        self._custom = custom
        self.exercise = exercise  # the exercise the file is the starter of, found once by the Lab's builder
        self._reload_lock = threading.Lock()  # one reload of the label function at a time

    # --- what the views ask -------------------------------------------------------------------

    @property
    def followed(self) -> Path | None:
        """The file followed on save (`--labels-from` in the app), or None."""
        return None if self._reloader is None else self._reloader.source.path

    @property
    def function(self) -> LabelFunction | None:
        """The function's version in use (a label strategy or an exercise's function), or None."""
        return self._reloader.current if self._reloader is not None else self._custom

    @property
    def custom(self) -> LabelFunction | None:
        """The user's label function (its last version that loaded), or None without --labels-from
        and where the file is an exercise whose function is not a label strategy (11, 13, 15: checked
        on save, never trained)."""
        if self._reloader is not None:
            return self._reloader.current if self._reloader.strategy else None
        return self._custom

    @property
    def compared_with(self) -> str:
        """The built-in strategy the labels view compares the user's labels with: the exercise's
        (8: trl, 10: copy) where the file is one's starter, else mask."""
        return self.exercise.exercise.compared_with if self.exercise is not None else "mask"

    @property
    def load_error(self) -> LabelCodeError | None:
        """The error of the last saved version that was not used (it stays until a later save)."""
        return None if self._reloader is None else self._reloader.error

    @property
    def version(self) -> str:
        """The fingerprint of the version in use ("" without one): a result of an older one is stale."""
        fn = self.function
        return fn.fingerprint if fn is not None else ""

    @property
    def labels_packed_rows(self) -> bool:
        """The file is exercise 11's, followed as its `packed_labels`: the function labels a packed
        row of the batch view."""
        fn, found = self.function, self.exercise
        if self._reloader is None or fn is None or found is None or not found.exercise.packed_rows:
            return False
        return fn.name == found.exercise.function and tuple(fn.params) == tuple(found.exercise.params)

    # --- the user's code runs: off the UI thread -----------------------------------------------

    def reload(self, loaded: LoadedModel | None, formatted: Sequence[FormattedExample]) -> LabelFunction | LabelCodeError | None:
        """The file changed (or may have): its new version, its error, or None when nothing changed.

        A new label strategy is good when it loads and labels every training example; one that
        fails on an example is not used: its error comes back, and the last good version stays
        in use (`load_error` holds the error until a later save). A good version ends the
        processes of the older ones, whatever they were doing."""
        if self._reloader is None:
            return None
        with self._reload_lock:
            return self._reload(loaded, formatted)

    def _reload(self, loaded: LoadedModel | None, formatted: Sequence[FormattedExample]) -> LabelFunction | LabelCodeError | None:
        from inspector.core.labels.process.code_errors import LabelCodeError

        assert self._reloader is not None
        found = self._reloader.poll()
        if isinstance(found, LabelCodeError) or found is None:
            return found
        if loaded is not None and formatted and self._reloader.strategy:
            try:
                found.labeled_many(formatted, loaded.tokenizer, max_length=loaded.max_length)
            except LabelCodeError as exc:
                good = self._reloader.revert(exc)
                if good is not None:
                    good.stop_others()
                return exc
            except InspectorError:  # too long for the model: the strategy says so when it trains
                pass
        found.stop_others()
        return found

    def hand_over(self, tokenizer: Any) -> None:
        """Hand the tokenizer to the label process ahead of the first call of the user's function
        (seconds for a large vocabulary); nothing without one."""
        fn = self.custom
        if fn is not None:
            fn.hand_over(tokenizer)

    def check(
        self, loaded: LoadedModel | None, template: TurnMarkers, trainer_turn: Callable[[], AbstractContextManager[Any]],
    ) -> CheckReport | None:
        """Where the file is an exercise's starter: the check of its current version, as
        `exercise N --check` runs it; else None. Exercises 11 and 13 build their packs and steps
        with TRL's trainer on the model first (once, inside `trainer_turn`)."""
        from inspector.core.exercises.registry import build_cases, check_exercise

        fn = self.function
        if fn is None or loaded is None or self.exercise is None:
            return None
        number, lesson, exercise = self.exercise.number, self.exercise.lesson, self.exercise.exercise
        if tuple(fn.params) != tuple(exercise.params):
            return None  # loaded as a label function, not as this exercise's function
        if exercise.needs_model:
            with trainer_turn():
                build_cases(exercise, lesson, loaded.model, loaded.tokenizer, template, model_name=loaded.name,
                            device=str(loaded.device))
        return check_exercise(exercise, number, lesson, fn, loaded.tokenizer, template, model_name=loaded.name,
                              model=loaded.model, device=str(loaded.device))

    def packed_row_labels(self, loaded: LoadedModel | None, view: StepView, micro_batch: int, batch_row: int) -> Any:
        """Exercise 11's `packed_labels` (`--labels-from` its starter) on one row of a batch view's
        step: its labels, its LabelCodeError, or None where it does not apply (no such function,
        or a micro-batch that is not padding-free)."""
        from inspector.core.exercises.packed_rows import PackedRows

        fn = self.function
        if not self.labels_packed_rows or fn is None or loaded is None:
            return None
        return PackedRows.row_labels(fn, loaded.tokenizer, view, micro_batch, batch_row)

    def close(self) -> None:
        """The Lab closes: the label process ends, and whatever the function is doing in it."""
        if self._reloader is not None:
            from inspector.core.labels.process.sandbox import close_default

            close_default()
