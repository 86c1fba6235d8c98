"""The command palette (Ctrl+P): its entries, and the palette itself, safe against keys typed fast.

Entries: every lesson and the app's actions; each runs what the key for it runs.

Textual's palette handles a selection or a search still in its queue after Esc closed it:
the late selection dismisses the palette a second time, which pops the screen under it
(with only the main screen left: ScreenStackError, and the app exits, losing every trained
strategy); the late search starts a worker that looks for the palette's list, already
removed (NoMatches, the same). Once closed, `SafeCommandPalette` ignores such messages.
And PageUp/PageDown before its list of hits is laid out (just filled) raised KeyError in
the list; they now wait for the list to have a size.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.await_complete import AwaitComplete
from textual.command import CommandList, CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.message import Message
from textual.widgets import Button, Input, OptionList

from inspector.core.labels.turn_policy import POLICY_HELP, TURN_POLICIES
from inspector.core.lessons.model import VIEWS
from inspector.messages import Command


class InspectorCommands(Provider):
    """Command palette entries: every lesson, and the app's actions."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        """(text, what it runs, help) of every entry. An entry runs an action of the app or posts
        a `Command` to the main screen, which runs its action whatever view is on show: the
        palette calls no widget."""
        app: Any = self.app  # the InspectorApp (not imported: it imports this module)
        main, lab = app.main, app.lab

        def screen(action: str) -> Any:
            return lambda: main.post_message(Command(action))

        def of_app(action: str) -> Any:
            return lambda: app.run_action(action)

        out: list[tuple[str, Any, str]] = [
            (f"Lesson {i + 1}: {lesson.title}", of_app(f"lesson({i})"), f"open the {lesson.view} view")
            for i, lesson in enumerate(app.lessons)
        ]
        out += [(f"Train {lab.name_of(s)}", screen(f"train('{s}')"), "run a burst of this strategy") for s in lab.strategies]
        out.append(("Train all", screen("train_all"), f"{', '.join(lab.name_of(s) for s in lab.strategies)} in turn"))
        out.append(("Stop training", screen("stop"), "after the current step"))
        out.append(("Reset training", screen("reset"), "every strategy back to the untrained model"))
        out += [(f"Strategy: {lab.name_of(s)}", screen(f"show_strategy('{s}')"), "show this strategy's labels")
                for s in lab.strategies]  # fmt: skip
        out += [(f"Turn policy: {p}", screen(f"set_turn_policy('{p}')"), POLICY_HELP[p]) for p in TURN_POLICIES]
        out.append(("Turns: training beside inference", screen("show_turns"),
                    "the labels view's turns mode: each assistant turn's context beside the inference prompt (i)"))
        out += [(f"View: {v}", of_app(f"view('{v}')"), f"show the {v} view") for v in VIEWS]
        out.append(("Replay predictions", screen("show_view('predictions', True)"), "animate the guesses again"))
        out.append(("Play the epochs", screen("show_view('learning', True)"),
                    "the learning view: p(true) of every position, epoch by epoch"))  # fmt: skip
        out.append(("Show code", screen("show_code"), "the code behind this lesson's view, runnable on its own"))
        out.append(("Run the lesson's demo", screen("run_demo"), "compute the lesson's panel again (some train copies)"))
        out.append(("Help", of_app("help"), "explain the part in focus"))
        out.append(("Glossary", of_app("glossary"), "every term the lessons define, this lesson's first (F7)"))
        return out

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)

    async def discover(self) -> Hits:
        for text, command, help_text in self._commands():
            yield DiscoveryHit(text, command, text=text, help=help_text)


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
