"""Waiting for app state in pilot and snapshot tests (no sleeps as synchronisation)."""

from __future__ import annotations

import time
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
    return panel.spec.on_demand or (bool(panel.text) and not panel.running)


async def started(pilot) -> None:
    """Wait for the model, the first labels and the first lesson's demo panel."""
    await wait_until(pilot, lambda: labels_settled(pilot.app) or bool(pilot.app.errors), what="the model and labels")
    await wait_until(pilot, lambda: demo_settled(pilot.app) or bool(pilot.app.errors), what="the demo panel")
    await pilot.pause()
