"""The keyboard soak on the tiny model: a few seeds of a random walk of keys over every lesson and view.

Each seed types a few hundred keys, often many at once (see `soak.py`), with bursts, demos
and the predictions animation running, then checks that the app answers a key and goes
quiet when left alone. A key costs the app a tenth of a second of CPU or more (mostly
Textual restyling and recomposing the footer), so the suite keeps the walks short;
`scripts/soak.py` runs long ones (see docs/contributing/tests.md). Skip with -m "not soak".
"""

from __future__ import annotations

import pytest
from soak import check, soak
from ui_helpers import FAST_LR

from inspector.app import InspectorApp

PRESSES = 250


@pytest.mark.soak
@pytest.mark.parametrize("seed", [1, 2])
async def test_a_random_walk_of_keys_breaks_nothing_and_leaves_the_app_quiet(tiny_path, dispatched, seed):
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs="live")
    report, settled = await soak(app, dispatched, seed, PRESSES)
    print(report.summary(), settled)
    assert report.presses >= PRESSES
    assert report.lessons == set(range(len(app.lessons)))  # the walk went everywhere
    # F2-F4 in the walk, and every view a lesson opens (lessons 11 and 13 open the batch view)
    assert report.views == {"labels", "training", "predictions"} | {lesson.view for lesson in app.lessons}
    assert check(report, settled) == [], "\n".join(report.errors[-5:])
