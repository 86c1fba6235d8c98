"""The command palette (Ctrl+P), safe against keys typed faster than it answers.

Textual's palette handles a selection or a search still in its queue after Esc closed it:
the late selection dismisses the palette a second time, which pops the screen under it
(with only the main screen left: ScreenStackError, and the app exits, losing every trained
strategy); the late search starts a worker that looks for the palette's list, already
removed (NoMatches, the same). Once closed, this palette ignores such messages. And
PageUp/PageDown before its list of hits is laid out (just filled) raised KeyError in the
list; they now wait for the list to have a size.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.await_complete import AwaitComplete
from textual.command import CommandList, CommandPalette
from textual.message import Message
from textual.widgets import Button, Input, OptionList


class SafeCommandPalette(CommandPalette):
    """Textual's command palette that does nothing more once it is closed."""

    # What the user typed or chose in the palette; the lifecycle events still get through.
    LATE: ClassVar[tuple[type[Message], ...]] = (
        OptionList.OptionSelected,
        OptionList.OptionHighlighted,
        Input.Changed,
        Input.Submitted,
        Button.Pressed,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = False

    def dismiss(self, result: Any = None) -> AwaitComplete:
        if self.closed or not self.is_active:
            return AwaitComplete()  # closed already (Esc, then a late selection): pop nothing else
        self.closed = True
        return super().dismiss(result)

    async def _on_message(self, message: Message) -> None:
        if self.closed and isinstance(message, self.LATE):
            return  # typed before Esc closed the palette, handled after: too late to act on
        await super()._on_message(message)

    def _action_command_list(self, action: str) -> None:
        if action in ("page_up", "page_down") and not self.query_one(CommandList).scrollable_content_region:
            return  # not laid out yet: there is no page to move by (Textual's list would raise KeyError)
        super()._action_command_list(action)
