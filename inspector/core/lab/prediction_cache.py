"""The lab's predictions: teacher-forced rows of a text under the untrained model and every
strategy trained or replayed, and its `Learning` (the rows after every epoch), from one cache
that `PredictionCache` owns with the texts it watches.

The held-out example (with its answer) and the first training example are watched from a
live session's start; `watch(text)` adds another from the next epoch on. The cache reads the
strategies' sources through the lab's `Bursts` (never while a burst trains one).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inspector.core.training.learning import Curve, Learning
from inspector.core.training.predictions import DEFAULT_TOP_K

if TYPE_CHECKING:
    from inspector.core.lab.bursts import Bursts
    from inspector.core.lab.sources import BurstSource
    from inspector.core.lab.workbench import Workbench


@dataclass
class Predictions:
    """Teacher-forced rows per model ("untrained", "copy", ...) for one text."""

    text: str
    rows: dict[str, Any]  # model name -> list of PredictionRow, or None where not trained (yet)
    answer: frozenset[int]  # positions whose next token is part of an answer
    notes: dict[str, str] = field(default_factory=dict)  # why a row is empty, where a view cannot tell
    sources: dict[str, str] = field(default_factory=dict)  # "replay, epoch 3" for rows of a prepared run


class PredictionCache:
    """Teacher-forced rows, cached per model state, and the texts watched epoch by epoch."""

    def __init__(self, bench: Workbench, bursts: Bursts, *, base_lock: threading.Lock) -> None:
        self._bench = bench
        self._bursts = bursts
        self._base_lock = base_lock  # the untrained model's rows read it
        self._rows: dict[tuple[Any, ...], list[Any]] = {}
        self.watched: set[str] = set()  # texts recorded after every epoch besides the defaults (`learning`)

    def clear(self) -> None:
        """Forget every row (the lab's reset): the next ones are computed again."""
        self._rows.clear()

    def default_texts(self) -> list[str]:
        """The texts every live session watches: the held-out example, then the first training example."""
        bench = self._bench
        texts = [bench.predicted_text()]
        if bench.train_examples and bench.train_examples[0].text not in texts:
            texts.append(bench.train_examples[0].text)
        return texts

    def _ids(self, text: str) -> tuple[list[int], frozenset[int]]:
        from inspector.core.training.predictions import prediction_input

        lm = self._bench.model
        return prediction_input(self._bench.formatted_for(text), lm.tokenizer, lm.max_length)

    def watch_source(self, source: BurstSource) -> None:
        """A new source watches the default texts and those asked for since (`watched`)."""
        for text in [*self.default_texts(), *sorted(self.watched)]:
            source.watch(text, self._ids(text)[0])

    def watch(self, text: str) -> None:
        """Record `text`'s rows after every epoch from now on, in every source."""
        self.watched.add(text)
        for source in list(self._bursts.sources.values()):
            source.watch(text, self._ids(text)[0])

    def untrained_rows(self, text: str, ids: list[int], top_k: int = DEFAULT_TOP_K) -> list[Any] | None:
        """The untrained model's rows of `text`, cached; None once a lab training in place trained it."""
        from inspector.core.training.predictions import teacher_forced

        key: tuple[Any, ...] = ("untrained", text, top_k)
        if key not in self._rows and not self._bursts.untrained_gone:
            lm = self._bench.model
            with self._base_lock:
                self._rows[key] = teacher_forced(lm.model, lm.tokenizer, ids, top_k=top_k)
        return self._rows.get(key)

    def predictions(self, text: str, top_k: int = DEFAULT_TOP_K) -> Predictions:
        """Teacher-forced rows of the untrained model and of every strategy trained or replayed,
        with `top_k` candidates per position. A strategy training right now has no row (it is
        computed once its burst ends)."""
        tok = self._bench.model.tokenizer
        ids, answer = self._ids(text)
        out = Predictions(text, {}, answer)
        out.rows["untrained"] = self.untrained_rows(text, ids, top_k)
        if out.rows["untrained"] is None:
            out.notes["untrained"] = "trained in place: the untrained model's rows were not computed before the burst"
        for strategy in self._bench.strategies:
            out.rows[strategy] = None
            with self._bursts.idle_source(strategy) as source:  # training right now: its row waits for the burst's end
                if source is None:
                    continue
                key = (strategy, id(source), source.steps_done, text, top_k)
                rows = self._rows.get(key)
                note = ""
                if rows is None:
                    rows, note = source.predictions(text, tok, ids, top_k=top_k)
                    if rows is not None:
                        self._rows[key] = rows
                out.rows[strategy] = rows
                if note:
                    out.notes[strategy] = note
                elif rows is not None and source.shown_as:
                    out.sources[strategy] = source.shown_as
        return out

    def learning(self, text: str) -> Learning:
        """Per strategy trained or replayed, `text`'s rows after every epoch it was watched, epoch 0
        being the untrained model's; a strategy without any such epoch has a note instead.
        Watches `text` from now on."""
        self.watch(text)
        ids, answer = self._ids(text)
        out = Learning(text, answer)
        base = self.untrained_rows(text, ids)
        if base is None:
            raise RuntimeError("the lab trained in place: ask for learning(text) before the burst")
        bench = self._bench
        for strategy in bench.strategies:
            source = self._bursts.sources.get(strategy)
            if source is None or source.steps_done == 0:
                continue
            epochs = source.epoch_rows(text)
            if not epochs:
                out.notes[strategy] = (
                    f"{bench.name_of(strategy)} has no epoch of this text yet: it is recorded from the next epoch on"
                )
                continue
            losses = [(log.epoch, log.loss) for log in source.epoch_logs]
            out.curves[strategy] = Curve(strategy, bench.name_of(strategy), {0: base, **epochs}, losses)
        return out
