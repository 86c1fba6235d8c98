"""The lab's predictions: teacher-forced rows of a text under the untrained model and every
strategy trained or replayed, and its `Learning` (the rows after every epoch), from one cache.

The held-out example (with its answer) and the first training example are watched from a
live session's start; `watch(lab, text)` adds another from the next epoch on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inspector.core.training.learning import Curve, Learning
from inspector.core.training.predictions import DEFAULT_TOP_K

if TYPE_CHECKING:
    from inspector.core.lab.lab import Lab
    from inspector.core.lab.sources import BurstSource


@dataclass
class Predictions:
    """Teacher-forced rows per model ("untrained", "copy", ...) for one text."""

    text: str
    rows: dict[str, Any]  # model name -> list of PredictionRow, or None where not trained (yet)
    answer: frozenset[int]  # positions whose next token is part of an answer
    notes: dict[str, str] = field(default_factory=dict)  # why a row is empty, where a view cannot tell
    sources: dict[str, str] = field(default_factory=dict)  # "replay, epoch 3" for rows of a prepared run


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
    """A new source watches the default texts and those asked for since (`lab.watched`)."""
    for text in [*default_texts(lab), *sorted(lab.watched)]:
        source.watch(text, _ids(lab, text)[0])


def watch(lab: Lab, text: str) -> None:
    """Record `text`'s rows after every epoch from now on, in every source."""
    lab.watched.add(text)
    for source in list(lab.sources.values()):
        source.watch(text, _ids(lab, text)[0])


def untrained_rows(lab: Lab, text: str, ids: list[int], top_k: int = DEFAULT_TOP_K) -> list[Any] | None:
    """The untrained model's rows of `text`, cached; None once a lab training in place trained it."""
    from inspector.core.training.predictions import teacher_forced

    key: tuple[Any, ...] = ("untrained", text, top_k)
    cache = lab.prediction_cache
    if key not in cache and not lab.untrained_gone:
        with lab.base_lock:
            cache[key] = teacher_forced(lab.model.model, lab.model.tokenizer, ids, top_k=top_k)
    return cache.get(key)


def predictions(lab: Lab, text: str, top_k: int = DEFAULT_TOP_K) -> Predictions:
    """Teacher-forced rows of the untrained model and of every strategy trained or replayed,
    with `top_k` candidates per position. A strategy training right now has no row (it is
    computed once its burst ends)."""
    tok = lab.model.tokenizer
    ids, answer = _ids(lab, text)
    out = Predictions(text, {}, answer)
    out.rows["untrained"] = untrained_rows(lab, text, ids, top_k)
    if out.rows["untrained"] is None:
        out.notes["untrained"] = "trained in place: the untrained model's rows were not computed before the burst"
    for strategy in lab.strategies:
        out.rows[strategy] = None
        lock = lab.source_locks[strategy]
        if not lock.acquire(blocking=False):  # training right now: its row waits for the burst's end
            continue
        try:
            source = lab.sources.get(strategy)
            if source is None:
                continue
            key = (strategy, id(source), source.steps_done, text, top_k)
            rows = lab.prediction_cache.get(key)
            note = ""
            if rows is None:
                rows, note = source.predictions(text, tok, ids, top_k=top_k)
                if rows is not None:
                    lab.prediction_cache[key] = rows
            out.rows[strategy] = rows
            if note:
                out.notes[strategy] = note
            elif rows is not None and source.shown_as:
                out.sources[strategy] = source.shown_as
        finally:
            lock.release()
    return out


def learning(lab: Lab, text: str) -> Learning:
    """Per strategy trained or replayed, `text`'s rows after every epoch it was watched, epoch 0
    being the untrained model's; a strategy without any such epoch has a note instead.
    Watches `text` from now on."""
    watch(lab, text)
    ids, answer = _ids(lab, text)
    out = Learning(text, answer)
    base = untrained_rows(lab, text, ids)
    if base is None:
        raise RuntimeError("the lab trained in place: ask for learning(text) before the burst")
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
