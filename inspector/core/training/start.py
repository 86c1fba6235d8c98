"""The one way a run's training session is made: the Lab's live bursts and the lessons' demos
that train (`core.lessons.demo_runs`) both call `start_session`.

Its turn markers and `max_length` are keyword-required, so no caller trains in the article's
format, or untruncated, by forgetting them: with `--human-marker "User:"` a demo's held-out
question is asked in "User:", as the burst's is.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import FormattedExample, TurnMarkers
from inspector.core.training.burst import BurstSettings

if TYPE_CHECKING:
    from inspector.core.labels.strategies import LabelMaker
    from inspector.core.training.session import TrainingSession


def start_session(
    model: Any,
    tokenizer: Any,
    examples: Sequence[FormattedExample],
    strategy: str,
    settings: BurstSettings,
    *,
    device: str,
    template: TurnMarkers,
    max_length: int | None,
    custom: LabelMaker | None = None,
    on_a_copy: bool = True,
) -> TrainingSession:
    """A session training `strategy` on `examples` in these turn markers, each example cut at
    `max_length` as the run's are; it trains a deep copy of `model` (the original stays
    untrained), or the model itself where `on_a_copy` is False (a command's one burst)."""
    from inspector.core.training.session import TrainingSession

    return TrainingSession(
        copy.deepcopy(model) if on_a_copy else model,
        tokenizer,
        examples,
        strategy,
        settings,
        device=device,
        template=template,
        max_length=max_length,
        custom=custom,
    )
