"""The lesson's computed demo, above its live view: the template-pitfall token lists, the
shift, the measured seconds per step...

The panel shows what `inspector.core.demos` computes, as text. Quick demos run when their
lesson opens; the ones that train run when asked (`g`). Results are kept per lesson, so a
lesson visited again shows its last result at once.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.widgets import Static

from inspector.messages import DemoComputed, DemoProgressed

# Lines that report a failure read differently without colour: bold, and they carry ✗ or MASKED.
_FAILURE = r"[^\n]*(✗|MASKED|raises|runs on)[^\n]*"


class DemoPanel(Vertical):
    """A lesson's computed panel: a status line and the result's text, scrollable."""

    HELP = """\
## Demo panel

What the lesson's text talks about, computed on the model in use: the losses of the
shift, the tokens of a response template alone and in context, the labels with the
templates as special tokens, a chat template's assistant mask... Quick ones run as soon
as the lesson opens. Those that train copies of the model (the seconds-per-step
measurement, the masked-`eos` run) start with `g` and take a while on a CPU; the
training view stays usable meanwhile.

Press `s` for the code that computes the lesson's view, runnable on its own.
"""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lesson_id: str | None = None
        self.spec: Any = None
        self.results: dict[str, str] = {}  # lesson id -> the demo's text
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

    # --- which lesson -------------------------------------------------------------------

    def show_for(self, lesson: Any) -> None:
        """Show the demo of this lesson (hide the panel if it has none); run it if it is quick."""
        from inspector.core.demos import DEMOS

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
        if self.ready and not self.spec.on_demand and self.lesson_id not in self.results:
            self.start()

    def start(self) -> None:
        """Compute the current lesson's demo (the app's worker posts the result back)."""
        if self.spec is None or self.lesson_id is None or self.lesson_id in self.running:
            return
        self.running.add(self.lesson_id)
        self._refresh()
        self.app.compute_demo(self.lesson_id, self)  # type: ignore[attr-defined]

    # --- news from the worker -----------------------------------------------------------

    def on_demo_progressed(self, message: DemoProgressed) -> None:
        message.stop()
        self.progressed(message.lesson_id, message.text)

    def on_demo_computed(self, message: DemoComputed) -> None:
        message.stop()
        if message.error is not None:
            self.failed(message.lesson_id, message.error)
        else:
            self.finished(message.lesson_id, message.text, message.source)

    def progressed(self, lesson_id: str, text: str) -> None:
        if lesson_id == self.lesson_id:
            self.query_one("#demo-status", Static).update(f"… {escape(text)}")

    def finished(self, lesson_id: str, text: str, source: str = "live") -> None:
        self.running.discard(lesson_id)
        self.results[lesson_id] = text
        self.sources[lesson_id] = source
        if lesson_id == self.lesson_id:
            self._refresh()

    def failed(self, lesson_id: str | None, problem: str) -> None:
        if lesson_id is None:
            self.running.clear()
        else:
            self.running.discard(lesson_id)
        if lesson_id in (None, self.lesson_id):
            self._refresh()
            self.query_one("#demo-status", Static).update(f"[b]failed:[/b] {escape(problem)}")

    # --- drawing ------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The text on show (for tests and the command palette)."""
        return self.results.get(self.lesson_id or "", "")

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
        elif on_demand and self.sources.get(lesson_id, "live") != "live":
            status.update(
                f"[b]⟲ {escape(self.sources[lesson_id])}[/b] · with runs set to live in the Training view, "
                "[b]g[/b] runs it now · [b]s[/b] shows the code"
            )
        elif on_demand:
            status.update(
                "[b]g[/b] runs it again · [b]s[/b] shows the code"
                if lesson_id in self.results
                else "[b]g[/b] runs it (it trains copies of the model) · [b]s[/b] shows the code"
            )
        else:
            status.update("computed on the model in use · [b]s[/b] shows the code")
        text = Text(self.results.get(lesson_id, ""), no_wrap=True)
        text.highlight_regex(_FAILURE, "bold")
        body.update(text)
