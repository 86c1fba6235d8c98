"""The list of lessons; selecting one opens it (its prose and its live view)."""

from __future__ import annotations

from typing import Any

from textual.widgets.option_list import Option

from inspector.widgets.paging import LaidOutPaging


class LessonList(LaidOutPaging):
    """Lessons in order; `n`/`p` (or Ctrl+→/←) move to the next or previous one."""

    HELP = """\
## Lessons

Each lesson is a short text beside a live view of the model. Select one with the arrow
keys and `Enter`, the mouse, `n`/`p` (next/previous, also `Ctrl+→`/`Ctrl+←`) from
anywhere, or the command palette (`Ctrl+P`, then type a few letters of its title).
"""

    def __init__(self, lessons: list[Any], *, id: str | None = None) -> None:
        super().__init__(*(Option(f"{i + 1}. {lesson.title}", id=lesson.id) for i, lesson in enumerate(lessons)), id=id)
