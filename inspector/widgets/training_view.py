"""The training view: burst settings, one panel per strategy, and a comparison table.

The view owns the bursts: its `train` worker asks the lab (`inspector.core.lab.Lab`) for
each strategy's burst, live on the strategy's own copy of the model or replayed from a
prepared run, and shows the messages the worker posts as it goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.markup import escape
from textual.widgets import Input, Label, Select, Static

from inspector.core.errors import InspectorError, NothingToLearn
from inspector.core.lab.sources import SOURCES, speed_of
from inspector.core.training.burst import BurstSettings
from inspector.messages import (
    BurstFinished,
    BurstRefused,
    BurstStarted,
    EpochFinished,
    Failed,
    Told,
    TrainingIdle,
    TrainingReset,
    TrainingStarting,
    TrainingStepLogged,
    worker_error,
)
from inspector.widgets.comparison_table import ComparisonTable
from inspector.widgets.lab_view import LabView, ViewOptions
from inspector.widgets.paging import Picker
from inspector.widgets.strategy_panel import StrategyPanel

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from inspector.core.lab import Lab

NUMBERS = {3: "three", 4: "four"}
HINT = (
    "[b]c[/b] copy · [b]m[/b] mask · [b]t[/b] trl · [b]a[/b] all three · "
    "[b]+[/b] again · [b]Esc[/b] stop · [b]x[/b] reset"
)


class BurstSettingsBar(Horizontal):
    """Epochs per burst, learning rate and seed."""

    HELP = """\
## Burst settings

- **epochs**: how many passes over the examples one burst makes (each key press runs
  one burst; pressing again continues from where the last one ended).
- **learning rate** and **seed**: used when a strategy's trainer is made, i.e. at its
  first burst. To change them for a strategy already trained, reset with `x`.

Type a value and press `Enter` to go back to the training keys.
"""

    def compose(self) -> ComposeResult:
        yield Label("epochs")
        yield Input(id="set-epochs", type="integer", compact=True)
        yield Label("learning rate")
        yield Input(id="set-lr", type="number", compact=True)
        yield Label("seed")
        yield Input(id="set-seed", type="integer", compact=True)


class RunsBar(Horizontal):
    """Live bursts, or replays of prepared runs at a chosen speed."""

    HELP = """\
## Runs: live or prepared

- **live**: every burst trains now, on this machine.
- **prepared**: a burst replays a run stored by `causallm-inspect prepare` for exactly
  this model, data, strategy, settings and library versions: as fast as it was recorded,
  faster, or at once. A replay is labelled as one (the panel's border, its status line,
  the table and the predictions view say so), and its times are the recorded ones.
  Without a matching prepared run, or with a stale or damaged one, the burst trains live
  and a message says why. The next burst of a replayed strategy continues the recording;
  `x` resets, and *live* then trains from the untrained model.

Lesson demos that train (`g`) follow the same choice. Start the app with
`--replay-speed 5` or `--live` to choose before the talk.
"""

    def compose(self) -> ComposeResult:
        yield Label("runs")
        yield Picker([(label, value) for value, label in SOURCES.items()], id="set-runs", allow_blank=False, compact=True)
        yield Static("stored by [b]causallm-inspect prepare[/b]", id="runs-note")


class TrainingView(LabView):
    """Training bursts of the three strategies, side by side."""

    HELP = """\
## Training view

Train the same untrained model three ways and compare. Each strategy trains its own copy
of the model, so they never disturb each other. Keys: `c`, `m`, `t` run a burst of one
strategy, `a` all three in turn, `+` repeats the last burst, `Esc` stops between two
steps, `x` resets every strategy to the untrained model.
"""

    VIEW = "training"
    TITLE = "Training"
    ACTIONS = frozenset({"train", "again", "reset"})
    stale = False  # it shows the bursts as they run

    @classmethod
    def build(cls, lab: Lab, options: ViewOptions) -> TrainingView:
        epochs, lr, seed = options.settings
        return cls(lab, epochs, lr, seed, runs=options.runs, id=f"{cls.VIEW}-view")

    def show_lesson(self, lesson: Any) -> None:
        if lesson.epochs:
            self.set_epochs(lesson.epochs)

    def __init__(
        self, lab: Lab, epochs: int, learning_rate: float, seed: int, *, runs: str = "1", id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.lab = lab
        self.running = False  # a burst (or a sequence of them) runs
        self._initial = (epochs, learning_rate, seed)
        self._runs = runs if runs in SOURCES else "1"
        self.totals_steps: dict[str, int] = {}
        self.last_request: tuple[str, ...] | None = None
        self.results: dict[str, Any] = {}  # the last BurstResult of each strategy

    def compose(self) -> ComposeResult:
        yield BurstSettingsBar(id="burst-settings")
        yield RunsBar(id="runs-bar")
        note = Static("", id="train-data")
        note.display = False
        yield note
        custom = f"[b]u[/b] {escape(self.lab.name_of('custom'))} · " if "custom" in self.lab.strategies else ""
        yield Static(HINT.replace("[b]a[/b] all three", f"{custom}[b]a[/b] all {NUMBERS.get(len(self.lab.strategies), len(self.lab.strategies))}"), id="train-hint")
        for s in self.lab.strategies:
            yield StrategyPanel(s, self.lab.name_of(s))
        yield ComparisonTable(self.lab.strategies, {s: self.lab.name_of(s) for s in self.lab.strategies}, id="comparison")
        note = Static("", id="comparison-note")
        note.display = False
        yield note

    def on_mount(self) -> None:
        epochs, lr, seed = self._initial
        self.query_one("#set-epochs", Input).value = str(epochs)
        self.query_one("#set-lr", Input).value = f"{lr:g}"
        self.query_one("#set-seed", Input).value = str(seed)
        self.query_one("#set-runs", Select).value = self._runs

    def set_data_note(self, text: str) -> None:
        """Which rows of the user's data the bursts train on."""
        note = self.query_one("#train-data", Static)
        note.update(text)
        note.display = bool(text)

    def read_source(self) -> str:
        """The runs selector: "live", or a replay speed ("1", "2", "5", "instant")."""
        value = self.query_one("#set-runs", Select).value
        return value if isinstance(value, str) else "live"

    def set_source(self, value: str) -> None:
        self.query_one("#set-runs", Select).value = value

    def set_runs_note(self, text: str) -> None:
        """What the runs selector can replay here (markup)."""
        self.query_one("#runs-note", Static).update(text)

    @on(Input.Submitted)
    def _settings_entered(self) -> None:
        # Enter leaves the field, so the training keys (c, m, t...) work again.
        self.table.focus()

    def panel(self, strategy: str) -> StrategyPanel:
        return self.query_one(f"#panel-{strategy}", StrategyPanel)

    def focus_main(self) -> None:
        self.table.focus()

    @property
    def table(self) -> ComparisonTable:
        return self.query_one(ComparisonTable)

    def set_epochs(self, epochs: int) -> None:
        self.query_one("#set-epochs", Input).value = str(epochs)

    def read_settings(self) -> tuple[int, float, int]:
        """(epochs, learning rate, seed) from the inputs, or an InspectorError saying what is wrong."""
        values = []
        for key, kind, name in (("epochs", int, "epochs"), ("lr", float, "learning rate"), ("seed", int, "seed")):
            raw = self.query_one(f"#set-{key}", Input).value.strip()
            try:
                values.append(kind(raw))
            except ValueError:
                raise InspectorError(
                    f"the {name} {raw!r} is not a number", f"type a number into the {name} field"
                ) from None
        epochs, lr, seed = values
        if epochs < 1:
            raise InspectorError(f"epochs must be at least 1, not {epochs}", "type a positive whole number")
        if not 0 < lr < 1:
            raise InspectorError(f"the learning rate {lr:g} is out of range", "use a value between 0 and 1, e.g. 5e-05")
        return int(epochs), float(lr), int(seed)

    # --- bursts --------------------------------------------------------------------------

    def start(self, strategies: Iterable[str]) -> None:
        """A burst of each strategy in turn, with the settings on show (`c`, `m`, `t`, `a`, `+`)."""
        strategies = tuple(strategies)
        lab = self.lab
        if lab.loaded is None:
            self.notify("The model is still loading (or failed to): training can start once it is ready.", severity="warning")
            return
        if self.running:
            self.notify("A burst is running: Esc stops it, then start the next one.", severity="warning")
            return
        if lab.data_error:
            self.post_message(Failed("No training until the data is fixed", lab.data_error))
            return
        try:
            epochs, lr, seed = self.read_settings()
            settings = BurstSettings(epochs=epochs, learning_rate=lr, seed=seed)
        except InspectorError as exc:
            self.post_message(Failed("Check the burst settings", str(exc)))
            return
        speed = speed_of(self.read_source())
        keep = []
        for s in strategies:
            refusal = lab.refusal(s, speed)
            if refusal is not None:
                self.notify(_worded(refusal), title="Replay", severity="warning", timeout=8)
            else:
                keep.append(s)
        if not keep:
            return
        changed = [s for s in keep if (had := lab.settings_of(s)) is not None and (had.learning_rate, had.seed) != (lr, seed)]
        if changed:
            self.notify(
                f"{', '.join(changed)} keep{'s' if len(changed) == 1 else ''} the learning rate and seed of "
                "their first burst; x resets to use the new ones.",
                timeout=6,
            )
        self.running = True
        self.preparing(tuple(keep))
        self.post_message(TrainingStarting())
        self.train(tuple(keep), settings, speed)

    def stop(self) -> None:
        """Esc: the running burst ends after its current step."""
        if self.running:
            self._stop = True
            self.notify("Stopping after the current step…", timeout=3)

    def reset_all(self) -> None:
        """x: every strategy back to the untrained model."""
        if self.running:
            self.notify("Stop the running burst first (Esc).", severity="warning")
            return
        self.lab.reset()
        self.reset()
        self.post_message(TrainingReset())
        self.notify("Every strategy is back to the untrained model.", timeout=3)

    _stop = False

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def train(self, strategies: tuple[str, ...], settings: BurstSettings, speed: float | None = None) -> None:
        """Bursts of each strategy in turn; Esc, a cancel or quitting stops between two steps."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        lab = self.lab
        self._stop = False

        def should_stop() -> bool:
            return self._stop or worker.is_cancelled or lab.closing.is_set()

        def tell(text: str, severity: str) -> None:
            self.post_message(Told(text, "Prepared runs", severity))

        try:
            for strategy in strategies:
                if should_stop():
                    break
                try:
                    result = lab.burst(
                        strategy,
                        settings,
                        speed=speed,
                        on_start=lambda epochs, total, label, s=strategy: self.post_message(
                            BurstStarted(s, epochs, total, source=label)
                        ),
                        on_step=lambda p, s=strategy: self.post_message(
                            TrainingStepLogged(s, p.log, p.done, p.elapsed, p.tokens)
                        ),
                        on_epoch=lambda log, s=strategy: self.post_message(EpochFinished(s, log)),
                        should_stop=should_stop,
                        tell=tell,
                    )
                except NothingToLearn as refused:  # refused before any step: say so, go on with the next
                    self.post_message(Told(str(refused), "Nothing to learn", "warning"))
                    self.post_message(BurstRefused(strategy))
                    continue
                if result is None:  # a replay with nothing more to show: said already
                    continue
                source = lab.source_label(strategy)
                self.post_message(BurstFinished(strategy, result, source=source))
                if result.stopped:
                    break
        finally:
            self.post_message(TrainingIdle())

    def on_told(self, message: Told) -> None:
        message.stop()
        self.notify(message.text, title=message.title, severity=cast("SeverityLevel", message.severity), timeout=8)

    def label_function_changed(self) -> None:
        """The user saved their label function: a custom strategy trained on an earlier version is stale."""
        if "custom" in self.lab.strategies:
            stale = self.lab.stale("custom")
            self.panel("custom").set_stale(stale)
            self.table.set_stale("custom", stale)

    def on_worker_state_changed(self, event: Any) -> None:
        error = worker_error(event)
        if error is not None and event.worker.group == "train":
            self.failed()
            self.post_message(Failed("Training failed", error=error))

    # --- messages from the train worker -------------------------------------------------

    def preparing(self, strategies: tuple[str, ...]) -> None:
        self.last_request = strategies
        self.panel(strategies[0]).preparing(first=strategies[0] not in self.results)

    def on_burst_started(self, message: BurstStarted) -> None:
        self.totals_steps[message.strategy] = message.total_steps
        self.panel(message.strategy).started(message.total_steps, message.source)

    def on_training_step_logged(self, message: TrainingStepLogged) -> None:
        log = message.log
        speed = message.tokens / message.elapsed if message.elapsed > 0 else 0.0
        total = self.totals_steps.get(message.strategy, message.done)
        self.panel(message.strategy).step(log.loss, log.step, log.epoch, message.done, total, speed)

    def on_epoch_finished(self, message: EpochFinished) -> None:
        self.panel(message.strategy).epoch(message.log.epoch, message.log.holdout)

    def on_burst_finished(self, message: BurstFinished) -> None:
        r = message.result
        self.results[message.strategy] = r
        self.panel(message.strategy).finished(r.stopped, r.epochs_done, r.epoch_loss, r.tokens_per_second)
        self.table.burst_finished(message.strategy, r, replayed=message.source != "live")
        self._show_busy_note()
        # Let the next strategy of an "all three" run show that it is being prepared.
        if not r.stopped and self.last_request and message.strategy in self.last_request:
            i = self.last_request.index(message.strategy)
            if i + 1 < len(self.last_request):
                self.panel(self.last_request[i + 1]).preparing()

    def on_burst_refused(self, message: BurstRefused) -> None:
        self.panel(message.strategy).refused()
        if self.last_request and message.strategy in self.last_request:  # the next one is being prepared
            i = self.last_request.index(message.strategy)
            if i + 1 < len(self.last_request):
                self.panel(self.last_request[i + 1]).preparing()

    def on_training_idle(self, message: TrainingIdle) -> None:
        self.running = False
        for s in self.lab.strategies:
            panel = self.panel(s)
            if panel.state == "preparing":
                panel.state = "idle" if not panel.losses else "done"
                panel.set_class(False, "-running")
                panel.show_status(panel.idle_text() if not panel.losses else "ready · press its key to train more")

    def failed(self) -> None:
        for s in self.lab.strategies:
            if self.panel(s).state in ("preparing", "running"):
                self.panel(s).failed()

    def reset(self) -> None:
        self.results = {}
        for s in self.lab.strategies:
            self.panel(s).reset()
        self.table.reset()
        self._show_busy_note()

    def _show_busy_note(self) -> None:
        """Under the table: which strategies' step times varied too much to be compared."""
        note = self.query_one("#comparison-note", Static)
        text = self.table.busy_note()
        appears = bool(text) and not note.display
        note.update(escape(text))
        note.display = bool(text)
        if appears:  # below the table, perhaps below the screen's edge: bring it into view
            self.call_after_refresh(note.scroll_visible, animate=False)


    def prepared_runs(self, strategies: list[str]) -> bool:
        """Say which strategies have runs prepared for this model; without any, the runs selector
        goes back to live. True when it was set to replay and had to."""
        if strategies:
            self.set_runs_note(f"prepared for this model: {', '.join(sorted(set(strategies)))}")
            return False
        asked = self.read_source() != "live"
        self.set_source("live")
        self.set_runs_note("none prepared for this model: bursts train live ([b]causallm-inspect prepare[/b])")
        return asked

def _worded(refusal: tuple[str, str]) -> str:
    """What the Lab's refusal of a burst means, in the training view's keys."""
    kind, strategy = refusal
    if kind == "no-label-function":
        return "there is no label function to train: start the app with --labels-from FILE[:FUNCTION]"
    return f"{strategy} shows a prepared run: x resets it, then a live burst trains it from the untrained model."
