"""The lab's side of learning epoch by epoch: which texts its live sessions watch, and the
`Learning` of a text (its rows after every epoch, per strategy trained or replayed).

The held-out example (with its answer) and the first training example are watched from a
session's start; `watch(lab, text)` adds another from the next epoch on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from inspector.core.lab.sources import LiveSource
from inspector.core.training.learning import Curve, Learning

if TYPE_CHECKING:
    from inspector.core.lab.sources import BurstSource

Lab = Any  # inspector.core.lab.Lab (not imported: the lab imports this module)


def default_texts(lab: Lab) -> list[str]:
    """The texts every live session watches: the held-out example, then the first training example."""
    texts = [lab.predicted_text()]
    if lab.train_examples and lab.train_examples[0].text not in texts:
        texts.append(lab.train_examples[0].text)
    return texts


def _ids(lab: Lab, text: str) -> tuple[list[int], frozenset[int]]:
    from inspector.core.training.predictions import prediction_input

    lm = lab.model
    return prediction_input(lab.formatted_for(text), lm.tokenizer, lm.max_length)


def watch_source(lab: Lab, source: BurstSource) -> None:
    """A new live source watches the default texts and those asked for since (`lab.watched`)."""
    if isinstance(source, LiveSource):
        for text in [*default_texts(lab), *sorted(lab.watched)]:
            source.session.watch(text, _ids(lab, text)[0])


def watch(lab: Lab, text: str) -> None:
    """Record `text`'s rows after every epoch from now on, in every live source."""
    lab.watched.add(text)
    for source in list(lab.sources.values()):
        if isinstance(source, LiveSource) and text not in source.session.watched:
            source.session.watch(text, _ids(lab, text)[0])


def untrained_rows(lab: Lab, text: str, ids: list[int]) -> list[Any]:
    """The untrained model's rows of `text` (cached with the predictions view's)."""
    from inspector.core.training.predictions import DEFAULT_TOP_K, teacher_forced

    key: tuple[Any, ...] = ("untrained", text, DEFAULT_TOP_K)
    cache = lab._prediction_cache
    if key not in cache:
        if lab.untrained_gone:
            raise RuntimeError("the lab trained in place: ask for learning(text) before the burst")
        with lab.base_lock:
            cache[key] = teacher_forced(lab.model.model, lab.model.tokenizer, ids)
    return cache[key]


def learning_of(lab: Lab, text: str) -> Learning:
    """Per strategy trained or replayed, `text`'s rows after every epoch it was watched, epoch 0
    being the untrained model's; a strategy without any such epoch has a note instead."""
    ids, answer = _ids(lab, text)
    out = Learning(text, answer)
    base = untrained_rows(lab, text, ids)
    for strategy in lab.strategies:
        source = lab.sources.get(strategy)
        if source is None or source.steps_done == 0:
            continue
        epochs = source.epoch_rows(text)
        if not epochs:
            out.notes[strategy] = (
                f"{lab.name_of(strategy)} has no epoch of this text yet: it is recorded from the next epoch on"
            )
            continue
        losses = [(log.epoch, log.loss) for log in source.epoch_logs]
        out.curves[strategy] = Curve(strategy, lab.name_of(strategy), {0: base, **epochs}, losses)
    return out
