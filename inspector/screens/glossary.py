"""A dialog with the glossary (F7, or "Glossary" in the command palette): every term the lessons
define, the current lesson's first and marked, filtered as you type."""

from __future__ import annotations

import re
import textwrap
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from inspector.core.lessons.glossary import Glossary, Term

MARK = "●"
NBSP = "\u00a0"
_CODE = re.compile(r"`([^`]+)`")


def _sort_key(term: Term) -> str:
    """A to Z, ignoring the punctuation some terms start with (`-100`, `{% generation %}`)."""
    return term.term.lstrip("-{%` ").casefold()


class GlossaryScreen(ModalScreen[None]):
    """The glossary; Esc or F7 closes it, the arrows and page keys scroll it while you type."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f7", "close", "Close glossary", id="glossary-close"),
        Binding("up", "scroll('up')", "Scroll up", show=False),
        Binding("down", "scroll('down')", "Scroll down", show=False),
        Binding("pageup", "scroll('page_up')", "Page up", show=False),
        Binding("pagedown", "scroll('page_down')", "Page down", show=False),
    ]

    def __init__(self, glossary: Glossary, lessons: list[Any], current: int | None) -> None:
        """`current`: the index of the lesson on show in `lessons`, whose terms come first."""
        super().__init__()
        self.glossary = glossary
        self.numbers = {lesson.id: i + 1 for i, lesson in enumerate(lessons)}
        self.lesson = lessons[current] if current is not None and 0 <= current < len(lessons) else None
        own_id = self.lesson.id if self.lesson is not None else None
        self.own = [t for t in glossary.terms if t.lesson == own_id]
        self.rest = sorted((t for t in glossary.terms if t.lesson != own_id), key=_sort_key)
        self.shown: list[Term] = []  # the terms on show, in their order

    def compose(self) -> ComposeResult:
        with Vertical(id="glossary-dialog"):
            yield Input(placeholder="type to filter: a term, or words of its definition", id="glossary-filter")
            with VerticalScroll(id="glossary-scroll"):
                yield Static(id="glossary-text")
            mark = f"{MARK} defined in this lesson · " if self.own else ""
            yield Static(f"{mark}↑ ↓ PgUp PgDn scroll · Esc closes", id="glossary-footer")

    def on_mount(self) -> None:
        self.query_one("#glossary-filter", Input).focus()
        self.call_after_refresh(self.show)  # once laid out: the definitions wrap at the dialog's width

    def on_resize(self) -> None:
        self.call_after_refresh(self.show)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show()
        self.query_one("#glossary-scroll", VerticalScroll).scroll_home(animate=False)

    def show(self) -> None:
        """The terms that hold every word of the filter: this lesson's first, then the rest from A to Z.
        One text, each definition wrapped by hand under its term (a widget per entry made typing slow)."""
        text = self.query_one("#glossary-filter", Input).value
        found = {t.term for t in self.glossary.search(text)}
        own = [t for t in self.own if t.term in found]
        rest = [t for t in self.rest if t.term in found]
        self.shown = own + rest
        width = max(20, self.query_one("#glossary-scroll", VerticalScroll).scrollable_content_region.width - 1)
        lines: list[str] = []
        if own and self.lesson is not None:
            number = self.numbers.get(self.lesson.id, "?")
            lines += [f"[b $text-accent]{MARK} Lesson {number}: {escape(self.lesson.title)}[/]", ""]
            for term in own:
                lines += self._entry(term, width, mine=True)
            if rest:
                lines += ["[b $text-accent]Every other term, A to Z[/]", ""]
        for term in rest:
            lines += self._entry(term, width, mine=False)
        if not found:
            near = self.glossary.nearest(text)
            lines.append(f"[$text-muted]No term or definition holds '{escape(text.strip())}'."
                         + (f" Nearest terms: {escape(', '.join(near))}." if near else "") + "[/]")
        self.query_one("#glossary-text", Static).update(Content.from_markup("\n".join(lines).rstrip()))
        total = len(self.glossary.terms)
        count = f"{len(found)} of {total} terms" if text.strip() else f"{total} terms"
        self.query_one("#glossary-dialog").border_title = f"Glossary · {count}"

    def _entry(self, term: Term, width: int, *, mine: bool) -> list[str]:
        """The term's line (marked where this lesson defines it), its definition indented under it, a blank line."""
        number = self.numbers.get(term.lesson)
        where = f"lesson {number} · {term.lesson}" if number is not None else f"lesson {term.lesson}"
        head = f"{MARK} " if mine else ""
        out = [f"{head}[b]{escape(term.term)}[/b]  [$text-muted]{escape(where)}[/]"]
        # A `code` span is never cut across lines (its spaces made unbreakable while wrapping).
        text = _CODE.sub(lambda m: m.group(0).replace(" ", NBSP), term.definition)
        for line in textwrap.wrap(text, width - 2):
            code = _CODE.sub(lambda m: f"[$text-accent]{m.group(1)}[/]", escape(line))
            out.append("  " + code.replace(NBSP, " "))
        return [*out, ""]

    def action_scroll(self, how: str) -> None:
        scroll = self.query_one("#glossary-scroll", VerticalScroll)
        getattr(scroll, f"scroll_{how}")(animate=False)

    def action_close(self) -> None:
        self.dismiss()
