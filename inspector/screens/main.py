"""The main screen: lessons on the left, the current lesson's live view on the right.

The views are `VIEW_CLASSES` (`inspector.widgets.views`); the screen loops over them,
passes each the model's state and the training news, and sends a view key to the view on
show. `check_action` hides the keys the view on show does not answer (`LabView.ACTIONS`),
so the footer always lists what works now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on
from textual.actions import parse
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, Input, TextArea

from inspector.core.labels.turn_policy import POLICY_HELP
from inspector.messages import (
    BurstFinished,
    BurstStarted,
    Command,
    EpochFinished,
    Failed,
    TrainingIdle,
    TrainingReset,
    TrainingStarting,
)
from inspector.screens.keys import MAIN_KEYS
from inspector.widgets.demo_panel import DemoPanel
from inspector.widgets.lab_view import LabView, ViewOptions
from inspector.widgets.label_function_follower import LabelFunctionFollower
from inspector.widgets.labels_view import LabelsView
from inspector.widgets.lesson_facts import LessonFacts
from inspector.widgets.lesson_list import LessonList
from inspector.widgets.lesson_pane import LessonPane
from inspector.widgets.model_status import ModelStatus
from inspector.widgets.training_view import TrainingView
from inspector.widgets.turns_panel import PolicyBar
from inspector.widgets.views import VIEW_CLASSES

if TYPE_CHECKING:
    from inspector.core.lab import Lab
    from inspector.core.models import LoadedModel


TALL_ROWS = 40  # from this many rows the lesson list grows to show all the lessons

# The keys a view answers (LabView.ACTIONS), shown only where the view on show does; and the
# view's method each view key calls.
VIEW_ACTIONS = frozenset({"train", "train_all", "again", "reset", "view_key"})
VIEW_KEYS = {"strategy": "set_strategy", "step": "step", "jump": "jump", "epoch": "step_epoch", "batch_row": "move", "toggle_play": "toggle",
             "replay": "replay", "turns": "toggle_turns", "part": "move"}


class MainScreen(Screen[None]):
    """Lesson list, model status and lesson prose on the left; the live view on the right."""

    BINDINGS: ClassVar[list[BindingType]] = MAIN_KEYS

    class Painted(Message):
        """The screen's first frame is on the terminal: the slow work may start."""

    def __init__(self, lab: Lab, lessons: list[Any], options: ViewOptions) -> None:
        super().__init__()
        self.lab = lab
        self.lessons = lessons
        self.options = options
        self.data_source = options.data_source
        self.view = "labels"
        self.lesson_index = 0  # the lesson on show

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield LessonPane(self.lessons, self.lab, id="side")
            with Vertical(id="right"):
                yield DemoPanel(self.lab, id="demo-panel")
                with ContentSwitcher(id="views", initial="labels-view"):
                    for cls in VIEW_CLASSES:
                        yield cls.build(self.lab, self.options)
        yield LabelFunctionFollower(self.lab)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LessonPane).fit(self.app.size.width)
        self.demo_panel.fit_height(self.app.size.height)
        self.set_class(self.app.size.height >= TALL_ROWS, "-tall")
        # Demos that train follow the training view's settings and its runs selector.
        self.demo_panel.settings = self.training_view.read_settings
        self.demo_panel.source = self.training_view.read_source
        self.lesson_facts.settings = self.training_view.read_settings  # prepared runs of these settings
        self.show_lesson(0)
        if self.lab.recording is not None:  # --run DIR: the app opens on the recorded steps
            self.show_view("batch")
        # Load after the first frame is painted: importing torch in the worker holds the GIL.
        self.call_after_refresh(lambda: self.post_message(self.Painted()))

    # --- parts -----------------------------------------------------------------------------

    @property
    def views(self) -> dict[str, LabView]:
        return {v.VIEW: v for v in self.query_one(ContentSwitcher).query_children(LabView)}

    @property
    def current_view_widget(self) -> LabView:
        return self.views[self.view]

    @property
    def labels_view(self) -> LabelsView:
        return self.query_one(LabelsView)

    @property
    def training_view(self) -> TrainingView:
        return self.query_one(TrainingView)

    @property
    def demo_panel(self) -> DemoPanel:
        return self.query_one(DemoPanel)

    @property
    def lesson_facts(self) -> LessonFacts:
        return self.query_one(LessonFacts)

    @property
    def model_status(self) -> ModelStatus:
        return self.query_one(ModelStatus)

    # --- the user's label function (--labels-from) -------------------------------------------

    def on_label_function_follower_reloaded(self, message: LabelFunctionFollower.Reloaded) -> None:
        if message.found is None:
            return  # touched, not changed (or the same error again)
        for view in self.views.values():  # the labels, the training table, exercise 11's row in the batch view
            view.label_function_changed()
        self.refresh_bindings()  # "a all three" or "all four"

    def on_label_function_follower_exercise_checked(self, message: LabelFunctionFollower.ExerciseChecked) -> None:
        report = message.report
        self.labels_view.show_exercise(report)
        if self.current_view_widget is not self.labels_view:  # the panel is in the labels view: say it here too
            ok = sum(r.passed for r in report.results)
            failed = [report.group_short(g) for g in report.groups() if not g[0].passed]
            first = f"\n{failed[0][:160]}" if failed else ""
            self.notify(
                f"{ok} of {len(report.results)} pass{' ✓' if report.passed else ''}{first}\n(the labels view lists them)",
                title=f"Exercise {report.number}", severity="information" if report.passed else "warning",
                timeout=8, markup=False,
            )

    # --- lessons and views -----------------------------------------------------------------

    def show_lesson(self, index: int) -> None:
        if not self.lessons:
            return
        self.lesson_index = index
        lesson = self.lessons[index]
        self.query_one(LessonPane).show_lesson(index)
        for view in self.views.values():
            view.show_lesson(lesson)
        self.demo_panel.show_for(lesson, index + 1)
        self.show_view(lesson.view)
        self.lesson_facts.check()  # after the views took the lesson's settings

    def show_view(self, view: str) -> None:
        self.view = view
        self.query_one(ContentSwitcher).current = f"{view}-view"
        self.current_view_widget.shown()
        # The view's main widget takes the focus, so its keys (arrows, Home/End) work at once;
        # not while the learner is in the lesson list (its arrows browse lessons, F1 explains it)
        # or typing.
        keep = isinstance(self.focused, (Input, TextArea, LessonList)) and self.focused.is_on_screen
        if not keep:
            self.current_view_widget.focus_main()
        self.refresh_bindings()

    # --- the lesson pane (`l`), and the terminal's size -------------------------------------

    @property
    def pane(self) -> str:
        return self.query_one(LessonPane).mode

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(LessonPane).fit(event.size.width)
        self.demo_panel.fit_height(event.size.height)
        self.set_class(event.size.height >= TALL_ROWS, "-tall")  # a tall terminal lists every lesson

    def action_cycle_pane(self) -> None:
        pane = self.query_one(LessonPane)
        pane.cycle()
        if pane.mode == "hidden" and self.focused is not None and pane in self.focused.ancestors_with_self:
            self.current_view_widget.focus_main()

    # --- model and data ------------------------------------------------------------------------

    def model_progressed(self, text: str) -> None:
        self.model_status.progressed(text)

    def model_ready(self, loaded: LoadedModel) -> None:
        self.model_status.loaded(loaded)
        if self.lab.label_host.exercise is not None:
            self.query_one(LabelFunctionFollower).check_exercise()
        for view in self.views.values():
            view.model_ready()
        self.demo_panel.model_ready()
        self.lesson_facts.model_ready()

    def on_demo_panel_timed(self, message: DemoPanel.Timed) -> None:
        """A lesson's demo ran live: the facts above its prose show how long it took."""
        self.lesson_facts.demo_timed(message.lesson_id, message.seconds)

    def model_failed(self, problem: str) -> None:
        self.model_status.failed(problem)
        for view in self.views.values():
            view.model_failed(problem)
        self.demo_panel.model_failed()

    def data_loaded(self, problems: list[Any], final: bool, note: str | None, options: dict[str, Any] | None) -> None:
        """--data: the problems known so far, what the bursts train on, and the check of the rest."""
        self.labels_view.set_problems(problems, final=final)
        if note:
            self.training_view.set_data_note(note)
        self.labels_view.check_data(options)

    def prepared_runs(self, strategies: list[str]) -> bool:
        """Say which strategies have prepared runs; without any, bursts train live. True when
        the runs selector was set to replay and had to go back to live."""
        return self.training_view.prepared_runs(strategies)

    # --- training news: every view hears it, the stale ones compute again ------------------------

    @on(TrainingStarting)
    @on(TrainingReset)
    @on(BurstStarted)
    @on(EpochFinished)
    @on(BurstFinished)
    @on(TrainingIdle)
    def _training_news(self, message: Message) -> None:
        """Every view hears the news (`LabView.news`): the ones it makes stale compute again."""
        for view in self.views.values():
            view.news(getattr(message, "NEWS", ""))
        self.refresh_bindings()  # the stop key, and the keys of a burst's end

    # --- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if "custom" in parameters and self.lab.custom is None:
            return False  # no label function given (or an exercise's that is not one): keys 4 and u do nothing
        if action == "train_all" and bool(parameters) != ("custom" in self.lab.strategies):
            return False  # "all four" (train_all('custom')) takes the key once your function is loaded
        if action in VIEW_ACTIONS:
            wanted = {"train_all": "train", "view_key": parameters[0] if parameters else ""}.get(action, action)
            return wanted in self.current_view_widget.ACTIONS
        return {"stop": self.training_view.running, "problems": self.data_source is not None,
                "run_demo": self.demo_panel.can_run}.get(action, True)

    def on_command(self, message: Command) -> None:
        """The palette's entry: the action, whatever view is on show."""
        _, name, parameters = parse(message.action)
        getattr(self, f"action_{name}")(*parameters)

    def action_problems(self) -> None:
        """The labels view, with the focus on its list of problem rows."""
        self.show_view("labels")
        self.labels_view.query_one("#problem-list").focus()

    def action_show_strategy(self, strategy: str) -> None:
        """The labels view, showing this strategy's labels (the command palette's "Strategy: ...")."""
        self.show_view("labels")
        self.labels_view.set_strategy(strategy)

    # --- the turn policy (the labels view's field, the palette) ---------------------------------

    def on_policy_bar_wanted(self, message: PolicyBar.Wanted) -> None:
        self.action_set_turn_policy(message.policy)

    def action_set_turn_policy(self, policy: str) -> None:
        """Label and train under this turn policy (its rows are made off the UI thread); not while a burst runs."""
        bar = self.labels_view.query_one(PolicyBar)
        if policy == self.lab.turn_policy.policy:
            return
        if self.training_view.running or self.lab.loaded is None:
            bar.set_policy(self.lab.turn_policy.policy)
            why = "Stop the running burst first (Esc)" if self.training_view.running else "Wait for the model to load"
            self.notify(f"{why}: a turn policy makes the rows the bursts train.", severity="warning")
            return
        bar.display = True
        bar.apply(policy)

    def on_policy_bar_applied(self, message: PolicyBar.Applied) -> None:
        """The lab trains another turn policy: strategies trained on the old rows start again."""
        if message.error is not None:
            self.labels_view.query_one(PolicyBar).set_policy(self.lab.turn_policy.policy)
            self.post_message(Failed(f"Turn policy {message.policy} cannot be used", message.error))
            return
        if self.lab.bursts.sources:
            self.training_view.reset_all()
        self.labels_view.turn_policy_changed()
        self.views["batch"].invalidate()
        note = getattr(self.app, "training_note", lambda: None)()
        self.training_view.set_data_note(note or "")
        self.notify(f"Turn policy {message.policy}: {POLICY_HELP[message.policy]}; the bursts train "
                    f"{len(self.lab.formatted)} rows.", title="Turn policy", timeout=6)

    def action_show_turns(self) -> None:
        """The labels view in its turns mode (the command palette's "Turns: …")."""
        self.show_view("labels")
        if not self.labels_view.turns_mode:
            self.labels_view.toggle_turns()

    def action_show_view(self, view: str, replay: bool = False) -> None:
        self.show_view(view)
        if replay:
            self.current_view_widget.replay()

    def action_view_key(self, name: str, *parameters: object) -> None:
        """A view key: the view on show does it (`LabView`: step, jump, step_epoch, move, toggle, replay)."""
        getattr(self.current_view_widget, VIEW_KEYS[name])(*parameters)

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

    def action_show_code(self) -> None:
        """The current lesson's code, as `causallm-inspect export N` would write it."""
        from inspector.screens.code import CodeScreen

        if self.lessons and not isinstance(self.app.screen, CodeScreen):
            screen = CodeScreen.for_lesson(self.lessons[self.lesson_index], self.lesson_index + 1, self.lab.code_spec())
            if isinstance(screen, str):
                self.post_message(Failed("No code for this lesson", screen))
            else:
                self.app.push_screen(screen)

    def action_run_demo(self) -> None:
        if self.demo_panel.spec is None:
            self.notify("This lesson has no demo panel.", timeout=3)
        else:
            self.demo_panel.start()
