"""The lab's demos: a lesson's computed panel, run on the model in use or replayed from the
run `causallm-inspect prepare` stored for exactly this context (`Demos`, which the Lab owns).

A quick demo (the tokenizer, a forward pass) reads the untrained model itself under the
base lock; one that trains runs on a copy of it, so nothing else waits for it. A demo that
makes HF trainers takes the trainer turn first (the Lab's `one_trainer`).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inspector.core.errors import InspectorError
from inspector.core.lab.context import demo_context
from inspector.core.training.burst import DEFAULT_SEED

if TYPE_CHECKING:
    from inspector.core.lab.workbench import Workbench
    from inspector.core.lessons.demos import DemoContext
    from inspector.core.lessons.model import Lesson

LIVE = "live"


@dataclass(frozen=True)
class DemoOutcome:
    """What a demo showed: its title and text, and where it came from ("live", or the replay
    of a prepared run, in words), with the seconds it ran (those recorded, for a replay)."""

    name: str
    title: str
    text: str
    source: str = LIVE
    seconds: float = 0.0

    @property
    def replayed(self) -> bool:
        return self.source != LIVE


class Demos:
    """A lesson's demo, live or replayed, under the Lab's locks."""

    def __init__(
        self,
        bench: Workbench,
        *,
        base_lock: threading.Lock,
        one_trainer: Callable[[Callable[[], None] | None], AbstractContextManager[Any]],
    ) -> None:
        self._bench = bench
        self._base_lock = base_lock  # the untrained model: a quick demo reads it, a training one copies it
        self._one_trainer = one_trainer

    def context(self, lesson: Lesson, **options: Any) -> DemoContext:
        """The context of a lesson's demo; `options` as `lab.context.demo_context` takes them."""
        bench = self._bench
        return demo_context(lesson, bench.model, bench.template, bench.formatted, **options)

    def run(
        self,
        lesson: Lesson,
        *,
        epochs: int | None = None,
        learning_rate: float | None = None,
        seed: int = DEFAULT_SEED,
        prepared: bool = False,
        progress: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_epoch: Callable[[str, Any], None] | None = None,
        again: str = "close other programs and run it again",
        waiting: Callable[[], None] | None = None,
        quick: bool = False,
    ) -> DemoOutcome:
        """Run the lesson's demo with these burst settings (`epochs` None: the lesson's); with
        `prepared`, a demo that prepare stores (it trains or makes trainers: `DemoSpec.prepared`)
        replays its stored run where one matches, and runs live where none does. `waiting` is
        called when the demo must wait for a running burst's trainer. With `quick`, only the
        demo's quick part (`DemoSpec.quick`), live, on the untrained model under the base lock."""
        from inspector.core.lessons.demos import DEMOS, run_demo

        if lesson.demo is None:
            raise InspectorError(f"lesson {lesson.id} has no demo", "choose a lesson whose front matter names a demo")
        name = lesson.demo
        spec = DEMOS[name]
        options: dict[str, Any] = dict(
            epochs=epochs, learning_rate=learning_rate, seed=seed, progress=progress, should_stop=should_stop,
            on_epoch=on_epoch, again=again,
        )
        if quick:
            if spec.quick is None:
                raise InspectorError(f"the demo of lesson {lesson.id} has no quick part", "run the whole demo")
            start = time.perf_counter()
            with self._base_lock:
                result = run_demo(name, self.context(lesson, **options), quick_only=True)
            return DemoOutcome(name, result.title, result.text, LIVE, time.perf_counter() - start)
        if prepared and spec.prepared:
            from inspector.core.runs import store

            found, _ = store.find_demo(self._bench.model, self.context(lesson, **options), name)
            if found is not None:
                label = f"replay of a run prepared {found.created_text} (it took {found.seconds:.0f} s)"
                return DemoOutcome(name, found.title, found.text, label, found.seconds)
        turn: AbstractContextManager[Any] = self._one_trainer(waiting) if spec.makes_trainer else nullcontext()
        start = time.perf_counter()
        if spec.on_demand:
            with self._base_lock:
                model = copy.deepcopy(self._bench.model.model)
            with turn:
                result = run_demo(name, self.context(lesson, model=model, **options))
            del model
        else:
            with turn, self._base_lock:
                result = run_demo(name, self.context(lesson, **options))
        return DemoOutcome(name, result.title, result.text, LIVE, time.perf_counter() - start)
