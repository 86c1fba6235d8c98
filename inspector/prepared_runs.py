"""The app's replay of prepared runs (`causallm-inspect prepare`), for talks.

A mixin of `InspectorApp`. When the training view's "runs" selector says *prepared* and
the store holds a run recorded for exactly this model, data, strategy, settings and
library versions, a burst key replays that run instead of training: the same messages a
live burst posts, paced by the recorded step times divided by the chosen speed (or all at
once), each labelled as a replay. Nothing matching, or a stale or corrupt store: the burst
runs live and says why. A strategy that shows a replay goes on replaying (the next burst
continues where the replay stopped) until `x` resets it; live training is always one
selector away.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.widget import Widget

from inspector.core.training.burst import BurstResult, BurstSettings
from inspector.messages import BurstFinished, BurstStarted, EpochFinished, TrainingStepLogged

if TYPE_CHECKING:
    from inspector.core.data.chat_format import ChatTemplate
    from inspector.core.lessons.demos import DemoContext
    from inspector.core.lessons.model import Lesson
    from inspector.core.models import LoadedModel


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


def source_label(run: Any, speed: float) -> str:
    pace = "instant" if speed == 0 else "as recorded" if speed == 1 else f"{speed:g}× faster"
    return f"replay of a run prepared {run.created_text} · {pace}"


@dataclass
class ReplayState:
    """What a strategy shows of its prepared run."""

    run: Any  # replay.PreparedRun
    steps_shown: int = 0

    @property
    def epochs_shown(self) -> int:
        return self.steps_shown // self.run.steps_per_epoch


class PreparedReplays:
    """Replays of prepared bursts and demos, for `InspectorApp`."""

    # Provided by InspectorApp.
    loaded: LoadedModel
    formatted: list[Any]
    template: ChatTemplate
    sessions: dict[str, Any]

    def _init_replays(self) -> None:
        self.replays: dict[str, ReplayState] = {}

    def trained_live(self, strategy: str) -> bool:
        session = self.sessions.get(strategy)
        return session is not None and session.steps_done > 0

    def split_by_source(self, strategies: tuple[str, ...], speed: float | None) -> tuple[str, ...]:
        """The strategies a burst request can run; says why any other cannot."""
        keep = []
        for s in strategies:
            if speed is None and s in self.replays:
                self.notify(  # type: ignore[attr-defined]
                    f"{s} shows a prepared run: x resets it, then a live burst trains it from the untrained model.",
                    title="Replay",
                    severity="warning",
                    timeout=8,
                )
                continue
            keep.append(s)
        return tuple(keep)

    def _predict_text(self) -> str:
        from inspector.core.data.chat_format import HOLDOUT_ANSWER, HOLDOUT_WORD, article_text

        return article_text(HOLDOUT_WORD, HOLDOUT_ANSWER, self.template)

    def replay_burst(
        self,
        strategy: str,
        settings: BurstSettings,
        speed: float,
        target: Widget,
        should_stop: Callable[[], bool],
    ) -> tuple[bool, BurstResult | None]:
        """Replay one burst of `strategy` if a prepared run covers it (in the train worker's thread).

        Returns (handled, result): handled is False when the burst should run live instead.
        """
        from inspector.core.runs import store as replay

        state = self.replays.get(strategy)
        if state is None:
            if self.trained_live(strategy):
                return False, None
            run, why = replay.find(self.loaded, self.formatted, strategy, settings, self._predict_text())
            if run is None:
                if why == "none stored":
                    self._tell(f"No {strategy} run is prepared for this model: training live.", "information")
                else:
                    self._tell(f"No prepared run for {strategy} ({why}): training live.", "warning")
                return False, None
            state = self.replays[strategy] = ReplayState(run)
        run = state.run
        start = state.steps_shown
        end = start + settings.epochs * run.steps_per_epoch
        if end > run.total_steps:
            if start >= run.total_steps:
                self._tell(
                    f"The prepared {strategy} run ends at epoch {run.epochs}: x resets, then choose live runs "
                    "to train further.",
                    "warning",
                )
                return True, None
            end = run.total_steps
            self._tell(f"The prepared {strategy} run has {run.epochs} epochs: this replay stops there.", "information")
        label = source_label(run, speed)
        target.post_message(BurstStarted(strategy, (end - start) // run.steps_per_epoch, end - start, source=label))
        steps = run.step_logs()
        tokens_per_step = run.result["input_tokens"] / max(1, run.total_steps)
        began = time.perf_counter()
        recorded = 0.0
        stopped = False
        for i in range(start, end):
            recorded += run.step_seconds[i] if i < len(run.step_seconds) else 0.0
            if not self._wait_until(began + (recorded / speed if speed else 0.0), should_stop):
                stopped = True
                break
            done = i - start + 1
            target.post_message(TrainingStepLogged(strategy, steps[i], done, recorded, round(done * tokens_per_step)))
            state.steps_shown = i + 1
            if state.steps_shown % run.steps_per_epoch == 0:
                log = run.epoch_log(state.steps_shown // run.steps_per_epoch)
                if log is not None:
                    target.post_message(EpochFinished(strategy, log))
        result = run.segment(start, state.steps_shown, stopped=stopped)
        target.post_message(BurstFinished(strategy, result, source=label))
        return True, result

    @staticmethod
    def _wait_until(deadline: float, should_stop: Callable[[], bool]) -> bool:
        """Sleep until `deadline` in short naps; False as soon as a stop is asked for."""
        while True:
            if should_stop():
                return False
            left = deadline - time.perf_counter()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))

    def _tell(self, text: str, severity: str) -> None:
        self.call_from_thread(  # type: ignore[attr-defined]
            self.notify, text, title="Prepared runs", severity=severity, timeout=8  # type: ignore[attr-defined]
        )

    def replayed_predictions(self, strategy: str, text: str) -> tuple[list[Any] | None, str, str]:
        """(rows, note, source) of a replayed strategy for `text`; rows None with a note when not stored."""
        state = self.replays[strategy]
        epoch = state.epochs_shown
        if epoch == 0:
            return None, f"the {strategy} replay stopped before its first epoch ended: press its key to go on", ""
        rows = state.run.predictions_for(text, epoch)
        if rows is None:
            return None, (
                f"the prepared {strategy} run stored no predictions for this text: "
                "x, choose live runs and train to see them"
            ), ""
        return rows, "", f"replay, epoch {epoch}"

    def prepared_demo(self, lesson: Lesson, ctx: DemoContext) -> Any:
        """The stored result of a lesson demo that trains, if prepared for exactly this context."""
        from inspector.core.runs import store as replay

        demo, _ = replay.find_demo(self.loaded, ctx, lesson.demo)
        return demo
