"""The trainer turn: HF trainers are made and run one at a time, by every part of the Lab.

Making a Trainer or an SFTTrainer (their TrainingArguments, in fact) resets accelerate's
process-wide AcceleratorState, which a training loop reads at every step: a trainer made
during a burst failed it. Bursts, TRL's labels, the batch view's step and the demos that
train take turns; and a turn puts that state back if a refused trainer left it reset.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class TrainerTurn:
    """Called, a turn to make or run HF trainers (`with lab.one_trainer(): ...`); `waiting` is
    called first where the turn must wait for another."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        from inspector.core.labels.trl_bridge import accelerate_state_kept

        if waiting is not None and self._lock.locked():
            waiting()
        with self._lock, accelerate_state_kept():
            yield

    @property
    def busy(self) -> bool:
        """Whether a trainer is being made or run right now."""
        return self._lock.locked()
