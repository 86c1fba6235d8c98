"""The lab's bursts: each strategy's source (live training on a copy of the untrained model,
or a prepared run's replay), the lock each one is used under, why a burst cannot run, and the
reset. `Bursts` owns all of these; the Lab makes one and hands it what it reads
(`Workbench`), the lock of the untrained model and its trainer turn.

Threads: HF trainers are made and run one at a time (`one_trainer`), always before a
strategy's own lock; a replay makes no trainer and takes neither.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from inspector.core.lab.sources import BurstSource, ReplaySource, StepProgress
from inspector.core.labels.strategies import ALL_STRATEGIES, CUSTOM, skipped_note
from inspector.core.training.burst import BurstResult, BurstSettings, EpochLog

if TYPE_CHECKING:
    from inspector.core.lab.workbench import Workbench
    from inspector.core.training.session import TrainingSession

Tell = Callable[[str, str], None]  # (text, severity): a word for the user from a worker


class Bursts:
    """One burst source per strategy trained or replayed since the last reset, and their locks."""

    def __init__(
        self,
        bench: Workbench,
        *,
        base_lock: threading.Lock,
        one_trainer: Callable[[], AbstractContextManager[Any]],
        on_new_source: Callable[[BurstSource], None] = lambda source: None,
    ) -> None:
        self._bench = bench
        self._base_lock = base_lock  # the untrained model: a live source's copy reads it
        self._one_trainer = one_trainer
        self._on_new_source = on_new_source  # a new source watches the texts the predictions watch
        self.sources: dict[str, BurstSource] = {}
        self._locks = {s: threading.Lock() for s in ALL_STRATEGIES}
        self.training_now: str | None = None  # the strategy a burst trains (or replays) right now

    # --- what the views ask -----------------------------------------------------------------

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

    def label_of(self, strategy: str) -> str:
        """Where the strategy's bursts come from, in words ("live", or the replay of a prepared run)."""
        return self.sources[strategy].label

    def epoch_rows(self, strategy: str, text: str) -> dict[int, list[Any]]:
        """`text`'s teacher-forced rows after each epoch the strategy's source trained or replayed."""
        source = self.sources.get(strategy)
        return {} if source is None else source.epoch_rows(text)

    @property
    def untrained_gone(self) -> bool:
        """Whether the untrained model is no more: a lab training in place trained it."""
        return self._bench.in_place and any(src.steps_done for src in self.sources.values())

    @contextmanager
    def idle_source(self, strategy: str) -> Iterator[BurstSource | None]:
        """The strategy's source while no burst uses it (its lock held without waiting); None
        where it has none, or where a burst is training it right now."""
        lock = self._locks[strategy]
        if not lock.acquire(blocking=False):
            yield None
            return
        try:
            yield self.sources.get(strategy)
        finally:
            lock.release()

    def refusal(self, strategy: str, speed: float | None) -> tuple[str, str] | None:
        """Why a burst of `strategy` cannot run now, as (kind, what it is about), or None:
        ("no-label-function", "") or ("replaying", strategy). The views word them."""
        if strategy == CUSTOM and self._bench.custom is None:
            return ("no-label-function", "")
        if speed is None and self.replaying(strategy):
            return ("replaying", strategy)
        return None

    def holdout(self, settings: BurstSettings) -> tuple[str, str]:
        """The held-out prompt a burst of `settings` answers after each epoch, and the untrained
        model's answer to it (before any burst of a lab that trains in place)."""
        from inspector.core.training.session import greedy_answer, holdout_prompt

        lm = self._bench.model
        prompt = holdout_prompt(lm.tokenizer, settings.holdout, self._bench.template)
        with self._base_lock:
            answer = greedy_answer(lm.model, lm.tokenizer, lm.tokenizer(prompt.text)["input_ids"])
        return prompt.text, answer

    # --- bursts -----------------------------------------------------------------------------

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
        """`settings.epochs` more epochs of `strategy`; None when a replay has no more to show.

        With a replay `speed`, a strategy not trained live replays its prepared run where one
        matches (and goes on replaying until a reset); otherwise it trains live.
        """
        tell = tell or (lambda text, severity: None)

        def run(source: BurstSource) -> BurstResult | None:
            self.training_now = strategy
            try:
                return source.run(settings.epochs, on_start=on_start, on_step=on_step, on_epoch=on_epoch,
                                  should_stop=should_stop)
            finally:
                self.training_now = None

        source = self.sources.get(strategy)
        if source is None and speed is not None:
            replay = self._replay(strategy, settings, speed, tell)
            if replay is not None:
                source = self.sources[strategy] = replay
        if source is not None and source.replays:  # no trainer, no lock: it reads what was stored
            source.pace(speed, tell)
            return run(source)
        with self._one_trainer(), self._locks[strategy]:
            return run(self._live(strategy, settings, tell))

    def _replay(self, strategy: str, settings: BurstSettings, speed: float, tell: Tell) -> ReplaySource | None:
        """The prepared run of this burst, as a new replay source, or None (said through `tell`)."""
        from inspector.core.runs import store

        bench = self._bench
        run, why = store.find(bench.model, bench.formatted, strategy, settings, bench.predicted_text())
        if run is None:
            if why == "none stored":
                tell(f"No {strategy} run is prepared for this model: training live.", "information")
            else:
                tell(f"No prepared run for {strategy} ({why}): training live.", "warning")
            return None
        return ReplaySource(run, speed, tell)

    def _live(self, strategy: str, settings: BurstSettings, tell: Tell) -> BurstSource:
        """The strategy's live session, made on first use on a copy of the untrained model (or on
        the model itself, for a lab that trains in place)."""
        from inspector.core.lab.sources import LiveSource
        from inspector.core.training.start import start_session

        source = self.sources.get(strategy)
        if source is not None:
            return source
        bench = self._bench
        custom = bench.custom if strategy == CUSTOM else None
        lm = bench.model
        options = dict(device=lm.device, template=bench.template, max_length=lm.max_length, custom=custom)
        if bench.in_place:
            if any(src.steps_done for src in self.sources.values()):
                raise RuntimeError("a lab that trains in place trains one strategy: its model is not untrained")
            session = start_session(lm.model, lm.tokenizer, bench.formatted, strategy, settings, on_a_copy=False,
                                    **options)
        else:
            with self._base_lock:  # the copy reads the untrained model
                session = start_session(lm.model, lm.tokenizer, bench.formatted, strategy, settings, **options)
        source = self.sources[strategy] = LiveSource(session)
        self._on_new_source(source)
        if session.skipped:
            tell(f"{strategy}: {skipped_note(session.skipped, session.total_examples)}.", "warning")
        return source

    def reset(self) -> None:
        """Every strategy back to the untrained model: close every source, give the memory back."""
        from inspector.core.training.memory import release_memory

        for strategy in list(self.sources):
            self.sources.pop(strategy).close()
        release_memory()  # the Trainer and TRL's patched forward hold cycles: gc, then malloc_trim
