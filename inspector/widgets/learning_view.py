"""The learning view: every position's probability of its true next token, epoch by epoch,
for each strategy trained, as a heat map; an epoch scrubber and a play key; the loss curves.

The rows come from the core (`Lab.learning`, in this view's `_compute` worker): the
teacher-forced rows of the text recorded after every epoch (epoch 0: the untrained model).
Each cell shows p(true) as a digit (tenths) over a colour of the theme's ramp, so the colour
is not the only signal; the selected cell's exact value is written out below. Play steps
the selected epoch with a paused-when-idle `set_interval`; with `App.animation_level ==
"none"` it jumps to the last epoch at once. The loss chart (textual-plotext) is mounted on
first use: importing plotext takes a second, which the app's first frame does not wait for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.color import Color
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Select, Static

from inspector.widgets.lab_view import PlayingView
from inspector.widgets.paging import Picker

if TYPE_CHECKING:
    from inspector.core.lab import Lab
    from inspector.core.training.learning import Learning

EPOCH_SECONDS = 0.5  # one epoch per frame of the animation
CHOICES = ("held-out example (with its answer)", "training example 1")
LEGEND = (
    "p(true next token) per position (digit: tenths, █ = 1) · one row per epoch, 0 = untrained · "
    "▲ under a column: the answer"
)


def ramp(app: Any, p: float) -> Color:
    """The cell colour of a probability: the theme's surface (0) blended towards its primary (1).
    The lightness moves one way only, so the order of the colours is the order of the values."""
    variables = app.theme_variables
    low = Color.parse(variables.get("surface", "#1e1e1e"))
    high = Color.parse(variables.get("primary", "#0178d4"))
    return low.blend(high, max(0.0, min(1.0, p)))


def digit(p: float | None) -> str:
    if p is None:
        return "·"
    return "█" if p >= 0.995 else str(int(p * 10))


class HeatMap(Widget, can_focus=True):
    """The heat map of every strategy's epochs; the view draws it, the cursor is the view's."""

    DEFAULT_CSS = """
    HeatMap { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = Text("train a strategy (c, m, t) to see its epochs here")

    def show(self, text: Text) -> None:
        self.text = text
        self.refresh(layout=True)

    def render(self) -> Text:
        return self.text

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return max(1, len(self.text.plain.splitlines()))


class LearningView(PlayingView):
    """Teacher-forced p(true) of one text, epoch by epoch, per strategy, with the loss curves."""

    DEFAULT_CSS = """
    LearningView #learn-chart { height: 1fr; min-height: 8; }
    LearningView #learn-cell, LearningView #learn-summary { height: auto; margin-top: 1; }
    """

    HELP = """\
## Learning view

Where the learning goes: one row per epoch (0 is the untrained model), one column per
position, each cell the probability the model gave the true next token there (a digit in
tenths over a colour; the selected cell's value is written out below). The columns marked
▲ are the answer's. `[` / `]` move the epoch, `←` / `→` the position, `Space` plays the
epochs one by one (and `r` from epoch 0). Below, the loss of each strategy per epoch.
The summary lines give the mean p(true) over the prompt and over the answer, epoch 0 and
last. Train with `c`, `m`, `t` (`+` in the training view trains more epochs).
"""

    VIEW = "learning"
    TITLE = "Learning"
    ACTIONS = frozenset({"step", "jump", "epoch", "train", "toggle_play", "replay"})
    STALE_AFTER = frozenset({"reset", "epoch", "burst-finished"})  # each epoch's rows grow the heat map
    GROUP = "learning"
    FAILURE = "The learning view could not be computed"
    FRAME_SECONDS = EPOCH_SECONDS

    epoch: reactive[int] = reactive(0, init=False)
    position: reactive[int] = reactive(0, init=False)

    class Computed(Message):
        def __init__(self, learning: Learning) -> None:
            self.learning = learning
            super().__init__()

    def __init__(self, lab: Lab, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lab = lab
        self.choice = 0
        self.learning: Learning | None = None
        self._chart: Any = None

    def compose(self) -> ComposeResult:
        yield Picker([(label, i) for i, label in enumerate(CHOICES)], allow_blank=False, compact=True, id="learn-text")
        yield Static(LEGEND, id="learn-legend")
        yield HeatMap(id="learn-heat")
        yield Static("", id="learn-cell")
        yield Static("", id="learn-summary")
        yield Vertical(id="learn-chart")
        yield Static("", id="learn-status")

    def focus_main(self) -> None:
        self.query_one(HeatMap).focus()

    # --- data ------------------------------------------------------------------------------

    @property
    def last_epoch(self) -> int:
        curves = self.learning.curves if self.learning else {}
        return max((c.last for c in curves.values()), default=0)

    @property
    def length(self) -> int:
        curves = self.learning.curves if self.learning else {}
        return len(next(iter(curves.values())).epochs[0]) if curves else 0

    @property
    def text(self) -> str:
        texts = self.lab.default_texts()
        return texts[min(self.choice, len(texts) - 1)]

    # PlayingView's frames: the epochs.
    @property
    def has_frames(self) -> bool:
        return True

    @property
    def last_frame(self) -> int:
        return self.last_epoch

    @property
    def frame(self) -> int:
        return self.epoch

    @frame.setter
    def frame(self, value: int) -> None:
        self.epoch = value

    def compute(self) -> None:
        self._set_status("computing…")
        self._compute(self.text)

    @work(thread=True, exclusive=True, group="learning", exit_on_error=False)
    def _compute(self, text: str) -> None:
        self.post_message(self.Computed(self.lab.learning(text)))

    def compute_failed(self) -> None:
        self._set_status("the epochs could not be computed: see the message")

    @on(Select.Changed, "#learn-text")
    def _picked(self, event: Select.Changed) -> None:
        if isinstance(event.value, int) and event.value != self.choice:
            self.choice = event.value
            self.request()

    def on_learning_view_computed(self, message: Computed) -> None:
        message.stop()
        if message.learning.text != self.text:
            return
        first = self.learning is None or not self.learning.curves
        followed = self.epoch >= self.last_epoch  # at the last epoch: stay there as epochs come in
        self.learning = message.learning
        self.position = min(self.position, max(0, self.length - 1))
        self._draw_chart()
        if first and self.learning.curves:
            self.replay()  # the first epochs shown: played from the untrained model on
        elif followed and not self.playing:
            self.epoch = self.last_epoch
            self.refresh_texts()
        else:
            self.epoch = min(self.epoch, self.last_epoch)
            self.refresh_texts()

    # --- epochs and positions --------------------------------------------------------------

    def step_epoch(self, delta: int) -> None:
        self.playing = False
        self.epoch = min(max(0, self.epoch + delta), self.last_epoch)

    def step(self, delta: int) -> None:
        if self.length:
            self.position = min(max(0, self.position + delta), self.length - 1)

    def jump(self, end: bool) -> None:
        if self.length:
            self.position = self.length - 1 if end else 0

    def watch_epoch(self, epoch: int) -> None:
        self.refresh_texts()

    def watch_position(self, position: int) -> None:
        self.refresh_texts()

    # --- drawing ---------------------------------------------------------------------------

    def _set_status(self, text: str) -> None:
        self.query_one("#learn-status", Static).update(text)

    def refresh_texts(self) -> None:
        learning = self.learning
        heat = self.query_one(HeatMap)
        if learning is None or not learning.curves:
            notes = "\n".join(learning.notes.values()) if learning else ""
            heat.show(Text(notes or "No strategy trained yet: press c, m or t to train one (F3: the training view)."))
            self.query_one("#learn-cell", Static).update("")
            self.query_one("#learn-summary", Static).update("")
            self._set_status("")
            return
        heat.show(self._heat())
        self.query_one("#learn-cell", Static).update(self._cell())
        summary = learning.summary_lines() + list(learning.notes.values())
        self.query_one("#learn-summary", Static).update("\n".join(summary))
        state = "▶ playing" if self.playing else "■ last epoch" if self.epoch >= self.last_epoch else "‖ paused"
        self._set_status(
            f"{state} · epoch {self.epoch}/{self.last_epoch} · [ ] epoch · ←/→ position · space play · r replay"
        )

    def _heat(self) -> Text:
        assert self.learning is not None
        out = Text(no_wrap=True, overflow="ellipsis")
        answer = self.learning.answer
        for curve in self.learning.curves.values():
            out.append(f"{curve.name}\n", style="bold")
            for epoch in sorted(curve.epochs):
                selected = epoch == self.epoch
                out.append(f"{'▶' if selected else ' '}{epoch:>3} ", style="bold" if selected else "dim")
                for row in curve.epochs[epoch]:
                    p = row.p_target
                    style = f"on {ramp(self.app, p or 0.0).hex}" if p is not None else ""
                    if selected and row.position == self.position:
                        style += " reverse bold"
                    out.append(f"{digit(p):>2}", style=style)
                out.append("\n")
            out.append("     ")
            width = len(curve.epochs[0])
            out.append("".join(" ▲" if i in answer else "  " for i in range(width)) + "\n", style="bold")
        out.rstrip()
        return out

    def _cell(self) -> Text:
        """The selected cell in words, for every strategy at the selected epoch, and what it reads."""
        assert self.learning is not None
        out = Text(no_wrap=True, overflow="ellipsis")
        for curve in self.learning.curves.values():
            rows = curve.epochs.get(self.epoch)
            if rows is None:
                out.append(f"{curve.name}: no epoch {self.epoch} (last {curve.last})\n", style="dim")
                continue
            r = rows[min(self.position, len(rows) - 1)]
            if r.target is None:
                out.append(f"{curve.name}, epoch {self.epoch}, position {r.position}: {r.input!r} ends the text\n")
                continue
            mark = "✓" if r.correct else "✗"
            out.append(
                f"{curve.name}, epoch {self.epoch}, position {r.position}: after {r.input!r} "
                f"p({r.target!r}) = {r.p_target:.3f}, guess {r.predicted!r} {mark}"
                f"{' · answer' if r.position in self.learning.answer else ''}\n"
            )
            out.append("  reads: ", style="dim")
            out.append(repr("".join(x.predicted for x in rows).replace("␣", " ")) + "\n")
        out.rstrip()
        return out

    def _draw_chart(self) -> None:
        """The loss per epoch of every strategy, with labelled axes (textual-plotext, mounted on first use)."""
        learning = self.learning
        if learning is None or not any(c.losses for c in learning.curves.values()):
            return
        if self._chart is None:
            from textual_plotext import PlotextPlot

            self._chart = PlotextPlot(id="learn-loss")
            self.query_one("#learn-chart", Vertical).mount(self._chart)
        plt = self._chart.plt
        plt.clear_data()
        plt.clear_figure()
        for curve in learning.curves.values():
            if curve.losses:
                plt.plot([e for e, _ in curve.losses], [loss for _, loss in curve.losses], label=curve.name, marker="braille")
        plt.xlabel("epoch")
        plt.ylabel("loss")
        plt.title("mean training loss per epoch")
        epochs = sorted({e for c in learning.curves.values() for e, _ in c.losses})
        plt.xticks(epochs)
        self._chart.refresh()
