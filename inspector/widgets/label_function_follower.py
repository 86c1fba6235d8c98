"""Following the user's label function (--labels-from): its file's saves, its reload in the
label process, and the check of an exercise's file, each in a worker, off the UI thread.

A widget without a face: it posts `LabelFunctionFollower.Reloaded` (the new version, the
error of a version not used, or None; it says which in a notification) and `LabelFunctionFollower.ExerciseChecked` (a
CheckReport), which bubble to the screen; it touches no other widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.widget import Widget

from inspector.messages import Failed, worker_error

if TYPE_CHECKING:
    from inspector.core.lab import Lab

_FAILURES = {
    "label-file": "Saves of your label function are not followed any more",
    "label-reload": "Your label function could not be reloaded",
    "exercise": "The exercise could not be checked",
}


class LabelFunctionFollower(Widget):
    """Watches the label function's file and reloads it on save (see the module's docstring)."""

    DEFAULT_CSS = "LabelFunctionFollower { display: none; }"

    class Saved(Message):
        """The file of the user's label function changed on disk."""

    class Reloaded(Message):
        """The label function's file was loaded again (in the label process): `found` is its new
        version, the LabelCodeError of a version that is not used, or None (nothing changed)."""

        def __init__(self, found: Any) -> None:
            self.found = found
            super().__init__()

    class ExerciseChecked(Message):
        """The check of an exercise's file ran (on its current version); `report` is a CheckReport."""

        def __init__(self, report: Any) -> None:
            self.report = report
            super().__init__()

    def __init__(self, lab: Lab, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lab = lab

    def on_mount(self) -> None:
        if self.lab.label_host.followed is not None:
            self._watch()

    @work(thread=True, exclusive=True, group="label-file", exit_on_error=False)
    def _watch(self) -> None:
        """Wait for saves of the label function's file (no timer, no CPU while nothing changes).

        Watches the file's folder: editors that save by writing a new file and renaming it
        replace the file a watch on the file itself would follow.
        """
        import watchfiles

        followed = self.lab.label_host.followed
        assert followed is not None
        path = followed.resolve()
        for changes in watchfiles.watch(
            path.parent,
            watch_filter=lambda change, where: Path(where).name == path.name,
            stop_event=self.lab.closing,
            debounce=200,
            recursive=False,
        ):
            if changes:
                self.post_message(self.Saved())

    def on_label_function_follower_saved(self, message: Saved) -> None:
        message.stop()
        self._reload()

    def on_label_function_follower_reloaded(self, message: Reloaded) -> None:
        """Say what the reload found (the message goes on to the screen, which updates the views)."""
        from inspector.core.labels.process.code_errors import LabelCodeError

        found = message.found
        if isinstance(found, LabelCodeError):
            self.notify(f"{found.problem_line()} The app goes on with the last version that worked.",
                        title="Your label function", severity="warning", timeout=6, markup=False)
        elif found is not None:
            self.notify(f"{found.name} reloaded", title="Your label function", timeout=2)
            self.check_exercise()

    @work(thread=True, group="label-reload", exit_on_error=False)
    def _reload(self) -> None:
        """Load the saved file off the UI thread: the user's code runs (with a time limit) first."""
        self.post_message(self.Reloaded(self.lab.reload_labels()))

    @work(thread=True, exclusive=True, group="exercise", exit_on_error=False)
    def check_exercise(self) -> None:
        """Run the exercise's check, as `exercise N --check` does, when the file is an exercise."""
        report = self.lab.exercise_check()
        if report is not None:
            self.post_message(self.ExerciseChecked(report))

    def on_worker_state_changed(self, event: Any) -> None:
        error = worker_error(event)
        if error is not None and event.worker.group in _FAILURES:
            self.post_message(Failed(_FAILURES[event.worker.group], error=error))
