"""Teacher-forced guesses as columns: each input token, the true next token, and under it
each model's guess, marked ✓ or ✗ (and coloured), revealed up to the animation's index."""

from __future__ import annotations

from typing import Any, ClassVar

from inspector.widgets.column_grid import Cell, ColumnGrid

FIXED_ROWS = ("pos", "input", "true next")
RIGHT, WRONG = "✓", "✗"


class PredictionGrid(ColumnGrid):
    """One column per position; one row per model (untrained, copy, mask, trl)."""

    HELP = """\
## Teacher-forced predictions

Each column is a position of the text. **input** is the token there, **true next** the
token that really follows, and every model row shows that model's most likely next token,
given the true tokens up to this column: `✓` when it is the true next token, `✗` when
not. Bold columns are the answer: what the task is about.

A row marked `⟲` shows predictions recorded by `causallm-inspect prepare` (a replay),
not computed now. A row that says *not trained yet* has its key next to it: press it to train that
strategy (a burst with the Training view's settings).
"""

    COMPONENT_CLASSES: ClassVar[set[str]] = ColumnGrid.COMPONENT_CLASSES | {
        "prediction-grid--right",
        "prediction-grid--wrong",
        "prediction-grid--answer",
        "prediction-grid--pending",
    }

    def __init__(self, models: tuple[str, ...], *, id: str | None = None) -> None:
        super().__init__((*FIXED_ROWS, *models), id=id)
        self.models = models
        self.rows_by_model: dict[str, list[Any] | None] = {}
        self.messages: dict[str, str] = {}  # a model row's text while it has no predictions
        self.answer_positions: frozenset[int] = frozenset()
        self.revealed = -1  # guesses are shown for positions <= revealed
        self.message = "waiting for the model…"

    @property
    def base(self) -> list[Any]:
        """The rows of any model (input and true next tokens are the same for all)."""
        return next((rows for rows in self.rows_by_model.values() if rows), [])

    def show(
        self,
        rows_by_model: dict[str, list[Any] | None],
        answer_positions: frozenset[int],
        messages: dict[str, str],
        replayed: frozenset[str] = frozenset(),
    ) -> None:
        """Show every model's rows; a model in `replayed` comes from a prepared run (marked ⟲)."""
        self.set_row_names([*FIXED_ROWS, *(f"{m} ⟲" if m in replayed else m for m in self.models)])
        self.rows_by_model = rows_by_model
        self.answer_positions = answer_positions
        self.messages = messages
        widths = []
        for i, r in enumerate(self.base):
            guesses = [rows[i].predicted for rows in rows_by_model.values() if rows]
            widths.append(self.text_width(str(r.position), r.input, r.target or "", *guesses) + 2)
        self.set_widths(widths)

    def set_messages(self, messages: dict[str, str]) -> None:
        self.messages = messages
        self.refresh()

    def clear(self, message: str) -> None:
        self.rows_by_model = {}
        self.message = message
        self.set_widths([])

    def set_revealed(self, index: int) -> None:
        self.revealed = index
        self.refresh()

    def row_message(self, row: int) -> Cell | None:
        if row < len(FIXED_ROWS):
            return None
        model = self.models[row - len(FIXED_ROWS)]
        if self.rows_by_model.get(model):
            return None
        return self.messages.get(model, "not trained yet"), ("prediction-grid--pending",)

    def cell(self, row: int, column: int) -> Cell:
        base = self.base[column]
        layers: tuple[str, ...] = ("prediction-grid--answer",) if column in self.answer_positions else ()
        if row == 0:
            return str(base.position), layers
        if row == 1:
            return base.input, layers
        if row == 2:
            return (base.target if base.target is not None else "(end)"), layers
        rows = self.rows_by_model.get(self.models[row - len(FIXED_ROWS)])
        if not rows or column > self.revealed:
            return "", layers
        r = rows[column]
        if r.correct is None:
            return f"  {r.predicted}", layers
        kind = "prediction-grid--right" if r.correct else "prediction-grid--wrong"
        return f"{RIGHT if r.correct else WRONG} {r.predicted}", layers + (kind,)
