"""The current lesson's prose, in the lesson pane."""

from __future__ import annotations

from textual.containers import VerticalScroll


class LessonText(VerticalScroll):
    """The current lesson's prose."""

    HELP = """\
## Lesson text

The lesson's explanation; the live view on the right shows what it describes. Scroll
with the arrow keys or the mouse once it has the focus; `n`/`p` change the lesson. `l`
makes the pane narrow, hides it, and brings it back wide: the views get the room for
more token columns. Below 120 terminal columns it starts narrow.
"""
