"""A dialog with the code behind the current lesson's view, syntax-highlighted.

The code is the script `causallm-inspect export N` writes: standalone, with the model
and data of this session filled in.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer, Vertical
from textual.highlight import highlight
from textual.screen import ModalScreen
from textual.widgets import Static


class CodeScreen(ModalScreen[None]):
    """The lesson's code; Esc, s or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,s,q", "close", "Close code", id="code-close"),
    ]

    @classmethod
    def for_lesson(cls, lesson: Any, number: int, spec: Any) -> CodeScreen | str:
        """The screen of a lesson's code as `export N` writes it for `spec`, or why there is none."""
        from inspector.core.errors import InspectorError
        from inspector.core.lessons.code import join_parts, own_lines_start, render_parts

        try:
            parts = render_parts(lesson, number, spec)
        except InspectorError as exc:
            return str(exc)
        return cls(join_parts(parts), lesson.title, number, own_lines_start(parts))

    def __init__(self, code: str, title: str, number: int, start_line: int = 0) -> None:
        super().__init__()
        self.code = code
        self.title_text = title
        self.number = number
        self.start_line = start_line  # where the lesson's own lines begin, after the shared setup

    def compose(self) -> ComposeResult:
        with Vertical(id="code-dialog"):
            yield Static(
                f"[b]Lesson {self.number} · {self.title_text}[/b] · the code behind its view"
                " (scrolled to the lesson's own lines; ↑ / Home for the setup they use)",
                id="code-title",
            )
            with ScrollableContainer(id="code-scroll"):
                yield Static(highlight(self.code, language="python"), id="code-text")
            yield Static(
                f"save it with: causallm-inspect export {self.number} -o lesson{self.number}.py"
                f"  (--notebook for a .ipynb) · Esc closes",
                id="code-footer",
                markup=False,
            )

    def on_mount(self) -> None:
        scroll = self.query_one("#code-scroll", ScrollableContainer)
        scroll.focus()
        self.call_after_refresh(scroll.scroll_to, y=self.start_line, animate=False)

    def action_close(self) -> None:
        self.dismiss()
