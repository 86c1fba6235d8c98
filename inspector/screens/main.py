"""The main screen: lessons on the left, the current lesson's live view on the right.

The screen owns the view-specific keys; `check_action` hides those that do not apply to
the view on show, so the footer always lists what works now.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, Input, Markdown, TextArea

from inspector.messages import (
    BurstFinished,
    BurstStarted,
    EpochFinished,
    Failed,
    TrainingIdle,
    TrainingReset,
    TrainingStarting,
)
from inspector.widgets.batch_view import BatchView
from inspector.widgets.demo_panel import DemoPanel
from inspector.widgets.labels_view import LabelsView
from inspector.widgets.learning_view import LearningView
from inspector.widgets.lesson_list import LessonList
from inspector.widgets.model_status import ModelStatus
from inspector.widgets.predictions_view import PredictionsView
from inspector.widgets.training_view import TrainingView

if TYPE_CHECKING:
    from inspector.core.data.chat_format import ChatTemplate
    from inspector.core.lab import Lab
    from inspector.core.models import LoadedModel


TALL_ROWS = 40  # from this many rows the lesson list grows to show all ten lessons

# The lesson pane on the left: `l` cycles through these. Below NARROW_BELOW terminal columns
# it starts narrow, so that the views keep room for their token columns.
PANE_MODES = ("wide", "narrow", "hidden")
NARROW_BELOW = 120


class LessonText(VerticalScroll):
    """The current lesson's prose."""

    HELP = """\
## Lesson text

The lesson's explanation; the live view on the right shows what it describes. Scroll
with the arrow keys or the mouse once it has the focus; `n`/`p` change the lesson. `l`
makes the pane narrow, hides it, and brings it back wide: the views get the room for
more token columns. Below 120 terminal columns it starts narrow.
"""


class MainScreen(Screen[None]):
    """Lesson list, model status and lesson prose on the left; the live view on the right."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "strategy('copy')", "copy", id="strategy-copy", tooltip="Labels copied from input_ids"),
        Binding("2", "strategy('mask')", "mask", id="strategy-mask", tooltip="Human part masked to -100"),
        Binding("3", "strategy('trl')", "trl", id="strategy-trl", tooltip="TRL SFTTrainer, completion-only loss"),
        Binding("4", "strategy('custom')", "yours", id="strategy-custom", tooltip="Your label function (--labels-from)"),
        Binding("left", "step(-1)", "◀", id="step-back", show=False),
        Binding("right", "step(1)", "▶", id="step-on", show=False),
        Binding("home", "jump(False)", "start", id="jump-start", show=False),
        Binding("end", "jump(True)", "end", id="jump-end", show=False),
        Binding("c", "train('copy')", "train copy", id="train-copy"),
        Binding("m", "train('mask')", "train mask", id="train-mask"),
        Binding("t", "train('trl')", "train trl", id="train-trl"),
        Binding("u", "train('custom')", "train yours", id="train-custom", tooltip="Train your label function"),
        Binding("a", "train_all", "all three", id="train-all"),
        # The same key once your function is a fourth strategy (check_action shows one of the two).
        Binding("a", "train_all('custom')", "all four", id="train-all-custom"),
        Binding("plus", "again", "again", id="train-again", tooltip="Repeat the last burst: train more epochs"),
        Binding("escape", "stop", "stop", id="train-stop", tooltip="Stop the burst after the current step"),
        Binding("x", "reset", "reset", id="train-reset", tooltip="Every strategy back to the untrained model"),
        Binding("left_square_bracket", "epoch(-1)", "◀ epoch", id="epoch-back"),
        Binding("left_square_bracket", "batch_row(-1)", "◀ batch", id="batch-back"),
        Binding("right_square_bracket", "batch_row(1)", "batch ▶", id="batch-on"),
        Binding("right_square_bracket", "epoch(1)", "epoch ▶", id="epoch-on"),
        Binding("space", "toggle_play", "pause/play", id="play-toggle"),
        Binding("r", "replay", "replay", id="play-replay"),
        Binding("s", "show_code", "code", id="show-code", tooltip="The code behind this lesson's view"),
        Binding("g", "run_demo", "run demo", id="run-demo", tooltip="Run the lesson's demo (it trains copies)"),
        Binding("e", "problems", "problem rows", id="problem-rows", tooltip="The rows of --data that train wrongly"),
        Binding("l", "cycle_pane", "lesson pane", id="lesson-pane", tooltip="Lesson pane: wide → narrow → hidden"),
    ]

    class Painted(Message):
        """The screen's first frame is on the terminal: the slow work may start."""

    def __init__(
        self,
        lab: Lab,
        lessons: list[Any],
        examples: list[str],
        template: ChatTemplate,
        predict_choices: list[tuple[str, str]],
        settings: tuple[int, float, int],
        runs: str = "1",
        *,
        rows: list[int] | None = None,
        data_source: str | None = None,
    ) -> None:
        super().__init__()
        self.lab = lab
        self.runs = runs
        self.rows = rows
        self.data_source = data_source
        self.lessons = lessons
        self.examples = examples
        self.template = template
        self.predict_choices = predict_choices
        self.settings = settings
        self.view = "labels"
        self.lesson_index = 0  # the lesson on show
        self.pane = "wide"
        self.pane_chosen = False  # `l` was pressed: the pane no longer follows the terminal's width

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            with Vertical(id="side"):
                yield LessonList(self.lessons, id="lesson-list")
                yield ModelStatus(id="model-status")
                with LessonText(id="lesson-scroll"):
                    yield Markdown("", id="lesson-text")
            with Vertical(id="right"):
                yield DemoPanel(self.lab, id="demo-panel")
                with ContentSwitcher(id="views", initial="labels-view"):
                    yield LabelsView(
                        self.lab,
                        self.examples,
                        self.template,
                        rows=self.rows,
                        data_source=self.data_source,
                        id="labels-view",
                    )
                    epochs, lr, seed = self.settings
                    yield TrainingView(self.lab, epochs, lr, seed, runs=self.runs, id="training-view")
                    yield PredictionsView(self.lab, self.predict_choices, id="predictions-view")
                    yield LearningView(self.lab, id="learning-view")
                    yield BatchView(self.lab, id="batch-view")
        yield Footer()

    def on_mount(self) -> None:
        self.set_pane(self._pane_for(self.app.size.width))
        self.demo_panel.fit_height(self.app.size.height)
        self.set_class(self.app.size.height >= TALL_ROWS, "-tall")
        # Demos that train follow the training view's settings and its runs selector.
        self.demo_panel.settings = self.training_view.read_settings
        self.demo_panel.source = self.training_view.read_source
        self.show_lesson(0)
        # Load after the first frame is painted: importing torch in the worker holds the GIL.
        self.call_after_refresh(lambda: self.post_message(self.Painted()))
        if self.lab.reloader is not None:
            self._watch_label_function()

    # --- the user's label function (--labels-from) -------------------------------------------

    class LabelFileSaved(Message):
        """The file of the user's label function changed on disk."""

    @work(thread=True, exclusive=True, group="label-file", exit_on_error=False)
    def _watch_label_function(self) -> None:
        """Wait for saves of the label function's file (no timer, no CPU while nothing changes).

        Watches the file's folder: editors that save by writing a new file and renaming it
        replace the file a watch on the file itself would follow.
        """
        import watchfiles

        assert self.lab.reloader is not None
        path = self.lab.reloader.source.path.resolve()
        for changes in watchfiles.watch(
            path.parent,
            watch_filter=lambda change, where: Path(where).name == path.name,
            stop_event=self.lab.closing,
            debounce=200,
            recursive=False,
        ):
            if changes:
                self.post_message(self.LabelFileSaved())

    def on_worker_state_changed(self, event: Any) -> None:
        from inspector.messages import worker_error

        error = worker_error(event)
        if error is not None and event.worker.group == "label-file":
            self.post_message(Failed("Saves of your label function are not followed any more", error=error))
        elif error is not None and event.worker.group == "label-reload":
            self.post_message(Failed("Your label function could not be reloaded", error=error))
        elif error is not None and event.worker.group == "exercise":
            self.post_message(Failed("The exercise could not be checked", error=error))

    def on_main_screen_label_file_saved(self, message: LabelFileSaved) -> None:
        self._reload_label_function()

    class LabelsReloaded(Message):
        """The label function's file was loaded again (in the label process): `found` is its new
        version, the LabelCodeError of a version that is not used, or None (nothing changed)."""

        def __init__(self, found: Any) -> None:
            self.found = found
            super().__init__()

    @work(thread=True, group="label-reload", exit_on_error=False)
    def _reload_label_function(self) -> None:
        """Load the saved file off the UI thread: the user's code runs (with a time limit) first."""
        self.post_message(self.LabelsReloaded(self.lab.reload_labels()))

    def on_main_screen_labels_reloaded(self, message: LabelsReloaded) -> None:
        from inspector.core.labels.custom import LabelCodeError

        found = message.found
        if found is None:
            return  # touched, not changed (or the same error again)
        if isinstance(found, LabelCodeError):
            self.notify(
                f"{found.problem_line()} The app goes on with the last version that worked.",
                title="Your label function",
                severity="warning",
                timeout=6,
                markup=False,
            )
        else:
            self.notify(f"{found.name} reloaded", title="Your label function", timeout=2)
            self.check_exercise()
        self.labels_view.label_function_changed()
        self.training_view.label_function_changed()
        self.refresh_bindings()  # "a all three" or "all four"

    class ExerciseChecked(Message):
        """The check of an exercise's file ran (on its current version); `report` is a CheckReport."""

        def __init__(self, report: Any) -> None:
            self.report = report
            super().__init__()

    @work(thread=True, exclusive=True, group="exercise", exit_on_error=False)
    def check_exercise(self) -> None:
        """Run the exercise's check, as `exercise N --check` does, when the file is an exercise."""
        report = self.lab.exercise_check()
        if report is not None:
            self.post_message(self.ExerciseChecked(report))

    def on_main_screen_exercise_checked(self, message: ExerciseChecked) -> None:
        self.labels_view.show_exercise(message.report)

    # --- parts -----------------------------------------------------------------------------

    @property
    def labels_view(self) -> LabelsView:
        return self.query_one(LabelsView)

    @property
    def training_view(self) -> TrainingView:
        return self.query_one(TrainingView)

    @property
    def predictions_view(self) -> PredictionsView:
        return self.query_one(PredictionsView)

    @property
    def learning_view(self) -> LearningView:
        return self.query_one(LearningView)

    @property
    def batch_view(self) -> BatchView:
        return self.query_one(BatchView)

    @property
    def current_view_widget(self) -> LabelsView | TrainingView | PredictionsView | LearningView | BatchView:
        return {
            "labels": self.labels_view,
            "training": self.training_view,
            "predictions": self.predictions_view,
            "learning": self.learning_view,
            "batch": self.batch_view,
        }[self.view]

    @property
    def demo_panel(self) -> DemoPanel:
        return self.query_one(DemoPanel)

    @property
    def model_status(self) -> ModelStatus:
        return self.query_one(ModelStatus)

    # --- lessons and views -----------------------------------------------------------------

    def show_lesson(self, index: int) -> None:
        if not self.lessons:
            return
        self.lesson_index = index
        lesson = self.lessons[index]
        option_list = self.query_one(LessonList)
        if option_list.highlighted != index:
            option_list.highlighted = index
        self.query_one("#lesson-text", Markdown).update(lesson.body)
        self.query_one(LessonText).scroll_home(animate=False)
        self.labels_view.set_strategy(lesson.strategy)
        if lesson.example:
            self.labels_view.set_example(lesson.example)
        self.labels_view.point_at_interesting_column()
        if lesson.epochs:
            self.training_view.set_epochs(lesson.epochs)
        self.demo_panel.show_for(lesson, index + 1)
        self.show_view(lesson.view)

    def show_view(self, view: str) -> None:
        self.view = view
        self.query_one(ContentSwitcher).current = f"{view}-view"
        if view == "predictions":
            self.predictions_view.shown()
        elif view == "learning":
            self.learning_view.shown()
        elif view == "batch":
            self.batch_view.shown()
        # The view's main widget takes the focus, so its keys (arrows, Home/End) work at once;
        # not while the learner is in the lesson list (its arrows browse lessons, F1 explains it)
        # or typing.
        keep = isinstance(self.focused, (Input, TextArea, LessonList)) and self.focused.is_on_screen
        if not keep:
            self.current_view_widget.focus_main()
        self.refresh_bindings()

    # --- the lesson pane -------------------------------------------------------------------

    @staticmethod
    def _pane_for(width: int) -> str:
        return "narrow" if width < NARROW_BELOW else "wide"

    def on_resize(self, event: events.Resize) -> None:
        if not self.pane_chosen:
            self.set_pane(self._pane_for(event.size.width))
        self.demo_panel.fit_height(event.size.height)
        # A tall terminal shows every lesson in the list; a short one scrolls it.
        self.set_class(event.size.height >= TALL_ROWS, "-tall")

    def set_pane(self, mode: str) -> None:
        """Show the lesson pane wide, narrow, or not at all."""
        self.pane = mode
        for m in PANE_MODES:
            self.set_class(m == mode, f"-pane-{m}")
        side = self.query_one("#side")
        if mode == "hidden" and self.focused is not None and side in self.focused.ancestors_with_self:
            self.current_view_widget.focus_main()

    def action_cycle_pane(self) -> None:
        self.pane_chosen = True
        self.set_pane(PANE_MODES[(PANE_MODES.index(self.pane) + 1) % len(PANE_MODES)])

    # --- model -----------------------------------------------------------------------------

    def model_progressed(self, text: str) -> None:
        self.model_status.progressed(text)

    def model_ready(self, loaded: LoadedModel) -> None:
        self.model_status.loaded(loaded)
        if self.lab.reloader is not None:
            self.check_exercise()
        self.labels_view.model_ready()
        self.predictions_view.model_ready()
        self.learning_view.model_ready()
        self.batch_view.model_ready()
        self.demo_panel.model_ready()

    def model_failed(self, problem: str) -> None:
        self.model_status.failed(problem)
        self.labels_view.model_failed(problem)
        self.predictions_view.model_failed()
        self.demo_panel.model_failed()

    # --- training news, for the predictions view and the footer ----------------------------

    def on_training_starting(self, message: TrainingStarting) -> None:
        self.refresh_bindings()

    def on_training_reset(self, message: TrainingReset) -> None:
        self.predictions_view.invalidate()
        self.learning_view.invalidate()

    def on_burst_started(self, message: BurstStarted) -> None:
        self.predictions_view.invalidate()
        self.refresh_bindings()

    def on_epoch_finished(self, message: EpochFinished) -> None:
        self.learning_view.invalidate()  # the epoch's rows are recorded: the heat map grows a row

    def on_burst_finished(self, message: BurstFinished) -> None:
        self.predictions_view.invalidate()
        self.learning_view.invalidate()

    def on_training_idle(self, message: TrainingIdle) -> None:
        self.predictions_view.invalidate()
        self.refresh_bindings()

    # --- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        view = self.view
        if parameters and parameters[0] == "custom" and self.lab.reloader is None:
            return False  # no label function given: keys 4 and u do nothing, and are not listed
        if action == "strategy":
            return view == "labels"
        if action in ("step", "jump"):
            return view in ("labels", "predictions", "learning")
        if action == "epoch":
            return view == "learning"
        if action == "batch_row":
            return view == "batch"
        if action == "train_all" and not parameters and "custom" in self.lab.strategies:
            return False  # "all four" (train_all('custom')) takes the key and the footer
        if action == "train_all" and parameters and "custom" not in self.lab.strategies:
            return False  # no function loaded (yet): "all three"
        if action in ("train", "train_all"):
            return view in ("training", "predictions", "learning")
        if action in ("again", "reset"):
            return view == "training"
        if action == "stop":
            return self.training_view.running
        if action in ("toggle_play", "replay"):
            return view in ("predictions", "learning")
        if action == "problems":
            return self.data_source is not None
        if action == "run_demo":
            spec = self.demo_panel.spec
            return spec is not None and spec.on_demand
        return True

    def action_problems(self) -> None:
        """The labels view, with the focus on its list of problem rows."""
        self.show_view("labels")
        self.labels_view.query_one("#problem-list").focus()

    def action_strategy(self, strategy: str) -> None:
        self.labels_view.set_strategy(strategy)

    def show_strategy(self, strategy: str) -> None:
        """The labels view, showing this strategy's labels (the command palette's "Strategy: ...")."""
        self.show_view("labels")
        self.labels_view.set_strategy(strategy)

    def action_step(self, delta: int) -> None:
        if self.view == "labels":
            self.labels_view.grid.action_move(delta)
        elif self.view == "learning":
            self.learning_view.step(delta)
        else:
            self.predictions_view.step(delta)

    def action_jump(self, end: bool) -> None:
        if self.view == "labels":
            self.labels_view.grid.action_move_to(-1 if end else 0)
        elif self.view == "learning":
            self.learning_view.jump(end)
        else:
            self.predictions_view.jump(end)

    def action_epoch(self, delta: int) -> None:
        self.learning_view.step_epoch(delta)

    def action_batch_row(self, delta: int) -> None:
        """[ ]: the step's micro-batches, ranks and rows, in the batch view."""
        self.batch_view.move(delta)

    def action_train(self, strategy: str) -> None:
        self.training_view.start((strategy,))

    def action_train_all(self, with_custom: str = "") -> None:
        """Every strategy there is in turn: the three, and your function's where it is loaded."""
        self.training_view.start(self.lab.strategies)

    def action_again(self) -> None:
        last = self.training_view.last_request
        if last is None:
            self.notify("Nothing to repeat yet: press c, m, t or a first.", severity="warning")
            return
        self.training_view.start(last)

    def action_stop(self) -> None:
        self.training_view.stop()

    def action_reset(self) -> None:
        self.training_view.reset_all()

    def action_toggle_play(self) -> None:
        (self.learning_view if self.view == "learning" else self.predictions_view).toggle()

    def action_replay(self) -> None:
        (self.learning_view if self.view == "learning" else self.predictions_view).replay()

    def action_show_code(self) -> None:
        """The current lesson's code, as `causallm-inspect export N` would write it."""
        from inspector.core.errors import InspectorError
        from inspector.core.lessons.code import join_parts, own_lines_start, render_parts
        from inspector.screens.code import CodeScreen

        index = self.lesson_index
        if not self.lessons or isinstance(self.app.screen, CodeScreen):
            return
        lesson = self.lessons[index]
        try:
            parts = render_parts(lesson, index + 1, self.lab.code_spec())
        except InspectorError as exc:
            self.post_message(Failed("No code for this lesson", str(exc)))
            return
        self.app.push_screen(CodeScreen(join_parts(parts), lesson.title, index + 1, own_lines_start(parts)))

    def action_run_demo(self) -> None:
        if self.demo_panel.spec is None:
            self.notify("This lesson has no demo panel.", timeout=3)
        else:
            self.demo_panel.start()
