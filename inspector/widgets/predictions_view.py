"""The predictions view: teacher-forced guesses of every model, animated token by token.

The rows come from the lab (`Lab.predictions`, in the view's `predict` worker); the view
plays a reactive index (`PlayingView`) and reveals one more column per frame. With
`App.animation_level == "none"` everything shows at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.reactive import reactive
from textual.widgets import Select, Static

from inspector.messages import PredictionsComputed
from inspector.widgets.column_grid import ColumnGrid
from inspector.widgets.lab_view import PlayingView, ViewOptions
from inspector.widgets.paging import Picker
from inspector.widgets.prediction_grid import PredictionGrid
from inspector.widgets.strategy_panel import KEYS

if TYPE_CHECKING:
    from inspector.core.lab import Lab

FRAME_SECONDS = 0.12
LEGEND = "under each token, each model's guess for the next one · ✓ right  ✗ wrong · bold columns: the answer"


def _reads(rows: list[Any], upto: int) -> str:
    """The guesses read as one text, the way the article prints them."""
    return "".join(r.predicted for r in rows[: upto + 1]).replace("␣", " ")


class PredictionsView(PlayingView):
    """Side-by-side teacher-forced predictions of the untrained and the trained models."""

    HELP = """\
## Predictions view

Teacher forcing, as in training: the model reads the true tokens and, at every position,
guesses the next one. Rows: the untrained model, then each strategy once trained.
`Space` pauses and resumes, `←`/`→` step, `r` replays; the selected position lists the
five most likely next tokens of every model. `c`, `m`, `t` train a strategy that has
no row yet. Pick another text with the selector at the top.
"""

    VIEW = "predictions"
    TITLE = "Predictions"
    ACTIONS = frozenset({"step", "jump", "train", "toggle_play", "replay"})
    STALE_AFTER = frozenset({"reset", "burst-started", "burst-finished", "idle"})
    GROUP = "predict"
    FAILURE = "The predictions could not be computed"
    FRAME_SECONDS = FRAME_SECONDS

    index: reactive[int] = reactive(-1, init=False)

    @classmethod
    def build(cls, lab: Lab, options: ViewOptions) -> PredictionsView:
        return cls(lab, options.predict_choices, id=f"{cls.VIEW}-view")

    def __init__(self, lab: Lab, choices: list[tuple[str, str]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lab = lab
        self.models = ("untrained", *lab.strategies)  # one row each, under the fixed rows
        self.status_text = ""  # the status line's text
        self.choices = choices  # (label, text)
        self.text = choices[0][1] if choices else ""
        self.rows: dict[str, list[Any] | None] = {}
        self.notes: dict[str, str] = {}  # why a model's row is empty, from the app
        self.sources: dict[str, str] = {}  # "replay, epoch 3" for rows from a prepared run
        self.answer_positions: frozenset[int] = frozenset()

    def compose(self) -> ComposeResult:
        picker: Select[int] = Picker(
            [(label, i) for i, (label, _) in enumerate(self.choices)],
            allow_blank=False,
            compact=True,
            id="predict-example",
        )
        picker.display = len(self.choices) > 1
        yield picker
        yield Static(LEGEND, id="predict-legend")
        yield PredictionGrid(self.models, id="prediction-grid")
        yield Static("", id="predict-summary")
        yield Static("", id="predict-top")
        yield Static("", id="predict-status")

    def focus_main(self) -> None:
        self.grid.focus()

    @property
    def grid(self) -> PredictionGrid:
        return self.query_one(PredictionGrid)

    @property
    def length(self) -> int:
        return len(self.grid.base)

    @property
    def finished(self) -> bool:
        """The animation has revealed the last position."""
        return self.length > 0 and self.index >= self.length - 1

    # PlayingView's frames: the positions revealed.
    @property
    def has_frames(self) -> bool:
        return self.length > 0

    @property
    def last_frame(self) -> int:
        return self.length - 1

    @property
    def frame(self) -> int:
        return self.index

    @frame.setter
    def frame(self, value: int) -> None:
        self.index = value

    # --- data ------------------------------------------------------------------------------

    def model_ready(self) -> None:
        self.grid.clear("computing predictions…")
        super().model_ready()

    def model_failed(self, problem: str) -> None:
        self.grid.clear("no model: see the message on the left")

    def hidden_change(self) -> None:
        self.grid.set_messages(self._messages())  # a burst may have started or ended

    def compute(self) -> None:
        self._set_status("computing teacher-forced predictions…")
        self._compute(self.text)

    @work(thread=True, exclusive=True, group="predict", exit_on_error=False)
    def _compute(self, text: str) -> None:
        """Teacher-forced rows of the untrained model and of every trained strategy (the lab caches them)."""
        found = self.lab.predictions(text)
        self.post_message(PredictionsComputed(text, found.rows, found.answer, notes=found.notes, sources=found.sources))

    def compute_failed(self) -> None:
        self._set_status("the predictions could not be computed: see the message")
        self.grid.clear("no predictions: see the message")

    @on(Select.Changed, "#predict-example")
    def _picked(self, event: Select.Changed) -> None:
        if isinstance(event.value, int) and self.choices[event.value][1] != self.text:
            self.text = self.choices[event.value][1]
            self.request()

    def on_predictions_computed(self, message: PredictionsComputed) -> None:
        message.stop()
        if message.text != self.text:
            return
        if (
            message.rows == self.rows
            and message.answer_positions == self.answer_positions
            and message.notes == self.notes
            and message.sources == self.sources
        ):
            self.grid.set_messages(self._messages())  # a burst may have started or ended
            return  # nothing new to animate: let the animation be
        self.notes = message.notes
        self.sources = message.sources
        self.rows = message.rows
        self.answer_positions = message.answer_positions
        self.grid.show(self.rows, self.answer_positions, self._messages(), replayed=frozenset(self.sources))
        replays = ", ".join(f"{m} ({src.removeprefix('replay, ')})" for m, src in self.sources.items())
        self.query_one("#predict-legend", Static).update(
            LEGEND + (f"\n⟲ recorded by causallm-inspect prepare, not computed now: {replays}" if replays else "")
        )
        self.replay()

    def _messages(self) -> dict[str, str]:
        training = self.lab.training_now
        out = {}
        for s in self.lab.strategies:
            name = self.lab.name_of(s)
            if training == s:
                out[s] = f"training {name} now: its row fills in when the burst ends"
            elif s in self.notes:
                out[s] = self.notes[s]
            else:
                out[s] = f"not trained yet · press {KEYS[s]} to train {name}"
        return out

    # --- animation -------------------------------------------------------------------------

    def step(self, delta: int) -> None:
        if self.length:
            self.playing = False
            self.index = min(max(0, self.index + delta), self.length - 1)

    def jump(self, end: bool) -> None:
        if self.length:
            self.playing = False
            self.index = self.length - 1 if end else 0

    def watch_index(self, index: int) -> None:
        self.grid.set_revealed(index)
        if index >= 0 and self.grid.cursor != index:
            self.grid.cursor = index
        self.refresh_texts()

    @on(ColumnGrid.CursorMoved, "#prediction-grid")
    def _clicked(self, event: ColumnGrid.CursorMoved) -> None:
        # Only the user's moves: the grid also reports the cursor that watch_index sets, and
        # such a message, handled after the animation moved on, would pull the index back.
        if event.by_user and event.position < self.length:
            self.playing = False
            self.index = event.position

    # --- texts -----------------------------------------------------------------------------

    def _set_status(self, text: str) -> None:
        self.status_text = text
        self.query_one("#predict-status", Static).update(text)

    def refresh_texts(self) -> None:
        n = self.length
        if n == 0:
            return
        i = max(0, self.index)
        state = "▶ playing" if self.playing else "■ end" if self.finished else "‖ paused"
        self._set_status(f"{state} · position {i}/{n - 1} · space pause/resume · ←/→ step · r replay")
        self.query_one("#predict-summary", Static).update(self._summary(i))
        self.query_one("#predict-top", Static).update(self._top(i))

    def _summary(self, upto: int) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis")
        for m in self.models:
            rows = self.rows.get(m)
            name = self.lab.name_of(m) if m != "untrained" else m
            label = name + (" ⟲" if m in self.sources else "")
            out.append(f"{label:<{max(10, len(label) + 1)}}", style="bold")
            if not rows:
                out.append("—\n", style="dim")
                continue
            seen = [r for r in rows[: upto + 1] if r.correct is not None]
            answer = [r for r in seen if r.position in self.answer_positions]
            prompt = [r for r in seen if r.position not in self.answer_positions]
            out.append(f"prompt {sum(r.correct for r in prompt):>2}/{len(prompt):<2} ✓  ")
            out.append(f"answer {sum(r.correct for r in answer)}/{len(answer)} ✓  ")
            out.append("reads: ", style="dim")
            out.append(repr(_reads(rows, upto)) + "\n")
        out.rstrip()
        return out

    def _top(self, i: int) -> Group | str:
        present = [(m, rows) for m, rows in self.rows.items() if rows]
        if not present or i >= len(present[0][1]):
            return ""
        base = present[0][1][i]
        if base.target is None:
            title = f"position {i}: {base.input!r} ends the text; top 5 guesses of what would follow"
        else:
            title = f"position {i}: after {base.input!r} the true next token is {base.target!r}; top 5 guesses"
        table = Table(box=None, padding=(0, 1), expand=False)
        for m, _ in present:
            table.add_column(m, no_wrap=True, overflow="ellipsis", max_width=18)
        ranks = max(len(rows[i].top) for _, rows in present)
        for k in range(ranks):
            cells = []
            for _, rows in present:
                top = rows[i].top
                if k < len(top):
                    c = top[k]
                    mark = "✓ " if base.target_id is not None and c.id == base.target_id else "  "
                    cells.append(f"{mark}{c.text} {c.prob:.2f}")
                else:
                    cells.append("")
            table.add_row(*cells)
        return Group(Text(title, style="italic"), table)
