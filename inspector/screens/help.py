"""A modal dialog with the help text of the widget in focus."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static


class HelpScreen(ModalScreen[None]):
    """Help for the part of the screen in focus; any of Esc, F1, ? or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,question_mark,q", "close", "Close help", id="help-close"),
    ]

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            with VerticalScroll(id="help-scroll"):
                yield Markdown(self.markdown, id="help-text")
            yield Static("Esc closes this help", id="help-footer")

    def action_close(self) -> None:
        self.dismiss()
