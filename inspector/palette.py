"""The command palette's entries (ctrl+p): every lesson, and the app's actions."""

from __future__ import annotations

from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from inspector.core.labels.strategies import STRATEGIES
from inspector.screens.main import VIEWS


class InspectorCommands(Provider):
    """Command palette entries: every lesson, and the app's actions."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        app: Any = self.app  # the InspectorApp (not imported: it imports this module)
        out: list[tuple[str, Any, str]] = []
        for i, lesson in enumerate(app.lessons):
            out.append(
                (f"Lesson {i + 1}: {lesson.title}", lambda i=i: app.goto_lesson(i), f"open the {lesson.view} view")
            )
        for s in STRATEGIES:
            out.append((f"Train {s}", lambda s=s: app.start_training((s,)), "run a burst of this strategy"))
        out.append(("Train all three", lambda: app.start_training(STRATEGIES), "copy, mask and trl in turn"))
        out.append(("Stop training", app.stop_training, "after the current step"))
        out.append(("Reset training", app.reset_training, "every strategy back to the untrained model"))
        for s in STRATEGIES:
            out.append((f"Strategy: {s}", lambda s=s: app.set_strategy(s), "show this strategy's labels"))
        for v in VIEWS:
            out.append((f"View: {v}", lambda v=v: app.show_view(v), f"show the {v} view"))
        out.append(("Replay predictions", lambda: app.main.predictions_view.replay(), "animate the guesses again"))
        out.append(("Show code", app.show_code, "the code behind this lesson's view, runnable on its own"))
        out.append(("Run the lesson's demo", app.run_demo, "compute the lesson's panel again (some train copies)"))
        out.append(("Help", app.action_help, "explain the part in focus"))
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
