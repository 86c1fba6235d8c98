"""The lesson pane on the left: the lesson list, the model's status, the lesson's facts and its prose.

`l` cycles it wide → narrow → hidden (the views get the room for more token columns);
below NARROW_BELOW terminal columns it starts narrow, until `l` is pressed. The mode is a
class of the screen (`-pane-wide`...), which the stylesheet lays out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown

from inspector.widgets.lesson_facts import LessonFacts
from inspector.widgets.lesson_list import LessonList
from inspector.widgets.lesson_text import LessonText
from inspector.widgets.model_status import ModelStatus

if TYPE_CHECKING:
    from inspector.core.lab import Lab

PANE_MODES = ("wide", "narrow", "hidden")
NARROW_BELOW = 120


class LessonPane(Vertical):
    """The lessons, the model's status, the current lesson's facts and its prose."""

    def __init__(self, lessons: list[Any], lab: Lab, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lessons = lessons
        self.lab = lab
        self.mode = "wide"
        self.chosen = False  # `l` was pressed: the pane no longer follows the terminal's width

    def compose(self) -> ComposeResult:
        yield LessonList(self.lessons, id="lesson-list")
        yield ModelStatus(id="model-status")
        yield LessonFacts(self.lab, id="lesson-facts")
        with LessonText(id="lesson-scroll"):
            yield Markdown("", id="lesson-text")

    def show_lesson(self, index: int) -> None:
        option_list = self.query_one(LessonList)
        if option_list.highlighted != index:
            option_list.highlighted = index
        self.query_one(LessonFacts).show(self.lessons[index], index + 1)
        self.query_one("#lesson-text", Markdown).update(self.lessons[index].body)
        self.query_one(LessonText).scroll_home(animate=False)

    def fit(self, width: int) -> None:
        """Follow the terminal's width, unless the learner chose a mode."""
        if not self.chosen:
            self.set_mode("narrow" if width < NARROW_BELOW else "wide")

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.query_one(LessonFacts).set_narrow(mode == "narrow")
        for m in PANE_MODES:
            self.screen.set_class(m == mode, f"-pane-{m}")

    def cycle(self) -> None:
        self.chosen = True
        self.set_mode(PANE_MODES[(PANE_MODES.index(self.mode) + 1) % len(PANE_MODES)])
