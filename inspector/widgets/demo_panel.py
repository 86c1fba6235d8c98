"""The lesson's computed demo, above its live view: the template-pitfall token lists, the
shift, the measured seconds per step...

The panel shows what `inspector.core.lessons.demos` computes, as text, in its own workers:
quick demos run on the untrained model itself (under the lab's base-model lock) when their
lesson opens; the ones that train run on a copy of it when asked (`g`), their quick part (if
they have one: lesson 4's weights) shown meanwhile. With the runs
selector on a replay, the demos `causallm-inspect prepare` stores (those that train or build
HF trainers) replay what it recorded, labelled as a replay, and run live where nothing
matches. Results are kept per lesson, so a lesson visited again shows its last result at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.widgets import Static

from inspector.core.errors import InspectorError
from inspector.messages import DemoComputed, DemoProgressed, Failed, worker_error

if TYPE_CHECKING:
    from inspector.core.lab import Lab
    from inspector.core.lessons.model import Lesson

Settings = Callable[[], tuple[int, float, int]]  # the burst settings on show (raises InspectorError)

# Lines that report a failure read differently without colour: bold, and they carry ✗ or MASKED.
_FAILURE = re.compile(r"✗|MASKED|raises|runs on")


class WrappedDemoText:
    """A demo's text, each long line wrapped to the width it is drawn at with its continuation
    indented, so that nothing is cut off at the panel's right edge."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from inspector.core.lessons.demo_report import hanging_wrap

        out = Text(overflow="fold")  # ends in a newline: Textual counts them for the height
        lines = self.text.split("\n")
        for i, line in enumerate(lines):
            style = "bold" if _FAILURE.search(line) else ""
            pieces = hanging_wrap(line, options.max_width)
            out.append("\n".join(pieces), style)
            if i < len(lines) - 1:
                out.append("\n")
        yield out

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((len(line) for line in self.text.split("\n")), default=0)
        return Measurement(min(8, longest), longest)


# Lines of the demo's text on show at once (it scrolls): fewer in a short terminal, so that
# the view under the panel keeps room for its grid.
DEMO_LINES = 12


def demo_lines(screen_height: int) -> int:
    return DEMO_LINES if screen_height >= 40 else max(3, (screen_height - 16) // 2)


class DemoPanel(Vertical):
    """A lesson's computed panel: a status line and the result's text, scrollable."""

    class Timed(Message):
        """A lesson's demo ran live in `seconds` (the lesson pane shows it)."""

        def __init__(self, lesson_id: str, seconds: float) -> None:
            self.lesson_id = lesson_id
            self.seconds = seconds
            super().__init__()

    HELP = """\
## Demo panel

What the lesson's text talks about, computed on the model in use: the losses of the
shift, the tokens of a response template alone and in context, the labels with the
templates as special tokens, a chat template's assistant mask... Quick ones run as soon
as the lesson opens. Those that train copies of the model (the seconds-per-step
measurement, the masked-`eos` run) start with `g` and take a while on a CPU; the
training view stays usable meanwhile. Lesson 4's shows its quick part at once (what each
trained token weighs in the loss), and `g` adds the seconds per step.

In a talk prepared with `causallm-inspect prepare`, the demos that train or build TRL
trainers (the chat template's, packing's and the gradient's too) replay what it recorded
for this model, data and settings, at once: the status line says **⟲ replay** and when it
was recorded. With runs set to live in the Training view, `g` computes one now.

Long lines wrap, their continuation indented; a long result scrolls (the scrollbar on
the right, or the arrow keys once the panel has the focus: `Tab`). In a short terminal
it shows fewer lines at once.

The seconds-per-step demo compares each variant's median step with copy's; where the
steps of a run varied more than 1.5× (the machine was busy) it says it cannot conclude,
rather than report a difference the machine made.

Press `s` for the code that computes the lesson's view, runnable on its own.
"""

    def __init__(
        self,
        lab: Lab,
        *,
        settings: Settings | None = None,
        source: Callable[[], str] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.lab = lab
        # What the training view shows: its burst settings and its runs selector (demos follow both).
        self.settings = settings
        self.source = source or (lambda: "live")
        self.lesson: Lesson | None = None
        self.number = 0  # the lesson's number, for the command that measures again
        self.lesson_id: str | None = None
        self.spec: Any = None
        self.results: dict[str, str] = {}  # lesson id -> the demo's text
        self.quick_parts: dict[str, str] = {}  # lesson id -> the quick part of a demo that trains
        self.quick_running: set[str] = set()  # lesson ids whose quick part is computing
        self.sources: dict[str, str] = {}  # lesson id -> "live", or the prepared run it replays
        self.running: set[str] = set()  # lesson ids whose demo is computing
        self.ready = False
        self.failed_load = False

    def compose(self) -> ComposeResult:
        yield Static("", id="demo-status")
        with VerticalScroll(id="demo-scroll"):
            yield Static("", id="demo-body")

    def on_mount(self) -> None:
        self.display = False

    def fit_height(self, screen_height: int) -> None:
        """Show fewer lines at once in a short terminal."""
        self.query_one("#demo-scroll").styles.max_height = demo_lines(screen_height)
        self.call_after_refresh(self._show_more_hint)

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_more_hint)

    def _show_more_hint(self) -> None:
        """Say on the border when the result is longer than the panel shows: it scrolls."""
        scroll = self.query_one("#demo-scroll")
        hidden = scroll.display and scroll.max_scroll_y > 0
        self.border_subtitle = f"↕ scrolls: {scroll.virtual_size.height} lines · Tab, then ↑↓" if hidden else ""

    # --- which lesson -------------------------------------------------------------------

    def show_for(self, lesson: Lesson, number: int = 0) -> None:
        """Show the demo of this lesson (hide the panel if it has none); run it if it is quick."""
        from inspector.core.lessons.demos import DEMOS

        self.lesson, self.number = lesson, number
        self.lesson_id = lesson.id
        self.spec = DEMOS.get(lesson.demo) if lesson.demo else None
        self.display = self.spec is not None
        if self.spec is None:
            return
        self.border_title = self.spec.title
        self._refresh()
        self._maybe_start()

    def model_ready(self) -> None:
        self.ready = True
        if self.spec is not None:
            self._refresh()
            self._maybe_start()

    def model_failed(self) -> None:
        self.failed_load = True
        if self.spec is not None:
            self._refresh()

    def _maybe_start(self) -> None:
        if not self.ready or self.lesson_id in self.results:
            return
        if not self.spec.on_demand:
            self.start()
        elif self.spec.quick is not None and self.lesson_id not in self.quick_parts:
            self._start_quick()

    def _start_quick(self) -> None:
        """Compute the quick part of the current lesson's demo that trains (`DemoSpec.quick`)."""
        if self.lesson is None or self.lesson.id in self.quick_running:
            return
        self.quick_running.add(self.lesson.id)
        self._refresh()
        self._run_quick_part(self.lesson)

    def start(self) -> None:
        """Compute the current lesson's demo in a worker, which posts the result back."""
        if self.spec is None or self.lesson is None or self.lesson_id in self.running:
            return
        if not self.ready:
            self.notify("The model is still loading (or failed to): the demo runs once it is ready.", severity="warning")
            return
        self.running.add(self.lesson.id)
        self._refresh()
        shown = self._settings_shown(self.lesson)  # read here, on the UI thread: the worker may not touch widgets
        prepared = self.spec.prepared and self.source() != "live"
        run = self._run_training_demo if self.spec.on_demand else self._run_quick_demo
        run(self.lesson, self.number, shown, prepared)

    def _settings_shown(self, lesson: Lesson) -> tuple[int, float | None, int]:
        """(epochs, learning rate, seed) of the burst settings on show, or the lesson's defaults."""
        from inspector.core.lab.context import lesson_epochs
        from inspector.core.training.burst import DEFAULT_SEED

        try:
            if self.settings is None:
                raise InspectorError("no settings", "")
            return self.settings()
        except InspectorError:
            return lesson_epochs(lesson), None, DEFAULT_SEED

    # --- the worker ---------------------------------------------------------------------

    # Two groups: a quick demo of the next lesson does not cancel a demo that trains.
    @work(thread=True, exclusive=True, group="demo", exit_on_error=False)
    def _run_quick_demo(self, lesson: Lesson, number: int, shown: tuple[int, float | None, int], prepared: bool) -> None:
        self._run_demo(lesson, number, shown, prepared)

    @work(thread=True, exclusive=True, group="demo-run", exit_on_error=False)
    def _run_training_demo(self, lesson: Lesson, number: int, shown: tuple[int, float | None, int], prepared: bool) -> None:
        self._run_demo(lesson, number, shown, prepared)

    @work(thread=True, exclusive=True, group="demo", exit_on_error=False)
    def _run_quick_part(self, lesson: Lesson) -> None:
        try:
            result = self.lab.demo(lesson, quick=True)
        except InspectorError as exc:
            self.post_message(DemoComputed(lesson.id, error=str(exc), quick=True))
            return
        self.post_message(DemoComputed(lesson.id, result.text, quick=True))

    def _run_demo(self, lesson: Lesson, number: int, shown: tuple[int, float | None, int], prepared: bool) -> None:
        """The Lab's demo of the lesson (it takes its own locks); with `prepared`, a demo that
        trains replays what `causallm-inspect prepare` stored for exactly this model, data and
        settings, labelled as such. Posts what it shows: the worker touches no widget."""
        from textual.worker import get_current_worker

        epochs, lr, seed = shown
        worker = get_current_worker()
        lab = self.lab

        def progress(text: str) -> None:
            self.post_message(DemoProgressed(lesson.id, text))

        command = f"causallm-inspect lesson {number} --plain"
        if lab.model_spec:
            command += f" --model {lab.model_spec}"
        try:
            result = lab.demo(
                lesson,
                epochs=epochs,
                learning_rate=lr,
                seed=seed,
                prepared=prepared,
                progress=progress,
                should_stop=lambda: worker.is_cancelled or lab.closing.is_set(),
                on_epoch=lambda variant, log: progress(f"{variant}, epoch {log.epoch}: {log.holdout!r}"),
                again="close other programs and press g again, or run "
                f"`{command}` in a terminal, where nothing draws meanwhile",
                waiting=lambda: progress("waiting for the running burst: one trainer at a time"),
            )
        except InspectorError as exc:
            self.post_message(DemoComputed(lesson.id, error=str(exc)))
            return
        if not result.replayed and (worker.is_cancelled or lab.closing.is_set()):
            self.post_message(DemoComputed(lesson.id, error="stopped before it finished; g runs it again"))
            return
        self.post_message(DemoComputed(lesson.id, result.text, source=result.source, seconds=result.seconds))

    def on_worker_state_changed(self, event: Any) -> None:
        error = worker_error(event)
        if error is not None and event.worker.group in ("demo", "demo-run"):
            self.failed(None, "see the message")
            self.post_message(Failed("The lesson's demo failed", error=error))

    # --- news from the worker -----------------------------------------------------------

    def on_demo_progressed(self, message: DemoProgressed) -> None:
        message.stop()
        self.progressed(message.lesson_id, message.text)

    def on_demo_computed(self, message: DemoComputed) -> None:
        message.stop()
        if message.quick:
            self.quick_finished(message.lesson_id, message.text, message.error)
        elif message.error is not None:
            self.failed(message.lesson_id, message.error)
        else:
            self.finished(message.lesson_id, message.text, message.source)
            if message.source == "live":
                self.post_message(self.Timed(message.lesson_id, message.seconds))

    def progressed(self, lesson_id: str, text: str) -> None:
        if lesson_id == self.lesson_id:
            self.query_one("#demo-status", Static).update(f"… {escape(text)}")

    def finished(self, lesson_id: str, text: str, source: str = "live") -> None:
        self.running.discard(lesson_id)
        self.results[lesson_id] = text
        self.sources[lesson_id] = source
        if lesson_id == self.lesson_id:
            self._refresh()
            self.screen.refresh_bindings()  # `g` computes a replayed quick demo now

    def quick_finished(self, lesson_id: str, text: str, error: str | None = None) -> None:
        self.quick_running.discard(lesson_id)
        if error is None:
            self.quick_parts[lesson_id] = text
        if lesson_id == self.lesson_id:
            self._refresh()
            if error is not None:
                self.query_one("#demo-status", Static).update(f"[b]failed:[/b] {escape(error)}")

    @property
    def replaying(self) -> bool:
        """The text on show is the replay of a prepared run, not computed now."""
        return self.sources.get(self.lesson_id or "", "live") != "live"

    @property
    def can_run(self) -> bool:
        """`g` applies: the demo runs when asked, or the text on show is a replay."""
        return self.spec is not None and (self.spec.on_demand or self.replaying)

    def failed(self, lesson_id: str | None, problem: str) -> None:
        if lesson_id is None:
            self.running.clear()
            self.quick_running.clear()
        else:
            self.running.discard(lesson_id)
        if lesson_id in (None, self.lesson_id):
            self._refresh()
            self.query_one("#demo-status", Static).update(f"[b]failed:[/b] {escape(problem)}")

    # --- drawing ------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The text on show (for tests and the command palette): the demo's, or its quick part."""
        lesson_id = self.lesson_id or ""
        return self.results.get(lesson_id) or self.quick_parts.get(lesson_id, "")

    def _refresh(self) -> None:
        status = self.query_one("#demo-status", Static)
        body = self.query_one("#demo-body", Static)
        lesson_id = self.lesson_id or ""
        on_demand = self.spec is not None and self.spec.on_demand
        if lesson_id in self.running:
            status.update("… computing" + (" (it trains copies of the model: this takes a while)" if on_demand else ""))
        elif self.failed_load:
            status.update("no model: see the message on the left")
        elif not self.ready:
            status.update("waiting for the model…")
        elif self.sources.get(lesson_id, "live") != "live":
            status.update(
                f"[b]⟲ {escape(self.sources[lesson_id])}[/b] · with runs set to live in the Training view, "
                "[b]g[/b] runs it now · [b]s[/b] shows the code"
            )
        elif lesson_id in self.quick_running:
            status.update("… computing")
        elif on_demand and lesson_id not in self.results and lesson_id in self.quick_parts:
            status.update(
                "computed on the model in use · [b]g[/b] runs the rest (it trains copies of the model)"
                " · [b]s[/b] shows the code"
            )
        elif on_demand:
            status.update(
                "[b]g[/b] runs it again · [b]s[/b] shows the code"
                if lesson_id in self.results
                else "[b]g[/b] runs it (it trains copies of the model) · [b]s[/b] shows the code"
            )
        else:
            status.update("computed on the model in use · [b]s[/b] shows the code")
        text = self.text
        body.update(WrappedDemoText(text) if text else "")
        self.query_one("#demo-scroll").display = bool(text)  # no result yet: the status line alone
        self.call_after_refresh(self._show_more_hint)
