"""The labels grid: one column per token, showing position, token, input_id and label.

Masked labels are greyed out *and* read differently (struck `-100`, a `·` in the loss
row), so colour is never the only signal. Columns where `mask` and `trl` disagree are
highlighted and marked `≠`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

from inspector.widgets.column_grid import Cell, ColumnGrid

ROWS = ("pos", "token", "input_id", "label", "loss", "mask≠trl")
TRAINED_MARK = "✓"
MASKED_MARK = "·"
UNSCORED_MARK = "–"  # position 0: nothing precedes it, so it is never predicted
DIFFERS_MARK = "≠"
# The role row's words, short enough for a token's column (`core.data.roles.ROLES`); the legend says them in full.
ROLE_LABELS = {"system": "sys", "user": "user", "assistant": "asst", "reasoning": "think", "tool_call": "call",
               "tool_result": "tool", "": ""}
ROLE_LEGEND = "role: sys system · user · asst assistant · think reasoning · call a tool call · tool a tool's result"


class TokenGrid(ColumnGrid):
    """The tokens of the example under one label strategy."""

    HELP = """\
## Token grid

One column per token of the formatted example, in order:

- **pos**: the position in the sequence.
- **token**: the token's text; `␣` is a space, `↵` a newline, special tokens such as
  `{bos}` and `{eos}` show by name.
- **input_id**: what the model reads.
- **label**: what the loss compares the model's guess with. The model shifts labels
  itself: the guess made at position *i − 1* is scored against the label at *i*.
- **loss**: `✓` the label is trained, `·` it is masked (`-100`, struck through and
  greyed: the loss skips it), `–` position 0, which nothing precedes, so it is never
  predicted.
- **role** (conversations rendered by a chat template): the part of the conversation each
  token belongs to: `sys` (system), `user`, `asst` (an assistant's answer), `think` (an
  assistant's reasoning, its `<think>` markers included, an empty block too), `call` (an
  assistant's tool call) or `tool` (a tool's result); blank for the template's own text
  between messages. Read it with the **loss** row: a `think` column with `✓` is reasoning
  the model is trained to write, with `·` reasoning it only reads (or never sees).
- **mask≠trl**: `≠` where the `mask` and `trl` strategies disagree (shown under those two);
  under your own label function (`--labels-from`), **≠mask**: where yours differs from mask
  (**≠trl** for exercise 8's file, **≠copy** for exercise 10's).

Keys: `←`/`→` select a column (its details show below), `Home`/`End` jump, the mouse
selects too. Wide examples scroll sideways.
"""

    COMPONENT_CLASSES: ClassVar[set[str]] = ColumnGrid.COMPONENT_CLASSES | {
        "token-grid--masked",
        "token-grid--masked-label",
        "token-grid--trained-label",
        "token-grid--special",
        "token-grid--differs",
        "token-grid--role-reasoning",
        "token-grid--role-tool_call",
        "token-grid--role-tool_result",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(ROWS, id=id)
        self.labeled: Any = None  # LabeledExample on display
        self.differs: frozenset[int] = frozenset()
        self.show_differs = False
        self.roles: list[str] | None = None  # each token's role (a chat template's conversation)
        self.message = "waiting for the model…"

    @property
    def rows(self) -> tuple[Any, ...]:
        """The TokenRows on display (empty while there are none)."""
        return self.labeled.rows if self.labeled is not None else ()

    @property
    def masked_flags(self) -> list[bool]:
        return [r.masked for r in self.rows]

    def show(
        self,
        labeled: Any,
        differs: Collection[int] = (),
        *,
        show_differs: bool = False,
        differs_row: str = ROWS[-1],
        roles: list[str] | None = None,
    ) -> None:
        """Show these labels; `differs` marks columns (`differs_row` names what they differ from);
        `roles`, where a chat template rendered the text, adds a row with each token's role."""
        self.labeled = labeled
        self.differs = frozenset(differs)
        self.show_differs = show_differs
        self.roles = roles
        names = [*ROWS[:2], *(["role"] if roles is not None else []), *ROWS[2:-1], differs_row]
        if self.row_names != names:
            self.set_row_names(names)
        widths = [self.text_width(r.text, str(r.id), str(r.label), str(r.position)) for r in self.rows]
        if roles is not None:
            widths = [max(w, len(ROLE_LABELS.get(role, role))) for w, role in zip(widths, roles)]
        self.set_widths(widths)

    def clear(self, message: str) -> None:
        self.labeled = None
        self.message = message
        self.set_widths([])

    def cell(self, row: int, column: int) -> Cell:
        r = self.labeled.rows[column]
        layers: tuple[str, ...] = ()
        if self.show_differs and column in self.differs:
            layers += ("token-grid--differs",)
        if r.masked:
            layers += ("token-grid--masked",)
        name = self.row_names[row] if row < len(self.row_names) - 1 else ROWS[-1]
        if name == "role":
            role = self.roles[column] if self.roles is not None else ""
            styled = role in ("reasoning", "tool_call", "tool_result")
            return ROLE_LABELS.get(role, role), layers + ((f"token-grid--role-{role}",) if styled else ())
        if name == "pos":
            return str(r.position), layers
        if name == "token":
            return r.text, layers + (("token-grid--special",) if r.special else ())
        if name == "input_id":
            return str(r.id), layers
        if name == "label":
            return str(r.label), layers + ("token-grid--masked-label" if r.masked else "token-grid--trained-label",)
        if name == "loss":
            mark = UNSCORED_MARK if r.position == 0 else MASKED_MARK if r.masked else TRAINED_MARK
            return mark, layers
        return (DIFFERS_MARK if self.show_differs and column in self.differs else ""), layers
