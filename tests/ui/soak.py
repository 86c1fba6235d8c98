"""A keyboard soak of the app: a seeded random walk of key presses over every lesson and view.

The walk types what a user could: the view keys, lessons, strategies, bursts (kept to a few
epochs), the predictions animation's keys, the code and help dialogs, the command palette,
tab through the widgets and type into the fields and the example editor, resize the
terminal, often several keys at once, faster than the app answers. Bursts, demos and
animations run meanwhile. Afterwards `settle` checks that the app answers a key and that,
left alone, nothing keeps running: no timer of ours ticking, no messages going round.

`tests/ui/test_soak.py` runs a few short seeds in the suite; `scripts/soak.py` runs longer
ones (see docs/contributing/tests.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from textual.app import ScreenStackError
from textual.command import CommandPalette
from textual.widgets import Input, Select, TextArea
from ui_helpers import QUIET_MESSAGES, DispatchCounter, idle_window, own_messages, post_key, running_timers, started

import inspector.app as app_module
import inspector.core.errors as errors_module
from inspector.core.errors import InspectorError
from inspector.screens.code import CodeScreen
from inspector.screens.help import HelpScreen
from inspector.screens.too_small import TooSmallScreen

# (key, weight) on the main screen, when the focus is not in a field.
MAIN_KEYS: list[tuple[str, float]] = [
    ("f2", 4), ("f3", 4), ("f4", 5), ("n", 3), ("p", 2), ("ctrl+right", 0.5), ("ctrl+left", 0.5),
    ("1", 2), ("2", 2), ("3", 2),
    ("c", 2), ("m", 2), ("t", 1.5), ("a", 0.7), ("plus", 1), ("escape", 2), ("x", 1),
    ("space", 4), ("r", 3), ("left", 6), ("right", 6), ("home", 2), ("end", 2),
    ("up", 1.5), ("down", 1.5), ("pageup", 0.3), ("pagedown", 0.3), ("enter", 1),
    ("s", 1), ("g", 1.5), ("e", 0.5), ("f1", 1), ("question_mark", 0.3),
    ("tab", 3), ("shift+tab", 1.5), ("ctrl+p", 0.5),
]  # fmt: skip
# In a text field or the example editor: mostly typing.
TYPING = list("abcxyz019 .-#:") + ["backspace", "backspace", "delete", "left", "right", "enter"]
FIELD_KEYS: list[tuple[str, float]] = [(k, 1) for k in TYPING] + [
    ("tab", 2), ("shift+tab", 1), ("escape", 1), ("f2", 0.5), ("f3", 0.5), ("f4", 0.5), ("f1", 0.3),
]  # fmt: skip
MODAL_KEYS: dict[type, list[tuple[str, float]]] = {
    HelpScreen: [("escape", 3), ("f1", 1), ("question_mark", 1), ("q", 1), ("down", 1), ("pagedown", 1), ("n", 0.3)],
    CodeScreen: [("escape", 3), ("s", 1), ("q", 1), ("down", 2), ("up", 1), ("home", 1), ("end", 1), ("f4", 0.3)],
}
# Command palette searches whose first hit is safe to run (the palette also offers Quit).
PALETTE_QUERIES = ("Lesson", "View: pre", "View: tra", "Train copy", "Train all", "Replay", "Strategy: m", "Reset")
SIZES = [(120, 40), (120, 40), (160, 45), (100, 30), (80, 24), (70, 20)]  # 70x20 is too small
GROUPS = (1, 2, 4, 8, 16, 32)  # how many keys the walk types at once, faster than the app answers
MAX_EPOCHS = 3  # the walk keeps bursts short: what a user types into the epochs field is cut to this


@dataclass
class SoakReport:
    """What one walk did and found."""

    seed: int
    presses: int = 0
    seconds: float = 0.0
    lessons: set[int] = field(default_factory=set)
    views: set[str] = field(default_factory=set)
    screens: Counter[str] = field(default_factory=Counter)
    bursts: int = 0
    crashes: list[str] = field(default_factory=list)  # worker errors that are not InspectorError
    errors: list[str] = field(default_factory=list)  # every error the app showed (most are the user's)
    history: deque[str] = field(default_factory=lambda: deque(maxlen=60))

    def summary(self) -> str:
        return (
            f"seed {self.seed}: {self.presses} keys in {self.seconds:.1f} s, lessons {sorted(self.lessons)}, "
            f"views {sorted(self.views)}, {self.bursts} bursts, screens {dict(self.screens)}, "
            f"{len(self.errors)} errors shown, {len(self.crashes)} crashes"
        )


@contextmanager
def recording_crashes(report: SoakReport) -> Iterator[None]:
    """Note every worker error that is a bug rather than the user's: anything but an InspectorError.

    Every worker error is put in words by `core.errors.in_words` (a view posts `Failed` with it and
    the app words it; the turns panel words its own): each module of the app that took that name
    gets a wrapper for the walk.
    """
    real = errors_module.in_words

    def in_words(error: BaseException) -> str:
        if not isinstance(error, InspectorError):
            where = "".join(traceback.format_exception(error)[-14:])
            report.crashes.append(f"{type(error).__name__}: {error}\n{where}")
        return real(error)

    users = [m for name, m in list(sys.modules.items())
             if name.startswith("inspector.") and m is not errors_module and getattr(m, "in_words", None) is real]
    assert app_module in users, "the app no longer words worker errors with core.errors.in_words: update the soak"
    for module in users:
        module.in_words = in_words
    try:
        yield
    finally:
        for module in users:
            module.in_words = real


def _pick(rng: random.Random, keys: list[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in keys], weights=[w for _, w in keys])[0]


def _in_field(app: Any) -> bool:
    return isinstance(app.focused, (Input, TextArea))


def _next_keys(app: Any, rng: random.Random) -> list[str]:
    """A few keys, chosen for the screen and focus on show as the walk posts them."""
    screen = app.screen
    if isinstance(screen, CommandPalette):
        return ["escape"]  # a palette left open by a burst of keys
    for kind, keys in MODAL_KEYS.items():
        if isinstance(screen, kind):
            return [_pick(rng, keys)]
    if isinstance(screen, TooSmallScreen):
        return [_pick(rng, MAIN_KEYS)]
    if _in_field(app) or isinstance(app.focused, Select) and app.focused.expanded:
        return [_pick(rng, FIELD_KEYS) for _ in range(rng.randint(1, 6))]
    key = _pick(rng, MAIN_KEYS)
    if key == "ctrl+p":
        if rng.random() < 0.6:
            return ["ctrl+p", *rng.choice(PALETTE_QUERIES), "enter"]
        return ["ctrl+p", *rng.choices("abcdefghij ", k=rng.randint(0, 4)), "escape"]
    return [key]


def _keep_bursts_short(app: Any) -> None:
    """What the walk typed into the epochs field, cut to MAX_EPOCHS (the walk is not a benchmark)."""
    field_ = app.main.training_view.query_one("#set-epochs", Input)
    try:
        too_many = int(field_.value) > MAX_EPOCHS
    except ValueError:
        return  # not a number: the next burst says so, which is what a user would see
    if too_many:
        field_.value = "1"


async def caught_up(app: Any, timeout: float = 60.0) -> None:
    """Wait (polling, bounded) until the app and its screen's widgets have handled what they were sent.

    Not `pilot.pause()`: it waits for a callback from every widget of the screen on show, and
    when the keys in flight close that screen (Esc in the help), its widgets never answer.
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        await asyncio.sleep(0.01)
        try:
            nodes = [app, *app.screen.walk_children(with_self=True)]
        except ScreenStackError:
            return  # the app is shutting down: the walk notices
        quiet = quiet + 1 if all(node._message_queue.empty() for node in nodes) else 0
        if time.monotonic() > deadline:
            raise AssertionError(f"the app did not catch up with the keys in {timeout:.0f} s")


async def walk(
    app: Any,
    pilot: Any,
    report: SoakReport,
    presses: int,
    rng: random.Random,
    progress: Callable[[SoakReport], None] | None = None,
) -> None:
    """`presses` keys over every lesson: the walk visits each lesson in turn (pressing n or p to get
    there, like a user) and types random keys in it, often several at once."""
    lessons = len(app.lessons) or 1
    share = max(1, presses // lessons)
    order = list(range(lessons))
    start = time.monotonic()
    training_since = 0
    while report.presses < presses:
        segment = report.presses // share
        target = order[segment % lessons]
        left_in_segment = (segment + 1) * share - report.presses
        if app.lesson_index != target:
            # To the segment's lesson, as a user would: out of a dialog or a field first.
            if app.screen is not app.main:
                keys = ["escape"]
            elif _in_field(app):
                keys = ["tab"]
            else:
                keys = ["n" if app.lesson_index < target else "p"]
        elif rng.random() < 0.01:
            await pilot.resize_terminal(*rng.choice(SIZES))
            report.history.append("<resize>")
            continue
        else:
            keys = []
            for _ in range(min(rng.choice(GROUPS), left_in_segment)):
                keys += _next_keys(app, rng)
                if "ctrl+p" in keys:
                    break  # the palette's keys end the group: more, typed into it, could pick Quit
        for key in keys:
            post_key(app, key)
            report.history.append(key)
        report.presses += len(keys)
        await caught_up(app)
        if rng.random() < 0.05:
            # The user looks at the screen a moment: bursts and animations move on meanwhile.
            await asyncio.sleep(rng.choice((0.05, 0.1, 0.3)))
        if app._exception is not None:
            raise AssertionError(f"the app crashed: {app._exception!r}")
        if app._exit:
            raise AssertionError("the app quit (the walk never asks it to)")
        _keep_bursts_short(app)
        report.lessons.add(app.lesson_index)
        report.views.add(app.main.view)
        report.screens[type(app.screen).__name__] += 1
        if app.main.training_view.running:
            training_since += 1
            if training_since > 400:  # a user stops a burst that runs for long
                app.main.training_view.stop()
        elif training_since:
            training_since = 0
            report.bursts += 1
        if progress is not None and report.presses % 500 < len(keys):
            report.seconds = time.monotonic() - start
            progress(report)
    report.seconds = time.monotonic() - start


# --- after the storm ---------------------------------------------------------------------


# Textual's own timers that tick in a quiet app: a focused field's cursor blink, and the
# clock every ProgressBar keeps for its ETA (once a second, even when hidden or full).
TEXTUAL_TIMERS = ("Input", "ExampleEditor", "TextArea", "CommandInput", "ProgressBar")


async def wait_for(pilot: Any, condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.02)


async def workers_done(app: Any, pilot: Any, timeout: float) -> None:
    """Every worker finished: done, failed (the app's crash handling reports it) or cancelled.

    Not `workers.wait_for_complete()`: it raises WorkerCancelled when an exclusive worker (a
    prediction the next key superseded) is cancelled while it waits, which is the app working.
    """
    await wait_for(pilot, lambda: all(w.is_finished for w in app.workers), "the workers to finish", timeout)


async def settle(app: Any, pilot: Any, counter: DispatchCounter, report: SoakReport) -> dict[str, Any]:
    """After the storm: the app answers a key at once, then, left alone, goes quiet. Returns what it measured."""
    await pilot.resize_terminal(120, 40)
    await wait_for(pilot, lambda: not isinstance(app.screen, TooSmallScreen), "the too-small notice to go", 10)
    for _ in range(6):  # Esc closes the help, the code, the palette, a Select's list
        if app.screen is app.main and not (isinstance(app.focused, Select) and app.focused.expanded):
            break
        await pilot.press("escape")
    assert app.screen is app.main, f"a dialog stays open: {app.screen!r}"
    # A key is answered while whatever the walk started still runs.
    before = app.main.view
    key, view = ("f2", "labels") if before != "labels" else ("f4", "predictions")
    started = time.monotonic()
    await pilot.press(key)
    await wait_for(pilot, lambda: app.main.view == view, f"{key} to show the {view} view", 10)
    answered = time.monotonic() - started
    # Left alone: bursts are stopped (as Esc does), workers finish, the animation ends.
    app.main.training_view.stop()
    await workers_done(app, pilot, 300)
    await pilot.press("f4")
    predictions = app.main.views["predictions"]
    await wait_for(pilot, lambda: not app.main.training_view.running, "the bursts to end", 60)
    await workers_done(app, pilot, 120)
    await wait_for(pilot, lambda: not predictions.playing, "the predictions animation to end", 60)
    counts, cpu = await idle_window(pilot, counter, 1.0)
    timers = [t for t in running_timers(app) if not t.startswith(TEXTUAL_TIMERS)]
    workers = [f"{w.group}: {w.name}" for w in app.workers if not w.is_finished]
    return {"answered_s": answered, "idle_counts": counts, "idle_cpu_s": cpu, "timers": timers, "workers": workers}


def check(report: SoakReport, settled: dict[str, Any]) -> list[str]:
    """Everything wrong with a walk, as lines (empty: all well)."""
    problems = [f"crash: {c}" for c in report.crashes]
    counts = settled["idle_counts"]
    ours = own_messages(counts)
    if ours:
        problems.append(f"messages of the app's own still handled while idle: {ours}")
    if sum(counts.values()) >= QUIET_MESSAGES:
        problems.append(f"{sum(counts.values())} messages handled in 1 s of idle: {counts.most_common(6)}")
    if settled["timers"]:
        problems.append(f"timers still ticking when idle: {settled['timers']}")
    if settled["workers"]:
        problems.append(f"workers still running when idle: {settled['workers']}")
    if settled["idle_cpu_s"] > 0.5:
        problems.append(f"{settled['idle_cpu_s']:.2f} s of CPU in 1 s of idle")
    return problems


SIZE = (120, 40)


async def soak(
    app: Any,
    counter: DispatchCounter,
    seed: int,
    presses: int,
    progress: Callable[[SoakReport], None] | None = None,
) -> tuple[SoakReport, dict[str, Any]]:
    """One walk of `presses` keys on `app` (not yet running), then `settle`; raises on a crash.

    An error of the walk or of the app comes back as an AssertionError that names the seed
    and the last keys typed, to replay it with `scripts/soak.py --seed N`.
    """
    report = SoakReport(seed)
    settled: dict[str, Any] = {}
    failure: BaseException | None = None
    with recording_crashes(report):
        try:
            async with app.run_test(size=SIZE) as pilot:
                try:
                    await started(pilot)
                    await walk(app, pilot, report, presses, random.Random(seed), progress)
                    settled = await settle(app, pilot, counter, report)
                except Exception as exc:
                    failure = exc
                    with contextlib.suppress(Exception):
                        await pilot.pause()  # the keys still queued, before the app shuts down
                report.errors = list(app.errors)
        except Exception as exc:  # the app died: run_test raises what killed it
            failure = exc if failure is None or app._exception is not None else failure
    if failure is not None:
        raise AssertionError(
            f"seed {seed}, after {report.presses} keys: {failure!r}\nlast keys: {list(report.history)}"
        ) from failure
    return report, settled
