"""Nothing cut off at the right edge: demo panels wrap, the lesson pane narrows or hides, and at
80x24 (the smallest size the app accepts) the labels view keeps room for its token columns."""

from __future__ import annotations

import pytest
from textual.geometry import Region
from ui_helpers import FAST_LR, started, wait_until

from inspector.app import InspectorApp
from inspector.help_text import help_for

SMALL = (80, 24)


def make_app(tiny_path) -> InspectorApp:
    return InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR)


def lesson_index(app, lesson_id: str) -> int:
    return [lesson.id for lesson in app.lessons].index(lesson_id)


def visible_token_columns(grid) -> int:
    """Token columns shown whole between the grid's gutter and its right edge."""
    view = grid.size.width - grid.GUTTER
    left = int(grid.scroll_x)
    return sum(1 for x, w in zip(grid._offsets, grid._widths) if x >= left and x + w <= left + view)


def rendered_lines(widget) -> list[str]:
    """Every line the widget draws, at the width it has (its whole height, scrolled or not)."""
    return [strip.text for strip in widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))]


@pytest.mark.parametrize("lesson_id", ["template-pitfall", "trl"])
async def test_long_demo_lines_wrap_in_a_narrow_panel(tiny_path, lesson_id):
    app = make_app(tiny_path)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        app.goto_lesson(lesson_index(app, lesson_id))
        panel = app.main.demo_panel
        await wait_until(pilot, lambda: bool(panel.text) and not panel.running, what="the demo")
        await pilot.pause()
        scroll = panel.query_one("#demo-scroll")
        body = panel.query_one("#demo-body")
        longest = max(len(line) for line in panel.text.splitlines())
        assert longest > scroll.size.width  # the demo has lines longer than the panel is wide
        assert scroll.max_scroll_x == 0  # nothing hides to the right: no sideways scroll needed
        lines = rendered_lines(body)
        assert all(len(line.rstrip()) <= scroll.size.width for line in lines)
        shown = "".join("".join(lines).split())  # what is drawn, spaces and line ends left out
        for line in panel.text.splitlines():  # every character of every line is drawn, in order
            assert "".join(line.split()) in shown, line
        if lesson_id == "template-pitfall":
            assert any(line.rstrip().endswith("in this example") for line in lines)  # the cut-off line
        # Longer than the panel shows at 80x24: it scrolls, and its border says so.
        assert scroll.max_scroll_y > 0 and "scrolls" in str(panel.border_subtitle)
        assert app.errors == []


async def test_at_80x24_the_lesson_pane_starts_narrow_and_l_cycles_it(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        main = app.main
        grid = main.labels_view.grid
        side = main.query_one("#side")
        assert main.pane == "narrow"
        narrow = visible_token_columns(grid)
        assert narrow >= 10
        assert grid.region.bottom <= SMALL[1] - 1  # the whole grid is on screen, above the footer
        assert main.check_action("cycle_pane", ()) and "lesson pane" in [b.description for b in main.BINDINGS]
        await pilot.press("l")
        assert main.pane == "hidden"
        await pilot.pause()
        assert not side.display or side.size.width == 0
        assert visible_token_columns(grid) > narrow
        await pilot.press("l")
        await pilot.pause()
        assert main.pane == "wide" and side.size.width > 30
        assert visible_token_columns(grid) < narrow
        await pilot.press("l")
        await pilot.pause()
        assert main.pane == "narrow" and visible_token_columns(grid) == narrow
        # Chosen with the key, the pane stays as it is when the terminal grows.
        await pilot.resize_terminal(160, 45)
        await pilot.pause()
        assert main.pane == "narrow"
        assert "`l`" in help_for(main.focused, main.current_view_widget)
        assert app.errors == []


async def test_a_wide_terminal_starts_with_the_wide_pane_and_follows_a_resize(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        assert app.main.pane == "wide"
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert app.main.pane == "narrow"  # not chosen with `l`: it follows the width


async def test_hiding_the_pane_moves_the_focus_out_of_it(tiny_path):
    app = make_app(tiny_path)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        app.main.query_one("#lesson-list").focus()
        await pilot.press("l")  # narrow -> hidden
        await pilot.pause()
        assert app.main.pane == "hidden"
        assert app.focused is not None and app.main.query_one("#side") not in app.focused.ancestors_with_self
