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

Above the prose, where it matters: the TRL (and transformers) version the lesson describes
beside the one installed (a ⚠ line when the installed major.minor differs: details may not
match), and for a lesson that trains, how long it takes live (measured by
`scripts/lesson_times.py` on the model and machine named; once its demo ran here, the time it
took) and whether a prepared run of it is stored for the model in use (`causallm-inspect
prepare --lessons N` records one). The narrow pane says it short: `TRL 1.16 = 1.16.0`,
`live 35 s ⟲ yes` (⟲: prepared, `no`, or `some` of it); hover for the whole of it.
"""
