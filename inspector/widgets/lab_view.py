"""What the lab's views (F2 to F6) share, so that a view's behaviour is in one file.

`LabView` is the base: its name in `VIEWS`, the screen's keys it answers (`ACTIONS`), the
training news that make it stale (`STALE_AFTER`), and the lifecycle of its computation: a
request runs in a worker, a newer request makes an older one's answer stale (the view
checks what comes back against what it asked), a failure is shown and the pending state
cleared so that the view tries again when next shown. `PlayingView` adds play, step and
replay over frames, paced by a timer that is paused whenever nothing plays, with the
app's animation setting (`animation_level == "none"`: the last frame at once).

A new view subclasses one of them in its own file and is registered in `VIEW_CLASSES`
(`inspector.widgets.views`, whose docstring lists the other places that name the views).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from textual.containers import Vertical
from textual.reactive import reactive

from inspector.messages import Failed, worker_error

if TYPE_CHECKING:
    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.lab import Lab

# The training news a view may follow (the main screen passes each on to every view).
NEWS = ("reset", "burst-started", "epoch", "burst-finished", "idle")


@dataclass(frozen=True)
class ViewOptions:
    """What the app gives its views beyond the lab: the texts, the turn markers, the burst
    settings on show, the runs selector, and the data's rows and file."""

    examples: list[str]
    template: TurnMarkers
    predict_choices: list[tuple[str, str]]
    settings: tuple[int, float, int]
    runs: str = "1"
    rows: list[int] | None = None
    data_source: str | None = None


def view_options(lab: Lab, data_name: str | None, settings: tuple[int, float, int], runs: str) -> ViewOptions:
    """The views' options for the lab's examples: with --data (`data_name`), its training rows
    to predict and their file rows; else the held-out example first, then the examples."""
    from pathlib import Path

    from inspector.core.data.chat_format import HOLDOUT_ANSWER, HOLDOUT_WORD
    from inspector.widgets.labels_parts import example_label

    texts = [e.text for e in lab.examples]
    if data_name:
        choices = [(example_label(e.row, e.text, lab.template), e.text) for e in lab.examples[: lab.train_rows]]
    else:
        choices = [(f"held-out · {HOLDOUT_WORD} → {HOLDOUT_ANSWER}", lab.predicted_text())]
        choices += [(f"training {example_label(i + 1, t, lab.template)}", t) for i, t in enumerate(texts)]
    return ViewOptions(
        texts, lab.template, choices, settings, runs,
        rows=[e.row for e in lab.examples] if data_name else None,
        data_source=Path(data_name).name if data_name else None,
    )


class LabView(Vertical):
    """A live view beside the lesson (see the module's docstring)."""

    VIEW: ClassVar[str] = ""  # its name in inspector.core.lessons.model.VIEWS
    TITLE: ClassVar[str] = ""  # its name in the footer
    ACTIONS: ClassVar[frozenset[str]] = frozenset()  # the main screen's view keys it answers
    STALE_AFTER: ClassVar[frozenset[str]] = frozenset()  # training news (NEWS) that change what it shows
    GROUP: ClassVar[str] = ""  # the group of its computing worker
    FAILURE: ClassVar[str] = ""  # the title of the message when that worker fails

    stale = True  # what it shows is out of date: computed again when next shown
    ready = False  # the model is loaded

    @classmethod
    def build(cls, lab: Lab, options: ViewOptions) -> LabView:
        """The view for the main screen, id `<VIEW>-view`."""
        return cls(lab, id=f"{cls.VIEW}-view")

    # --- lifecycle --------------------------------------------------------------------------

    def model_ready(self) -> None:
        self.ready = True
        if self.display:
            self.request()

    def model_failed(self, problem: str) -> None:
        """The model could not be loaded (the message on the left says why)."""

    def shown(self) -> None:
        """The view became visible: compute what changed while it was hidden."""
        if self.stale:
            self.request()

    def news(self, kind: str) -> None:
        """A piece of training news (one of NEWS); the views it concerns go stale."""
        if kind in self.STALE_AFTER:
            self.invalidate()

    def invalidate(self) -> None:
        self.stale = True
        if self.display and self.is_on_screen:
            self.request()
        else:
            self.hidden_change()

    def hidden_change(self) -> None:
        """What changed while the view is hidden, for a view that shows some of it at once."""

    def request(self) -> None:
        """Compute what the view shows, in a worker (`compute`); its answer comes back as a message."""
        if not self.ready:
            return
        self.stale = False
        self.compute()

    def compute(self) -> None:
        """Start the view's worker (in group GROUP)."""

    def compute_failed(self) -> None:
        """The view's worker failed: show it (the message says why)."""

    def on_worker_state_changed(self, event: Any) -> None:
        error = worker_error(event)
        if error is not None and self.GROUP and event.worker.group == self.GROUP:
            self.stale = True  # shown again (or after the next burst), the view tries again
            self.compute_failed()
            self.post_message(Failed(self.FAILURE, error=error))

    def show_lesson(self, lesson: Any) -> None:
        """A lesson opened: start from what it sets for this view (its strategy, epochs, batch...)."""

    def label_function_changed(self) -> None:
        """The user's label function (or an exercise's) was saved and reloaded: what shows it, again."""

    # --- keys (the main screen calls those in ACTIONS) ----------------------------------------

    def focus_main(self) -> None:
        self.focus()

    def step(self, delta: int) -> None: ...

    def jump(self, end: bool) -> None: ...

    def step_epoch(self, delta: int) -> None: ...

    def move(self, delta: int) -> None: ...

    def toggle(self) -> None: ...

    def replay(self) -> None: ...


class PlayingView(LabView):
    """A view that plays frames (positions, epochs) one after another on a timer."""

    FRAME_SECONDS: ClassVar[float] = 0.1

    playing: reactive[bool] = reactive(False, init=False)

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.FRAME_SECONDS, self._tick, pause=True)

    # The subclass says what its frames are.
    @property
    def has_frames(self) -> bool:
        return self.last_frame >= 0

    @property
    def last_frame(self) -> int:
        raise NotImplementedError

    @property
    def frame(self) -> int:
        raise NotImplementedError

    @frame.setter
    def frame(self, value: int) -> None:
        raise NotImplementedError

    def refresh_texts(self) -> None:
        """Redraw the texts that say where the playing is."""

    def replay(self) -> None:
        """From the first frame to the last, one per tick (at once with animations off)."""
        if not self.has_frames:
            return
        if self.app.animation_level == "none" or self.last_frame <= 0:
            self.playing = False
            self.frame = self.last_frame
            self.refresh_texts()
            return
        self.frame = 0
        self.playing = True
        self.refresh_texts()

    def toggle(self) -> None:
        if not self.has_frames:
            return
        if not self.playing and self.frame >= self.last_frame:
            self.replay()
        else:
            self.playing = not self.playing

    def _tick(self) -> None:
        if self.frame < self.last_frame:
            self.frame += 1
        if self.frame >= self.last_frame:
            self.playing = False

    def watch_playing(self, playing: bool) -> None:
        if playing:
            self._timer.resume()
        else:
            self._timer.pause()
        self.refresh_texts()
