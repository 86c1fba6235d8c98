"""The app's training bursts: starting, stopping and resetting them, and the worker that runs them.

A mixin of `InspectorApp`, kept apart so that the app module stays about loading, labels and
predictions. A strategy's `TrainingSession` (core) lives as long as the app or a reset; with a
replay speed, a strategy with a prepared run replays it (`PreparedReplays.replay_burst`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from textual import work
from textual.widget import Widget
from textual.worker import get_current_worker

from inspector.core.errors import InspectorError
from inspector.core.training.burst import BurstSettings
from inspector.messages import BurstFinished, BurstStarted, EpochFinished, TrainingIdle, TrainingStepLogged
from inspector.prepared_runs import speed_of

if TYPE_CHECKING:
    from inspector.core.data.chat_format import ChatTemplate, FormattedExample
    from inspector.core.models import LoadedModel
    from inspector.core.training.session import TrainingSession


class _StepCounter:
    """Counts the steps of one burst and posts each, with a live tokens/s estimate."""

    def __init__(self, strategy: str, target: Widget, mean_tokens: float) -> None:
        self.strategy = strategy
        self.target = target
        self.mean_tokens = mean_tokens
        self.start = time.perf_counter()
        self.done = 0

    def step(self, log: Any) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        tokens = round(self.done * self.mean_tokens)
        self.target.post_message(TrainingStepLogged(self.strategy, log, self.done, elapsed, tokens))


class Bursts:
    """Bursts of training (`a`, `1`-`3`), Esc to stop, `x` to reset, for `InspectorApp`."""

    # Provided by InspectorApp (and PreparedReplays).
    loaded: LoadedModel | None
    load_error: str | None
    data_error: str | None
    training: bool
    training_strategy: str | None
    formatted: list[FormattedExample]
    template: ChatTemplate
    sessions: dict[str, TrainingSession]
    replays: dict[str, Any]
    _prediction_cache: dict[Any, Any]
    _stop: threading.Event
    _base_lock: threading.Lock
    _session_locks: dict[str, threading.Lock]
    main: Any
    notify: Any
    show_error: Any
    split_by_source: Any
    replay_burst: Any
    one_trainer: Any

    def start_training(self, strategies: Iterable[str]) -> None:
        strategies = tuple(strategies)
        if self.loaded is None:
            self.notify(
                self.load_error or "The model is still loading; training can start once it is ready.",
                severity="warning",
            )
            return
        if self.training:
            self.notify("A burst is running: Esc stops it, then start the next one.", severity="warning")
            return
        if self.data_error:
            self.show_error("No training until the data is fixed", self.data_error)
            return
        view = self.main.training_view
        try:
            epochs, lr, seed = view.read_settings()
            settings = BurstSettings(epochs=epochs, learning_rate=lr, seed=seed)
        except InspectorError as exc:
            self.show_error("Check the burst settings", str(exc))
            return
        speed = speed_of(view.read_source())
        strategies = self.split_by_source(strategies, speed)
        if not strategies:
            return
        changed = [s for s in strategies if s in self.sessions and self.sessions[s].settings != settings]
        if any(
            self.sessions[s].settings.learning_rate != lr or self.sessions[s].settings.seed != seed for s in changed
        ):
            self.notify(
                f"{', '.join(changed)} keep{'s' if len(changed) == 1 else ''} the learning rate and seed of "
                "their first burst; x resets to use the new ones.",
                timeout=6,
            )
        self._stop.clear()
        self.training = True
        view.preparing(strategies)
        self.main.refresh_bindings()
        self.train(strategies, settings, view, speed)

    def stop_training(self) -> None:
        if self.training:
            self._stop.set()
            self.notify("Stopping after the current step…", timeout=3)

    def reset_training(self) -> None:
        if self.training:
            self.notify("Stop the running burst first (Esc).", severity="warning")
            return
        self._drop_sessions()
        self.replays.clear()
        self._prediction_cache.clear()
        self.main.training_view.reset()
        self.main.predictions_view.invalidate()
        self.notify("Every strategy is back to the untrained model.", timeout=3)

    def _drop_sessions(self) -> None:
        """Close every strategy's session and give its memory back (weights, optimizer, files)."""
        from inspector.core.training.memory import release_memory

        for strategy in list(self.sessions):
            self.sessions.pop(strategy).close()
        release_memory()  # the Trainer and TRL's patched forward hold cycles: gc, then malloc_trim

    def on_training_idle(self, message: TrainingIdle) -> None:
        self.training = False
        self.main.refresh_bindings()

    def _session(self, strategy: str, settings: BurstSettings) -> Any:
        session = self.sessions.get(strategy)
        if session is None:
            from inspector.core.training.session import TrainingSession

            with self._base_lock:  # the copy reads the untrained model
                session = TrainingSession.on_a_copy(
                    self.loaded, self.formatted, strategy, settings, template=self.template
                )
            self.sessions[strategy] = session
        return session

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def train(
        self, strategies: tuple[str, ...], settings: BurstSettings, target: Widget, speed: float | None = None
    ) -> None:
        """Bursts of each strategy in turn; Esc (or a cancel) stops between two steps.

        With a replay `speed`, a strategy with a prepared run replays it instead (see
        `PreparedReplays.replay_burst`); the others train live.
        """
        worker = get_current_worker()

        def should_stop() -> bool:
            return self._stop.is_set() or worker.is_cancelled

        try:
            for strategy in strategies:
                if should_stop():
                    break
                if speed is not None:
                    self.training_strategy = strategy
                    handled, replayed = self.replay_burst(strategy, settings, speed, target, should_stop)
                    if handled:
                        if replayed is not None and replayed.stopped:
                            break
                        continue
                with self.one_trainer(), self._session_locks[strategy]:
                    self.training_strategy = strategy
                    session = self._session(strategy, settings)
                    lengths = [len(ex.rows) for ex in session.labeled]
                    mean_tokens = sum(lengths) / len(lengths)
                    total = settings.epochs * len(lengths)
                    target.post_message(BurstStarted(strategy, settings.epochs, total))

                    progress = _StepCounter(strategy, target, mean_tokens)
                    result = session.run(
                        settings.epochs,
                        on_step=progress.step,
                        on_epoch=lambda log, strategy=strategy: target.post_message(EpochFinished(strategy, log)),
                        should_stop=should_stop,
                    )
                target.post_message(BurstFinished(strategy, result))
                if result.stopped:
                    break
        finally:
            self.training_strategy = None
            target.post_message(TrainingIdle())
