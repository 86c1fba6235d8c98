"""Burst sources: where a strategy's bursts come from, live training or a prepared run's replay.

Both have one interface (`BurstSource`): `run(epochs, on_start=, on_step=, on_epoch=,
should_stop=)` trains (or replays) that many more epochs, continuing where the last burst
stopped, and reports each step as a `StepProgress`; `predictions(text, ids)` gives the
teacher-forced rows of the state reached; `epoch_rows(text)` those after each epoch shown
(of a text watched, or stored by the prepared run) and `epoch_logs` each epoch's loss;
`watch(text, ids)` records a text's rows after every epoch from now on (a replay has what
it stored); `close()` lets go of what it holds. A source says what it is (`replays`, its
`session` and `settings` where it trains live, `shown_as` for rows it shows), so that the
lab never asks for its type. The lab (`inspector.core.lab.Lab`) keeps one source per
strategy until a reset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from inspector.core.training.burst import BurstResult, BurstSettings, EpochLog, StepLog
from inspector.core.training.predictions import DEFAULT_TOP_K

if TYPE_CHECKING:
    from inspector.core.runs.store import PreparedRun
    from inspector.core.training.session import TrainingSession

# The runs selector: value -> label. A number is a replay speed (x recorded), 0 is instant.
SOURCES: dict[str, str] = {
    "live": "live",
    "1": "prepared · as recorded",
    "2": "prepared · 2× faster",
    "5": "prepared · 5× faster",
    "instant": "prepared · instant",
}


def speed_of(source: str) -> float | None:
    """None for live; 0.0 for instant; else the replay speed factor."""
    if source == "live":
        return None
    return 0.0 if source == "instant" else float(source)


def source_label(run: PreparedRun, speed: float) -> str:
    pace = "instant" if speed == 0 else "as recorded" if speed == 1 else f"{speed:g}× faster"
    return f"replay of a run prepared {run.created_text} · {pace}"


@dataclass(frozen=True)
class StepProgress:
    """One step of a burst: its log, how many steps of this burst are done, the seconds since
    the burst began (recorded ones, for a replay) and the tokens run through so far."""

    log: StepLog
    done: int
    elapsed: float
    tokens: int


OnStart = Callable[[int, int, str], None]  # (epochs, total steps, source label)
OnStep = Callable[[StepProgress], None]
OnEpoch = Callable[[EpochLog], None]
ShouldStop = Callable[[], bool]


class BurstSource(Protocol):
    """Where a strategy's bursts come from (see the module's docstring)."""

    strategy: str
    label: str
    replays: bool  # a prepared run's replay, not live training
    session: TrainingSession | None  # the live session, None for a replay
    settings: BurstSettings | None  # the live session's settings, None for a replay

    @property
    def steps_done(self) -> int: ...

    @property
    def shown_as(self) -> str: ...  # where its rows come from, for the views ("" when live)

    def watch(self, text: str, ids: list[int]) -> None: ...

    def pace(self, speed: float | None, tell: Callable[[str, str], None]) -> None: ...  # a replay's speed and voice

    def run(
        self,
        epochs: int,
        *,
        on_start: OnStart | None = None,
        on_step: OnStep | None = None,
        on_epoch: OnEpoch | None = None,
        should_stop: ShouldStop | None = None,
    ) -> BurstResult | None: ...

    def predictions(self, text: str, tokenizer: Any, ids: list[int], top_k: int = DEFAULT_TOP_K) -> tuple[list[Any] | None, str]: ...

    def epoch_rows(self, text: str) -> dict[int, list[Any]]: ...

    @property
    def epoch_logs(self) -> list[EpochLog]: ...

    def close(self) -> None: ...


class LiveSource:
    """Bursts trained live by a `TrainingSession` (its model a copy of the untrained one)."""

    label = "live"
    replays = False
    shown_as = ""

    def __init__(self, session: TrainingSession) -> None:
        self.session = session
        self.strategy = session.strategy
        self._epoch_logs: list[EpochLog] = []

    @property
    def epoch_logs(self) -> list[EpochLog]:
        return list(self._epoch_logs)

    def epoch_rows(self, text: str) -> dict[int, list[Any]]:
        """The rows of `text` after each epoch trained since it was watched (`TrainingSession.watch`)."""
        return {epoch: rows[text] for epoch, rows in self.session.epoch_rows.items() if text in rows}

    @property
    def steps_done(self) -> int:
        return self.session.steps_done

    @property
    def settings(self) -> BurstSettings:
        return self.session.settings

    def watch(self, text: str, ids: list[int]) -> None:
        if text not in self.session.watched:
            self.session.watch(text, ids)

    def pace(self, speed: float | None, tell: Callable[[str, str], None]) -> None:
        """Live training has no pace: it runs as fast as it trains."""

    def run(
        self,
        epochs: int,
        *,
        on_start: OnStart | None = None,
        on_step: OnStep | None = None,
        on_epoch: OnEpoch | None = None,
        should_stop: ShouldStop | None = None,
    ) -> BurstResult:
        lengths = [len(ex.rows) for ex in self.session.labeled]
        mean_tokens = sum(lengths) / len(lengths)
        if on_start is not None:
            on_start(epochs, epochs * len(lengths), self.label)
        began = time.perf_counter()
        done = 0

        def step(log: StepLog) -> None:
            nonlocal done
            done += 1
            if on_step is not None:
                on_step(StepProgress(log, done, time.perf_counter() - began, round(done * mean_tokens)))

        def epoch(log: EpochLog) -> None:
            self._epoch_logs.append(log)
            if on_epoch is not None:
                on_epoch(log)

        return self.session.run(epochs, on_step=step, on_epoch=epoch, should_stop=should_stop)

    def predictions(self, text: str, tokenizer: Any, ids: list[int], top_k: int = DEFAULT_TOP_K) -> tuple[list[Any] | None, str]:
        from inspector.core.training.predictions import teacher_forced

        if self.session.steps_done == 0:
            return None, ""
        return teacher_forced(self.session.model, tokenizer, ids, top_k=top_k), ""

    def close(self) -> None:
        self.session.close()


class ReplaySource:
    """Bursts replayed from a prepared run: the recorded steps, paced by their recorded seconds
    divided by `speed` (0: all at once); each burst continues where the last one stopped."""

    replays = True
    session = None
    settings = None

    def __init__(self, run: PreparedRun, speed: float, tell: Callable[[str, str], None] | None = None) -> None:
        self.prepared = run
        self.strategy = run.strategy
        self.speed = speed
        self.steps_shown = 0
        self.tell = tell or (lambda text, severity: None)

    @property
    def label(self) -> str:
        return source_label(self.prepared, self.speed)

    @property
    def steps_done(self) -> int:
        return self.steps_shown

    @property
    def epochs_shown(self) -> int:
        return self.steps_shown // self.prepared.steps_per_epoch

    @property
    def shown_as(self) -> str:
        return f"replay, epoch {self.epochs_shown}"

    def watch(self, text: str, ids: list[int]) -> None:
        """Nothing to record: the prepared run has the rows it stored."""

    def pace(self, speed: float | None, tell: Callable[[str, str], None]) -> None:
        """Replay the next bursts at `speed` (None: as before), with word going through `tell`."""
        self.speed = self.speed if speed is None else speed
        self.tell = tell

    def run(
        self,
        epochs: int,
        *,
        on_start: OnStart | None = None,
        on_step: OnStep | None = None,
        on_epoch: OnEpoch | None = None,
        should_stop: ShouldStop | None = None,
    ) -> BurstResult | None:
        """Replay `epochs` more epochs; None (and a word through `tell`) when the run has no more."""
        run = self.prepared
        start = self.steps_shown
        end = start + epochs * run.steps_per_epoch
        if end > run.total_steps:
            if start >= run.total_steps:
                self.tell(
                    f"The prepared {self.strategy} run ends at epoch {run.epochs}: reset it, then choose live runs "
                    "to train further.",
                    "warning",
                )
                return None
            end = run.total_steps
            self.tell(f"The prepared {self.strategy} run has {run.epochs} epochs: this replay stops there.", "information")
        if on_start is not None:
            on_start((end - start) // run.steps_per_epoch, end - start, self.label)
        steps = run.step_logs()
        tokens_per_step = run.result["input_tokens"] / max(1, run.total_steps)
        began = time.perf_counter()
        recorded = 0.0
        stopped = False
        for i in range(start, end):
            recorded += run.step_seconds[i] if i < len(run.step_seconds) else 0.0
            if not _wait_until(began + (recorded / self.speed if self.speed else 0.0), should_stop):
                stopped = True
                break
            done = i - start + 1
            if on_step is not None:
                on_step(StepProgress(steps[i], done, recorded, round(done * tokens_per_step)))
            self.steps_shown = i + 1
            if self.steps_shown % run.steps_per_epoch == 0 and on_epoch is not None:
                log = run.epoch_log(self.steps_shown // run.steps_per_epoch)
                if log is not None:
                    on_epoch(log)
        return run.segment(start, self.steps_shown, stopped=stopped)

    def predictions(self, text: str, tokenizer: Any, ids: list[int], top_k: int = DEFAULT_TOP_K) -> tuple[list[Any] | None, str]:
        """The rows the prepared run stored for `text` after the epochs shown (with the candidates it
        recorded, whatever `top_k`), or why there are none."""
        epoch = self.epochs_shown
        if epoch == 0:
            return None, f"the {self.strategy} replay stopped before its first epoch ended: replay it on to see them"
        rows = self.prepared.predictions_for(text, epoch)
        if rows is None:
            return None, (
                f"the prepared {self.strategy} run stored no predictions for this text: "
                "reset it, choose live runs and train to see them"
            )
        return rows, ""

    @property
    def epoch_logs(self) -> list[EpochLog]:
        logs = (self.prepared.epoch_log(e) for e in range(1, self.epochs_shown + 1))
        return [log for log in logs if log is not None]

    def epoch_rows(self, text: str) -> dict[int, list[Any]]:
        """The rows the prepared run stored for `text` after each epoch shown so far."""
        found = {e: self.prepared.predictions_for(text, e) for e in range(1, self.epochs_shown + 1)}
        return {e: rows for e, rows in found.items() if rows is not None}

    def close(self) -> None:
        pass


def _wait_until(deadline: float, should_stop: ShouldStop | None) -> bool:
    """Sleep until `deadline` in short naps; False as soon as a stop is asked for."""
    while True:
        if should_stop is not None and should_stop():
            return False
        left = deadline - time.perf_counter()
        if left <= 0:
            return True
        time.sleep(min(left, 0.05))
