"""One strategy's training at a glance: loss sparkline, progress, speed and held-out answers."""

from __future__ import annotations

import math

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape
from textual.widgets import ProgressBar, Sparkline, Static

from inspector.core.labels.strategies import STRATEGY_TITLES

KEYS = {"copy": "c", "mask": "m", "trl": "t", "custom": "u"}


class StepProgress(ProgressBar):
    """A burst's progress. Textual's bar redraws itself every second for its ETA, which is not
    shown here: that timer would tick for as long as the app runs, trained or not."""

    def on_mount(self, event: events.Mount) -> None:
        event.prevent_default()  # ProgressBar.on_mount starts the timer
        self.update()


class StrategyPanel(Vertical):
    """Loss per step (all bursts of this strategy), burst progress, and the held-out answers."""

    HELP = """\
## A strategy's training

- The **sparkline** shows the loss of every step so far, across bursts, left to right
  (taller is higher). `copy` averages its loss over every token; `mask` and `trl` only
  over the answer, so compare shapes, not heights, between strategies.
- The **bar** shows the progress of the running burst, step by step.
- **tok/s**: tokens run through the model per second (live figure includes the held-out
  generation; the table below has the training-only figure).
- **held-out**: the model's greedy answer to the held-out question after each epoch.
- A panel whose border says **replay** shows a run recorded by `causallm-inspect prepare`,
  not one training now: its times and tokens/s are the recorded ones.
"""

    def __init__(self, strategy: str, name: str | None = None) -> None:
        super().__init__(id=f"panel-{strategy}", classes="strategy-panel")
        self.strategy = strategy
        self.name_shown = name or strategy  # custom: the label function's name
        self.losses: list[float] = []
        self.holdouts: list[tuple[int, str]] = []
        self.stale = False  # custom: trained on an earlier version of the label function
        self.border_title = f"{self.name_shown} · {STRATEGY_TITLES[strategy]}"
        self.state = "idle"  # idle, preparing, running, stopped, done, failed, refused
        self.source = "live"  # or the label of the prepared run being replayed

    def compose(self) -> ComposeResult:
        yield Static(self.idle_text(), classes="panel-status")
        yield Static("loss per step: appears with the first step", classes="panel-sparkline-empty")
        yield Sparkline([], summary_function=max, classes="panel-sparkline")
        yield StepProgress(total=1, show_eta=False, show_percentage=True, classes="panel-progress")
        yield Static("held-out: (not trained yet)", classes="panel-holdout")

    def on_mount(self) -> None:
        self._show_sparkline(False)

    def _show_sparkline(self, show: bool) -> None:
        # An empty Sparkline draws a flat low line, which would read as "low loss".
        self.query_one(Sparkline).display = show
        self.query_one(".panel-sparkline-empty").display = not show

    def idle_text(self) -> str:
        return f"idle · press [b]{KEYS[self.strategy]}[/b] to train"

    def show_status(self, text: str) -> None:
        self.query_one(".panel-status", Static).update(text)

    def preparing(self, first: bool = True) -> None:
        self.state = "preparing"
        self.set_class(True, "-running")
        if first:
            self.show_status("preparing the first burst: copying the model and making its trainer…")
        else:
            self.show_status("starting the next burst, from where the last one stopped…")

    @property
    def replaying(self) -> bool:
        return self.source != "live"

    def started(self, total_steps: int, source: str = "live") -> None:
        self.state = "running"
        self.source = source
        self.set_class(True, "-running")
        self.set_class(self.replaying, "-replay")
        self.border_subtitle = f"⟲ {source}" if self.replaying else "live"
        self.query_one(ProgressBar).update(total=total_steps, progress=0)

    def step(self, loss: float, step: int, epoch: float, done: int, total: int, tokens_per_second: float) -> None:
        self.losses.append(loss)
        self._show_sparkline(True)
        self.query_one(Sparkline).data = list(self.losses)
        self.query_one(ProgressBar).update(progress=done)
        what = "⟲ replay · " if self.replaying else ""
        self.show_status(
            f"{what}step {done}/{total} · epoch {epoch:.2f} · loss {loss:.4f} · ≈{tokens_per_second:,.0f} tok/s"
        )

    def epoch(self, epoch: int, holdout: str) -> None:
        self.holdouts.append((epoch, holdout))
        shown = " · ".join(f"e{e} {escape(repr(h))}" for e, h in self.holdouts[-3:])
        self.query_one(".panel-holdout", Static).update(f"held-out: {shown}")

    def finished(self, stopped: bool, epochs_done: float, epoch_loss: float | None, tokens_per_second: float) -> None:
        self.state = "stopped" if stopped else "done"
        self.set_class(False, "-running")
        loss = "—" if epoch_loss is None or math.isnan(epoch_loss) else f"{epoch_loss:.4f}"
        what = "stopped" if stopped else "done"
        if self.replaying:
            what = f"⟲ replay {what} (recorded figures)"
        self.show_status(
            f"{what} · {epochs_done:g} epochs so far · epoch loss {loss} · {tokens_per_second:,.0f} tok/s"
            f" · [b]{KEYS[self.strategy]}[/b] trains more"
        )

    def set_stale(self, stale: bool) -> None:
        """Mark a custom strategy trained on an earlier version of the label function."""
        self.stale = stale
        self.set_class(stale, "-stale")
        title = f"{self.name_shown} · {STRATEGY_TITLES[self.strategy]}"
        self.border_title = f"{title} · ⚠ stale: trained on an earlier version (x resets)" if stale else title

    def refused(self) -> None:
        self.state = "refused"
        self.set_class(False, "-running")
        self.show_status("not trained: its labels train no token (every label -100) · see the message")

    def failed(self) -> None:
        self.state = "failed"
        self.set_class(False, "-running")
        self.show_status("failed: see the message · the next burst starts from the last good state")

    def reset(self) -> None:
        self.set_stale(False)
        self.state = "idle"
        self.source = "live"
        self.border_subtitle = ""
        self.set_class(False, "-replay")
        self.losses = []
        self.holdouts = []
        self.set_class(False, "-running")
        self.query_one(Sparkline).data = []
        self._show_sparkline(False)
        self.query_one(ProgressBar).update(total=1, progress=0)
        self.show_status(self.idle_text())
        self.query_one(".panel-holdout", Static).update("held-out: (not trained yet)")
