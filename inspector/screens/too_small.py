"""Shown over everything while the terminal is smaller than the app's layout needs.

Nothing underneath is lost: the main screen keeps running (a burst goes on), and the notice
goes away as soon as the window is large enough again.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widgets import Static

MIN_WIDTH, MIN_HEIGHT = 80, 24


def too_small(size: Size) -> bool:
    return size.width < MIN_WIDTH or size.height < MIN_HEIGHT


class TooSmallScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; }
    TooSmallScreen Static { width: auto; max-width: 100%; padding: 0 1; border: round $warning; }
    """

    def __init__(self, size: Size) -> None:
        super().__init__()
        self._size = size

    def compose(self) -> ComposeResult:
        with Middle(), Center():
            yield Static(self._message(self._size), id="too-small")

    @staticmethod
    def _message(size: Size) -> str:
        return (
            f"The terminal is {size.width}x{size.height}; causallm-inspect needs at least "
            f"{MIN_WIDTH}x{MIN_HEIGHT}.\nEnlarge the window (nothing is lost meanwhile), or use the "
            "headless commands:\ncausallm-inspect labels | train | predict | lesson N --plain"
        )

    def update_size(self, size: Size) -> None:
        self._size = size
        self.query_one("#too-small", Static).update(self._message(size))


def cover_if_too_small(app: Any, size: Size) -> None:
    """Cover the app with a notice while the terminal is too small for its layout; uncover it after."""
    showing = isinstance(app.screen, TooSmallScreen)
    if too_small(size):
        if showing:
            app.screen.update_size(size)
        else:
            app.push_screen(TooSmallScreen(size))
    elif showing:
        app.pop_screen()
