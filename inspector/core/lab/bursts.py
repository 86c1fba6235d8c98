"""The lab's bursts: a strategy's source (live training on a copy of the untrained model, or
a prepared run's replay), the locks a burst takes, why one cannot run, and the reset.

Threads: HF trainers are made and run one at a time (`Lab.one_trainer`), always before a
strategy's own lock; a replay makes no trainer and takes neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from inspector.core.lab import predictions
from inspector.core.lab.sources import BurstSource, ReplaySource, StepProgress
from inspector.core.labels.strategies import CUSTOM, skipped_note
from inspector.core.training.burst import BurstResult, BurstSettings, EpochLog

if TYPE_CHECKING:
    from inspector.core.lab.lab import Lab

Tell = Callable[[str, str], None]  # (text, severity): a word for the user from a worker


def refusal(lab: Lab, strategy: str, speed: float | None) -> tuple[str, str] | None:
    """Why a burst of `strategy` cannot run now, as (kind, what it is about), or None:
    ("no-label-function", "") or ("replaying", strategy). The views word them."""
    if strategy == CUSTOM and lab.custom is None:
        return ("no-label-function", "")
    source = lab.sources.get(strategy)
    if speed is None and source is not None and source.replays:
        return ("replaying", strategy)
    return None


def _replay(lab: Lab, strategy: str, settings: BurstSettings, speed: float, tell: Tell) -> ReplaySource | None:
    """The prepared run of this burst, as a new replay source, or None (said through `tell`)."""
    from inspector.core.runs import store

    run, why = store.find(lab.model, lab.formatted, strategy, settings, lab.predicted_text())
    if run is None:
        if why == "none stored":
            tell(f"No {strategy} run is prepared for this model: training live.", "information")
        else:
            tell(f"No prepared run for {strategy} ({why}): training live.", "warning")
        return None
    return ReplaySource(run, speed, tell)


def _live(lab: Lab, strategy: str, settings: BurstSettings, tell: Tell) -> BurstSource:
    """The strategy's live session, made on first use on a copy of the untrained model (or on
    the model itself, for a lab that trains in place)."""
    from inspector.core.lab.sources import LiveSource
    from inspector.core.training.start import start_session

    source = lab.sources.get(strategy)
    if source is not None:
        return source
    custom = lab.custom if strategy == CUSTOM else None
    lm = lab.model
    options = dict(device=lm.device, template=lab.template, max_length=lm.max_length, custom=custom)
    if lab.in_place:
        if any(src.steps_done for src in lab.sources.values()):
            raise RuntimeError("a lab that trains in place trains one strategy: its model is not untrained")
        session = start_session(lm.model, lm.tokenizer, lab.formatted, strategy, settings, on_a_copy=False, **options)
    else:
        with lab.base_lock:  # the copy reads the untrained model
            session = start_session(lm.model, lm.tokenizer, lab.formatted, strategy, settings, **options)
    source = lab.sources[strategy] = LiveSource(session)
    predictions.watch_source(lab, source)
    if session.skipped:
        tell(f"{strategy}: {skipped_note(session.skipped, session.total_examples)}.", "warning")
    return source


def burst(
    lab: Lab,
    strategy: str,
    settings: BurstSettings,
    *,
    speed: float | None = None,
    on_start: Callable[[int, int, str], None] | None = None,
    on_step: Callable[[StepProgress], None] | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    tell: Tell | None = None,
) -> BurstResult | None:
    """`settings.epochs` more epochs of `strategy`; None when a replay has no more to show.

    With a replay `speed`, a strategy not trained live replays its prepared run where one
    matches (and goes on replaying until a reset); otherwise it trains live.
    """
    tell = tell or (lambda text, severity: None)

    def run(source: BurstSource) -> BurstResult | None:
        lab.training_now = strategy
        try:
            return source.run(settings.epochs, on_start=on_start, on_step=on_step, on_epoch=on_epoch,
                              should_stop=should_stop)
        finally:
            lab.training_now = None

    source = lab.sources.get(strategy)
    if source is None and speed is not None:
        replay = _replay(lab, strategy, settings, speed, tell)
        if replay is not None:
            source = lab.sources[strategy] = replay
    if source is not None and source.replays:  # no trainer, no lock: it reads what was stored
        source.pace(speed, tell)
        return run(source)
    with lab.one_trainer(), lab.source_locks[strategy]:
        return run(_live(lab, strategy, settings, tell))


def reset(lab: Lab) -> None:
    """Every strategy back to the untrained model: close every source, give the memory back."""
    from inspector.core.training.memory import release_memory

    for strategy in list(lab.sources):
        lab.sources.pop(strategy).close()
    lab.prediction_cache.clear()
    release_memory()  # the Trainer and TRL's patched forward hold cycles: gc, then malloc_trim
