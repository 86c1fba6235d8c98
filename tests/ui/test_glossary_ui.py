"""Pilot test of the glossary dialog: F7 and the command palette open it, typing filters it, Esc closes it."""

from __future__ import annotations

from textual.widgets import Input, Static
from ui_helpers import FAST_LR, started, wait_until

from inspector.app import InspectorApp
from inspector.screens.glossary import MARK, GlossaryScreen


async def test_the_glossary_opens_filters_and_closes(tiny_path):
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR)
    async with app.run_test(size=(80, 24)) as pilot:  # the smallest size the app takes
        await started(pilot)
        app.goto_lesson([lesson.id for lesson in app.lessons].index("copy"))
        await pilot.pause()
        await pilot.press("f7")
        screen = app.screen
        assert isinstance(screen, GlossaryScreen)
        own = [t.term for t in screen.glossary.terms_of("copy")]
        assert own and [t.term for t in screen.shown[: len(own)]] == own  # this lesson's terms first...
        text = _text(screen)
        assert all(f"{MARK} {term}  lesson 3 · copy" in text for term in own)  # ...marked
        assert f"{MARK} -100" not in text and "-100  lesson 1 · shift" in text
        assert isinstance(screen.focused, Input)
        dialog, footer = screen.query_one("#glossary-dialog").region, screen.query_one("#glossary-footer").region
        assert screen.region.contains_region(dialog) and dialog.contains_region(footer)  # nothing cut off at 80x24
        scroll = screen.query_one("#glossary-scroll")
        await pilot.press("pagedown")
        assert scroll.scroll_y > 0  # the rest scrolls, while the focus stays in the filter
        await pilot.press(*"teacher")
        assert [t.term for t in screen.shown] == ["teacher forcing"] and scroll.scroll_y == 0
        assert "teacher forcing  lesson 3" in _text(screen) and "AdamW" not in _text(screen)
        await pilot.press(*"zzz")
        assert screen.shown == [] and "No term or definition holds 'teacherzzz'" in _text(screen)
        await pilot.press("escape")
        assert app.screen is app.main
        await pilot.press("ctrl+p", *"Glossary")
        await wait_until(pilot, lambda: _palette_has(app, "Glossary"), what="the palette's hit")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, GlossaryScreen), what="the glossary")
        await pilot.press("f7")  # F7 closes it too
        assert app.screen is app.main


def _text(screen) -> str:
    return str(screen.query_one("#glossary-text", Static).render())


def _palette_has(app, text: str) -> bool:
    from textual.command import CommandList
    from textual.css.query import NoMatches

    try:
        options = app.screen.query_one(CommandList).options
    except NoMatches:
        return False
    return any(str(o.prompt).startswith(text) for o in options)
