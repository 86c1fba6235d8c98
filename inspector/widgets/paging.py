"""Option lists whose PageUp/PageDown wait until the list is laid out.

Textual's OptionList measures its lines only once it has a size; a page key before that (a
Select's pop-up closed and refilled while it kept the focus, a list refilled while hidden)
raised KeyError and the app exited, losing every trained strategy. Found by the keyboard
soak (tests/ui/soak.py) with keys typed faster than the app answers.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import OptionList, Select
from textual.widgets._select import SelectCurrent, SelectOverlay


class LaidOutPaging(OptionList):
    """An OptionList whose page keys do nothing while it has no size (there is no page to move by)."""

    def _move_page(self, direction: Any) -> None:
        if self.scrollable_content_region:
            super()._move_page(direction)


class PickerOverlay(SelectOverlay):
    """A Select's pop-up list, with the same guard (SelectOverlay first: Select finds it by that type)."""

    def _move_page(self, direction: Any) -> None:
        if self.scrollable_content_region:
            super()._move_page(direction)


class Picker(Select[Any]):
    """Textual's Select with the paging guard in its pop-up list (styled and queried as a Select)."""

    def compose(self) -> ComposeResult:
        yield SelectCurrent(self.prompt)
        yield PickerOverlay(type_to_search=self._type_to_search).data_bind(compact=Select.compact)
