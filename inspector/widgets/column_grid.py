"""A grid with one column per token and a fixed row-name gutter, scrolling sideways.

The token grid (labels) and the prediction grid share it: both show a text as columns,
need horizontal scrolling for long examples, a selected column moved with the arrow keys
or the mouse, and per-cell styles taken from component classes (colours live in the
stylesheet, from theme variables). Drawn with the line API, so a long text costs nothing
more than the visible part.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.color import Color
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

# A cell's text and the component classes that style it, applied in order like CSS
# layers: backgrounds blend over each other, the last colour wins and is blended over
# the final background (theme colours such as $text-disabled carry an alpha).
Cell = tuple[str, tuple[str, ...]]

SEPARATOR = "│"


class ColumnGrid(ScrollView, can_focus=True):
    """Columns of cells under a fixed gutter of row names; subclasses say what a cell holds."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "Previous token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("home", "move_to(0)", "First token", show=False),
        Binding("end", "move_to(-1)", "Last token", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "column-grid--gutter",
        "column-grid--rule",
        "column-grid--selected",
        "column-grid--message",
    }
    GUTTER = 11

    cursor: reactive[int] = reactive(0, init=False)

    class CursorMoved(Message):
        """The selected column changed: by the user (a key or a click on the grid), or set by code.

        `by_user` tells them apart. A view that moves the cursor itself (the predictions
        animation) must act on user moves only: a message of its own change arrives after
        later changes, and acting on it would set the cursor back and post again, forever.
        """

        def __init__(self, grid: ColumnGrid, position: int, by_user: bool = False) -> None:
            self.grid = grid
            self.position = position
            self.by_user = by_user
            super().__init__()

        @property
        def control(self) -> ColumnGrid:
            return self.grid

    def __init__(self, row_names: Sequence[str], *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.row_names = list(row_names)
        self.message = ""  # shown instead of columns when there are none
        self._widths: list[int] = []
        self._offsets: list[int] = []  # start of each column, after the gutter
        self._styles: dict[tuple[str, ...], Style] = {}
        self._center = False
        self._scroll_pending = False
        self._user_move = False  # True while a key or a click sets the cursor

    # --- what subclasses provide -----------------------------------------------------------

    def cell(self, row: int, column: int) -> Cell:  # pragma: no cover - abstract
        raise NotImplementedError

    def row_message(self, row: int) -> Cell | None:
        """A text that replaces a whole row (e.g. "not trained yet"), or None."""
        return None

    def gutter_components(self, row: int) -> tuple[str, ...]:
        return ("column-grid--gutter",)

    def component_style(self, components: tuple[str, ...]) -> Style:
        """The Rich style of a cell styled by these component classes, over the widget's background."""
        style = self._styles.get(components)
        if style is None:
            base = self.rich_style
            bg = Color.from_rich_color(base.bgcolor) if base.bgcolor else Color(0, 0, 0)
            fg: Color | None = None
            text_style = Style()
            for name in components:
                cs = self.get_component_styles(name)
                if cs.has_rule("background"):
                    bg = bg + cs.background
                if cs.has_rule("color"):
                    fg = cs.color
                if cs.has_rule("text_style"):
                    text_style += cs.text_style
            color = (bg + fg).rich_color if fg is not None else base.color
            style = Style(color=color, bgcolor=bg.rich_color) + text_style
            self._styles[components] = style
        return style

    def notify_style_update(self) -> None:
        self._styles.clear()  # the theme or the stylesheet changed
        super().notify_style_update()

    # --- layout ----------------------------------------------------------------------------

    def set_widths(self, widths: Sequence[int]) -> None:
        self._widths = [max(1, w) for w in widths]
        self._offsets = []
        x = 0
        for w in self._widths:
            self._offsets.append(x)
            x += w + 1
        self.virtual_size = Size(self.GUTTER + x, len(self.row_names))
        if self.cursor >= len(self._widths):
            self.cursor = max(0, len(self._widths) - 1)
        self.refresh()

    def set_row_names(self, names: Sequence[str]) -> None:
        self.row_names = list(names)
        self.virtual_size = Size(self.virtual_size.width, len(self.row_names))
        self.refresh()

    @staticmethod
    def text_width(*texts: str | None) -> int:
        return max((cell_len(t) for t in texts if t), default=1)

    # --- cursor ----------------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        if self._widths:
            self.move_by_user(min(max(0, self.cursor + delta), len(self._widths) - 1))

    def action_move_to(self, position: int) -> None:
        if self._widths:
            self.move_by_user(position % len(self._widths))

    def move_by_user(self, position: int) -> None:
        """Select a column as the user did; setting `cursor` instead is a change made by code.

        Either way a `CursorMoved` follows (if the column changed), with `by_user` telling which.
        """
        self._user_move = True
        try:
            self.cursor = position
        finally:
            self._user_move = False

    def watch_cursor(self, cursor: int) -> None:
        self.scroll_cursor_visible()
        self.refresh()
        self.post_message(self.CursorMoved(self, cursor, by_user=self._user_move))

    def scroll_cursor_visible(self, center: bool = False) -> None:
        """Bring the selected column into view once the layout is up to date.

        Columns set in the same tick change the virtual size only at the next layout, so
        scrolling now could be clamped to the old width.
        """
        self._center = self._center or center
        if not self._scroll_pending:
            self._scroll_pending = True
            self.call_after_refresh(self._scroll_now)

    def _scroll_now(self) -> None:
        if self.size.width <= self.GUTTER:  # hidden or not laid out yet: on_resize comes back here
            return
        center, self._center, self._scroll_pending = self._center, False, False
        if not 0 <= self.cursor < len(self._widths):
            return
        x, w = self._offsets[self.cursor], self._widths[self.cursor]
        view = self.size.width - self.GUTTER  # the gutter covers the left of the view
        left = int(self.scroll_x)
        if center:
            # Start the view at a column's edge, so that no column shows cut in half.
            first = max(0, bisect_right(self._offsets, x + w // 2 - view // 2) - 1)
            left = self._offsets[first] if x + w // 2 > view // 2 else 0
        elif x < left:
            left = x
        elif x + w + 1 > left + view:
            left = x + w + 1 - view
        # Assigned, not scroll_to(): right after new columns the scrollbar is not laid out
        # yet and scroll_to() would refuse; the reactive only clamps to the virtual size.
        left = max(0, min(left, self.virtual_size.width - self.size.width))
        self.scroll_target_x = left
        self.scroll_x = left

    def watch_show_horizontal_scrollbar(self, show: bool) -> None:
        # A scroll made before the scrollbar appeared did not move its thumb.
        if show:
            self.horizontal_scrollbar.position = self.scroll_x

    def on_click(self, event: events.Click) -> None:
        if event.x < self.GUTTER or not self._offsets:
            return
        x = self.scroll_offset.x + event.x - self.GUTTER
        column = bisect_right(self._offsets, x) - 1
        if 0 <= column < len(self._widths):
            self.move_by_user(column)

    # --- drawing ---------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.component_style(())
        if y >= len(self.row_names):
            return Strip.blank(width, base)
        name = f" {self.row_names[y]}"[: self.GUTTER - 1].ljust(self.GUTTER - 1) + " "
        gutter = Strip([Segment(name, self.component_style(self.gutter_components(y)))])
        view = max(0, width - self.GUTTER)
        message = self.row_message(y)
        if not self._widths:
            message = (self.message, ("column-grid--message",)) if y == 0 else ("", ())
        if message is not None:
            text, components = message
            body = Strip([Segment(" " + text, self.component_style(components))])
            return Strip.join([gutter, body.crop(0, view).extend_cell_length(view, base)])
        rule = self.component_style(("column-grid--rule",))
        start = self.scroll_offset.x
        first = max(0, bisect_right(self._offsets, start) - 1)
        lead = self._offsets[first]
        segments: list[Segment] = []
        for col in range(first, len(self._widths)):
            if self._offsets[col] > start + view:
                break
            text, components = self.cell(y, col)
            if col == self.cursor:
                components = (*components, "column-grid--selected")
            pad = self._widths[col] - cell_len(text)
            if self._offsets[col] < start:  # cut by the left edge: a blank beats half a token
                text, pad = "", self._widths[col]
            segments.append(Segment(text + " " * max(0, pad), self.component_style(components)))
            segments.append(Segment(SEPARATOR, rule))
        body = Strip(segments).crop(start - lead, start - lead + view).extend_cell_length(view, base)
        return Strip.join([gutter, body])

    def on_resize(self) -> None:
        if self._scroll_pending:
            self._scroll_now()
        self.refresh()
