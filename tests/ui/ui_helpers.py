"""Waiting for app state in pilot and snapshot tests (no sleeps as synchronisation)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

FAST_LR = 1e-2  # the tiny model learns visibly in a few steps at this rate


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Let the app run until `condition()` holds (workers post their results as messages)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


def labels_settled(app) -> bool:
    """The model is loaded and the labels view has every strategy's labels (or an error)."""
    if app.loaded is None:
        return False
    view = app.main.labels_view
    return not view.pending and (bool(view.labelings) or view.error is not None)


def demo_settled(app) -> bool:
    """The lesson's demo panel shows its result, or waits for `g`, or there is none."""
    panel = app.main.demo_panel
    if not panel.display or panel.spec is None:
        return True
    if panel.spec.on_demand:  # waits for `g`; its quick part (lesson 4's weights) is computed at once
        return panel.spec.quick is None or panel.lesson_id in panel.quick_parts
    return bool(panel.text) and not panel.running


def facts_settled(app) -> bool:
    """The lesson pane's lines are drawn: for a lesson that trains, whether a prepared run is stored."""
    from inspector.core.lessons.facts import trains
    from inspector.widgets.lesson_facts import LessonFacts

    facts = app.main.query_one(LessonFacts)
    lesson = facts.lesson
    return lesson is None or not trains(lesson) or lesson.id in facts.prepared


async def started(pilot) -> None:
    """Wait for the model, the first labels and the first lesson's demo panel."""
    await wait_until(pilot, lambda: labels_settled(pilot.app) or bool(pilot.app.errors), what="the model and labels")
    await wait_until(pilot, lambda: demo_settled(pilot.app) or bool(pilot.app.errors), what="the demo panel")
    await wait_until(pilot, lambda: facts_settled(pilot.app) or bool(pilot.app.errors), what="the lesson pane's lines")
    await pilot.pause()



class DispatchCounter:
    """Counts, by message type, what every message pump of the app handles.

    It wraps `MessagePump._dispatch_message` (the one place a pump handles a message), so
    messages bouncing between widgets show up as a count that grows while nothing happens.
    `install` returns the function that puts the original back (the `dispatched` fixture does both).
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def install(self) -> Callable[[], None]:
        from textual.message_pump import MessagePump

        real = MessagePump._dispatch_message
        counts = self.counts

        async def counting(pump, message):
            counts[type(message).__qualname__] += 1
            return await real(pump, message)

        MessagePump._dispatch_message = counting

        def uninstall() -> None:
            MessagePump._dispatch_message = real

        return uninstall


# A quiet app handles a handful of messages a second (a cursor blink, a notification's
# timeout); the message loop once fixed here handled thousands. Generous, so that it never flakes.
QUIET_MESSAGES = 60


async def idle_window(pilot, counter: DispatchCounter, seconds: float = 0.5) -> tuple[Counter[str], float]:
    """What the app does while left alone for `seconds`: the messages handled, and the CPU time spent.

    Not a synchronisation: the window is the measurement (does anything keep running?). It
    starts after a pilot pause, whose own callbacks to every widget are not counted.
    """
    await pilot.pause()
    counter.counts.clear()
    cpu = time.process_time()
    await asyncio.sleep(seconds)
    return Counter(counter.counts), time.process_time() - cpu


def own_messages(counts: Counter[str]) -> dict[str, int]:
    """The app's own messages among those counted (the workers' news, the grids' cursor moves)."""
    from inspector import messages

    ours = {name for name in dir(messages) if isinstance(getattr(messages, name), type)} | {"ColumnGrid.CursorMoved"}
    return {name: n for name, n in counts.items() if name in ours}


def running_timers(app) -> list[str]:
    """Timers that tick now (started, not paused, not done), on every screen, as `Widget: timer`."""
    out = []
    nodes = [app]
    for screen in app.screen_stack:
        nodes += list(screen.walk_children(with_self=True))
    for node in nodes:
        for timer in list(node._timers):
            if timer._task is not None and not timer._task.done() and timer._active.is_set():
                out.append(f"{type(node).__name__}: {timer.name}")
    return out


def post_key(app, key: str) -> None:
    """A key as the terminal sends it, not waited for (`pilot.press` waits for each)."""
    from textual import events

    char = key if len(key) == 1 else {"space": " ", "plus": "+", "question_mark": "?"}.get(key)
    app.post_message(events.Key(key, char))


def post_keys(app, *keys: str) -> None:
    """Keys as fast as a user can type: all queued at once, none waited for."""
    for key in keys:
        post_key(app, key)
