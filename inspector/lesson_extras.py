"""The app's part of the lesson track: the show-code dialog and the lessons' demo panels.

A mixin of `InspectorApp`, kept apart so that the app module stays about loading, labels,
training and predictions. The demos themselves are core functions (`inspector.core.lessons.demos`);
here they run in workers, on the untrained model (quick ones, under the app's base-model
lock) or on a copy of it (the ones that train), and post their text to the demo panel.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from textual import work
from textual.widget import Widget
from textual.worker import get_current_worker

from inspector.core.errors import InspectorError
from inspector.core.lessons.model import Lesson
from inspector.core.training.burst import DEFAULT_EPOCHS, DEFAULT_SEED
from inspector.messages import DemoComputed, DemoProgressed

if TYPE_CHECKING:
    from inspector.core.models import LoadedModel


class LessonExtras:
    """Show code (`s`) and the lesson's demo (`g`), for `InspectorApp`."""

    # Provided by InspectorApp.
    lessons: list[Lesson]
    lesson_index: int
    loaded: LoadedModel
    formatted: list[Any]
    examples: list[Any]
    prepared_demo: Any
    _base_lock: threading.Lock
    one_trainer: Callable[..., AbstractContextManager[None]]

    def _trainer_turn(self, lesson: Lesson, target: Widget) -> AbstractContextManager[Any]:
        """The app's turn for HF trainers (`one_trainer`) for a demo that makes some, else nothing.

        A demo that has to wait for a running burst says so in its panel.
        """
        from inspector.core.lessons.demos import DEMOS

        if not DEMOS[lesson.demo].makes_trainer:  # type: ignore[index]
            return nullcontext()
        return self.one_trainer(
            lambda: target.post_message(DemoProgressed(lesson.id, "waiting for the running burst: one trainer at a time"))
        )

    def show_code(self) -> None:
        """The current lesson's code, as `causallm-inspect export N` would write it."""
        from inspector.core.lessons.code import CodeSpec, join_parts, own_lines_start, render_parts
        from inspector.screens.code import CodeScreen

        if not self.lessons or isinstance(self.screen, CodeScreen):
            return
        lesson = self.lessons[self.lesson_index]
        spec = CodeSpec(
            model=self.model_spec,
            device=self.device,
            examples=tuple(e.text for e in self.examples),
            template=self.template,
            bos_token=self.special_tokens["bos_token"],
            eos_token=self.special_tokens["eos_token"],
        )
        try:
            parts = render_parts(lesson, self.lesson_index + 1, spec)
        except InspectorError as exc:
            self.show_error("No code for this lesson", str(exc))
            return
        self.push_screen(CodeScreen(join_parts(parts), lesson.title, self.lesson_index + 1, own_lines_start(parts)))

    def run_demo(self) -> None:
        panel = self.main.demo_panel
        if panel.spec is None:
            self.notify("This lesson has no demo panel.", timeout=3)
        elif self.loaded is None:
            self.notify(self.load_error or "The model is still loading.", severity="warning")
        else:
            panel.start()

    def compute_demo(self, lesson_id: str, target: Widget) -> None:
        lesson = next(lesson for lesson in self.lessons if lesson.id == lesson_id)
        from inspector.core.lessons.demos import DEMOS

        if DEMOS[lesson.demo].on_demand:  # type: ignore[index]
            self._demo_run(lesson, target, self.main.training_view.read_source())
        else:
            self._demo_quick(lesson, target)

    def _demo_context(self, lesson: Lesson, target: Widget, model: Any) -> Any:
        from inspector.core.data.chat_format import add_special_tokens
        from inspector.core.lessons.demos import DemoContext

        lm = self.loaded
        tok = lm.tokenizer
        if not self.formatted:
            raise InspectorError("the training data could not be formatted", self.data_error or "fix --data")
        example = (
            add_special_tokens(lesson.example, tok.bos_token, tok.eos_token, self.template, model_name=lm.name)
            if lesson.example
            else self.formatted[0]
        )
        try:  # the burst settings on show: a demo that trains uses them too
            epochs, lr, seed = self.main.training_view.read_settings()
        except InspectorError:
            epochs, lr, seed = lesson.epochs or DEFAULT_EPOCHS, None, DEFAULT_SEED
        worker = get_current_worker()

        def progress(text: str) -> None:
            target.post_message(DemoProgressed(lesson.id, text))

        return DemoContext(
            model,
            tok,
            list(self.formatted),
            example,
            device=lm.device,
            template=self.template,
            strategy=lesson.strategy,
            epochs=epochs,
            learning_rate=lr,
            seed=seed,
            progress=progress,
            should_stop=lambda: worker.is_cancelled or self._stop_demo.is_set(),
            on_epoch=lambda variant, log: progress(f"{variant}, epoch {log.epoch}: {log.holdout!r}"),
            again=self._measure_again(lesson),
        )

    def _measure_again(self, lesson: Lesson) -> str:
        """How to time the steps again: here, or in a terminal, where nothing draws meanwhile."""
        command = f"causallm-inspect lesson {self.lessons.index(lesson) + 1} --plain"
        if self.model_spec:
            command += f" --model {self.model_spec}"
        return (
            f"close other programs and press g again, or run `{command}` in a terminal, where nothing draws meanwhile"
        )

    @work(thread=True, exclusive=True, group="demo", exit_on_error=False)
    def _demo_quick(self, lesson: Lesson, target: Widget) -> None:
        """Tokenizer work and a forward pass or two, on the untrained model itself."""
        from inspector.core.lessons.demos import run_demo

        try:
            with self._trainer_turn(lesson, target), self._base_lock:
                result = run_demo(lesson.demo, self._demo_context(lesson, target, self.loaded.model))  # type: ignore[arg-type]
        except InspectorError as exc:
            target.post_message(DemoComputed(lesson.id, error=str(exc)))
            return
        target.post_message(DemoComputed(lesson.id, result.text))

    @work(thread=True, exclusive=True, group="demo-run", exit_on_error=False)
    def _demo_run(self, lesson: Lesson, target: Widget, source: str = "live") -> None:
        """A demo that trains: on a copy of the untrained model, so nothing else waits for it.

        Unless runs are set to live, a result `causallm-inspect prepare` stored for exactly
        this model, data and settings is shown at once instead, labelled as such.
        """
        from inspector.core.lessons.demos import run_demo

        self._stop_demo.clear()
        try:
            if source != "live":
                demo = self.prepared_demo(lesson, self._demo_context(lesson, target, self.loaded.model))
                if demo is not None:
                    label = f"replay of a run prepared {demo.created_text} (it took {demo.seconds:.0f} s)"
                    target.post_message(DemoComputed(lesson.id, demo.text, source=label))
                    return
            with self._base_lock:
                model = copy.deepcopy(self.loaded.model)
            with self._trainer_turn(lesson, target):
                result = run_demo(lesson.demo, self._demo_context(lesson, target, model))  # type: ignore[arg-type]
        except InspectorError as exc:
            target.post_message(DemoComputed(lesson.id, error=str(exc)))
            return
        if get_current_worker().is_cancelled or self._stop_demo.is_set():
            target.post_message(DemoComputed(lesson.id, error="stopped before it finished; g runs it again"))
            return
        target.post_message(DemoComputed(lesson.id, result.text))

