"""The lines above the lesson's prose: the library versions it describes beside those installed,
and for a lesson that trains, how long it takes live and whether a prepared run of it is stored.

The text is `inspector.core.lessons.facts.header_lines`, the lines `lesson N --plain` prints;
the narrow pane gets their short form. Whether a prepared run is stored is asked of the Lab
in a worker (it reads the run store) once the model is loaded; a demo that ran live in this
session replaces the measured seconds with its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from inspector.core.errors import InspectorError

if TYPE_CHECKING:
    from inspector.core.lab import Lab
    from inspector.core.lessons.facts import PreparedState
    from inspector.core.lessons.model import Lesson

Settings = Callable[[], tuple[int, float, int]]  # the burst settings on show (raises InspectorError)


class LessonFacts(Vertical):
    """The versions line, and the speaker's line (live seconds, prepared run)."""

    class Checked(Message):
        """The worker found which of what prepare records for a lesson is stored."""

        def __init__(self, lesson_id: str, state: PreparedState | None) -> None:
            self.lesson_id = lesson_id
            self.state = state
            super().__init__()

    def __init__(self, lab: Lab, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lab = lab
        self.settings: Settings | None = None  # the training view's, set by the screen
        self.lesson: Lesson | None = None
        self.number = 0
        self.narrow = False
        self.ready = False  # the model is loaded: the run store can be asked
        self.prepared: dict[str, PreparedState | None] = {}  # lesson id -> what is stored
        self.measured: dict[str, float] = {}  # lesson id -> seconds its demo took live here
        self.lines: list[str] = []  # the lines on show

    def compose(self) -> ComposeResult:
        yield Static("", id="facts-versions", markup=False)
        yield Static("", id="facts-speaker", markup=False)

    def on_mount(self) -> None:
        self.display = False

    # --- what changes it ---------------------------------------------------------------------

    def show(self, lesson: Lesson, number: int) -> None:
        self.lesson, self.number = lesson, number
        self._draw()

    def set_narrow(self, narrow: bool) -> None:
        self.narrow = narrow
        self._draw()

    def model_ready(self) -> None:
        self.ready = True
        self.check()

    def demo_timed(self, lesson_id: str, seconds: float) -> None:
        """The lesson's demo ran live here in `seconds`: shown instead of the measured part."""
        self.measured[lesson_id] = seconds
        self._draw()

    def check(self) -> None:
        """Ask the Lab (in a worker) which of what prepare records for the lesson is stored, with
        the burst settings on show (read here, on the UI thread)."""
        from inspector.core.lessons.facts import trains

        lesson = self.lesson
        if lesson is None or not self.ready or not trains(lesson):
            return
        self._check(lesson, self._settings(lesson))

    def _settings(self, lesson: Lesson) -> tuple[int, float | None, int]:
        from inspector.core.lab.context import lesson_epochs
        from inspector.core.training.burst import DEFAULT_SEED

        try:
            if self.settings is None:
                raise InspectorError("no settings", "")
            return self.settings()
        except InspectorError:
            return lesson_epochs(lesson), None, DEFAULT_SEED

    @work(thread=True, exclusive=True, group="lesson-facts", exit_on_error=False)
    def _check(self, lesson: Lesson, shown: tuple[int, float | None, int]) -> None:
        from inspector.core.training.burst import BurstSettings

        epochs, lr, seed = shown
        try:
            state = self.lab.prepared_state(lesson, BurstSettings(epochs=epochs, learning_rate=lr, seed=seed))
        except (InspectorError, OSError):  # no model, an unreadable store: nothing said of it
            state = None
        self.post_message(self.Checked(lesson.id, state))

    def on_lesson_facts_checked(self, message: Checked) -> None:
        message.stop()
        self.prepared[message.lesson_id] = message.state
        self._draw()

    # --- drawing -----------------------------------------------------------------------------

    def _draw(self) -> None:
        from inspector.core.lessons.facts import header_lines, speaker_lines, version_lines, version_notes

        lesson = self.lesson
        if lesson is None:
            self.display, self.lines = False, []
            return
        notes = version_notes(lesson)
        options = dict(prepared=self.prepared.get(lesson.id), measured=self.measured.get(lesson.id))
        form = "narrow" if self.narrow else "pane"
        versions = version_lines(notes, form=form)
        speaker = speaker_lines(lesson, self.number, form=form, **options)
        for widget_id, lines in (("#facts-versions", versions), ("#facts-speaker", speaker)):
            static = self.query_one(widget_id, Static)
            static.update("\n".join(lines))
            static.display = bool(lines)
        self.query_one("#facts-versions").set_class(any(n.differs for n in notes), "-differs")
        self.lines = [*versions, *speaker]
        self.display = bool(self.lines)
        # The pane's short lines: the whole of them (`lesson N --plain`'s) on hover.
        self.tooltip = "\n".join(header_lines(lesson, self.number, **options)) or None
