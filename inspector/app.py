"""The Textual app: lessons beside live views of labels, training and predictions.

The slow work is the lab's (`inspector.core.lab.Lab`: the model, the examples, the bursts,
the predictions), run by each view in its own thread workers (`@work(thread=True, ...)`),
which import torch and transformers only when they run. A view whose worker fails clears
what it was waiting for and posts `Failed`; the app turns it into a readable notification
and goes on working. Nothing here imports torch at module level, so the first screen
paints at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from textual import events, on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.widgets import OptionList
from textual.worker import Worker, WorkerState

from inspector.core.data.examples import TRAIN_ROWS
from inspector.core.errors import in_words
from inspector.core.lab import Lab
from inspector.core.lessons.model import Lesson, lessons_or_error
from inspector.core.training.burst import DEFAULT_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULT_SEED
from inspector.help_text import help_for
from inspector.messages import Failed, ModelLoaded, ModelLoadProgressed
from inspector.palette import InspectorCommands
from inspector.running import screenshot_folder
from inspector.screens.help import HelpScreen
from inspector.screens.main import MainScreen
from inspector.screens.too_small import cover_if_too_small
from inspector.widgets.lab_view import view_options
from inspector.widgets.model_status import short_name
from inspector.widgets.views import VIEW_CLASSES


class InspectorApp(App[int]):
    """causallm-inspect: which tokens a causal LM is trained on, and what it learns.

    The app is bindings, screens, the command palette and error routing. The model, the
    examples and the strategies' bursts are the lab's (`self.lab`); each view runs its own
    workers against it and posts `Failed` when one fails, which the app shows.
    """

    CSS_PATH = "inspector.tcss"
    TITLE = "causallm-inspect"
    COMMANDS = App.COMMANDS | {InspectorCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", id="help", tooltip="Explain the part in focus"),
        Binding("question_mark", "help", "Help", show=False, id="help-alt"),
        Binding("f7", "glossary", "Glossary", show=False, id="glossary", tooltip="Every term the lessons define"),
        Binding("n", "next_lesson", "Next", id="lesson-next", tooltip="Next lesson"),
        Binding("p", "previous_lesson", "Prev", id="lesson-previous", tooltip="Previous lesson"),
        Binding("ctrl+right", "next_lesson", "Next lesson", show=False, id="lesson-next-alt"),
        Binding("ctrl+left", "previous_lesson", "Previous lesson", show=False, id="lesson-previous-alt"),
        *(Binding(f"f{i + 2}", f"view('{v.VIEW}')", v.TITLE, id=f"view-{v.VIEW}") for i, v in enumerate(VIEW_CLASSES)),
    ]

    lesson_index: var[int] = var(0, init=False)

    def __init__(
        self,
        model: str | None = None,
        *,
        data_name: str | None = None,
        epochs: int = DEFAULT_EPOCHS,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        seed: int = DEFAULT_SEED,
        lessons: list[Lesson] | None = None,
        runs: str | None = None,
        data_problems: Sequence[Any] = (),
        data_options: dict[str, Any] | None = None,
        train_rows: int = TRAIN_ROWS,
        **lab_options: Any,
    ) -> None:
        """`lab_options` are the Lab's (device, examples, template, trust_remote_code,
        bos_token, eos_token, labels_from, batch_config, turn_policy, inference_template,
        recording); the bursts train the first
        `train_rows` examples of --data (`data_name`), or every example given. The exercise
        whose starter `labels_from` follows, if any, is found here once and given to the Lab."""
        super().__init__()
        self.lessons, self.lesson_error = (lessons, None) if lessons is not None else lessons_or_error()
        self.lab = Lab(model, train_rows=train_rows if data_name else None,
                       exercise=_exercise_of(lab_options.get("labels_from"), self.lessons or []), **lab_options)
        # The runs selector's first value: "live" or a replay speed. None: replay as recorded
        # where prepared runs are stored for the model, else live (said once it is loaded).
        self.runs_chosen = runs is not None
        self.runs_source = runs or "1"
        self.data_name = data_name
        # --data: the rows that are not examples (found while reading), and how the file was
        # read (for the data report and the rows read on demand).
        self.data_problems = list(data_problems)
        self.data_options = data_options
        self.burst_defaults = (epochs, learning_rate, seed)
        self.errors: list[str] = []  # every error shown, newest last

    @property
    def loaded(self) -> Any:
        return self.lab.loaded

    # --- screens ---------------------------------------------------------------------------

    def get_default_screen(self) -> MainScreen:
        options = view_options(self.lab, self.data_name, self.burst_defaults, self.runs_source)
        return MainScreen(self.lab, self.lessons, options)

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0] if self.screen_stack else self.screen
        assert isinstance(screen, MainScreen)
        return screen

    def on_mount(self) -> None:
        self.call_after_refresh(lambda: cover_if_too_small(self, self.size))
        self.sub_title = f"loading {self.lab.model_spec or 'the embedded Gemma 3 270M'}…"
        if self.lesson_error:
            self.show_error("The lessons could not be read", self.lesson_error)
        # The model loads once the main screen has painted (MainScreen.Painted), so that
        # every message of the load finds its widgets.

    def on_main_screen_painted(self, message: MainScreen.Painted) -> None:
        self.load()

    def on_resize(self, event: events.Resize) -> None:
        cover_if_too_small(self, event.size)

    def on_unmount(self) -> None:
        # Running bursts and demos end after their current step, so the process can exit.
        self.lab.close()

    # --- lessons, views --------------------------------------------------------------------

    def goto_lesson(self, index: int) -> None:
        if self.lessons:
            self.lesson_index = index % len(self.lessons)

    def action_lesson(self, index: int) -> None:
        self.goto_lesson(index)

    def watch_lesson_index(self, index: int) -> None:
        self.main.show_lesson(index)

    @on(OptionList.OptionSelected, "#lesson-list")
    def _lesson_selected(self, event: OptionList.OptionSelected) -> None:
        self.lesson_index = event.option_index

    def action_next_lesson(self) -> None:
        if self.lessons and self.lesson_index < len(self.lessons) - 1:
            self.lesson_index += 1
        elif self.lessons:
            self.notify("This is the last lesson.", timeout=2)

    def action_previous_lesson(self) -> None:
        if self.lesson_index > 0:
            self.lesson_index -= 1

    def action_view(self, view: str) -> None:
        self.main.show_view(view)

    def action_command_palette(self) -> None:
        """Ctrl+P: Textual's palette, made safe against keys typed fast (see palette.py)."""
        from textual.command import CommandPalette

        from inspector.palette import SafeCommandPalette

        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(SafeCommandPalette(id="--command-palette"))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        view = self.main.current_view_widget if self.screen is self.main else None
        tok = self.lab.loaded.tokenizer if self.lab.loaded is not None else None
        tokens = {"bos": tok.bos_token, "eos": tok.eos_token} if tok is not None else None
        self.push_screen(HelpScreen(help_for(self.focused or self.screen, view, tokens)))

    def action_glossary(self) -> None:
        """F7: the glossary, the current lesson's terms first (over the main screen only: F7 in it closes it)."""
        from inspector.core.errors import InspectorError
        from inspector.core.lessons.glossary import load_glossary
        from inspector.screens.glossary import GlossaryScreen

        if self.screen is not self.main:
            return
        try:
            glossary = load_glossary(lesson_ids={lesson.id for lesson in self.lessons} if self.lessons else None)
        except InspectorError as exc:
            self.show_error("The glossary could not be read", str(exc))
            return
        self.push_screen(GlossaryScreen(glossary, self.lessons, self.main.lesson_index if self.lessons else None))

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        # Textual saves to ~/Downloads, which many machines (servers, containers) do not have.
        return super().deliver_screenshot(filename, path or str(screenshot_folder()), time_format)

    def _on_delivery_failed(self, event: events.DeliveryFailed) -> None:
        if event.name == "screenshot":
            self.show_error("The screenshot was not saved", f"{event.exception}. Check that the folder is writable.")

    # --- errors ----------------------------------------------------------------------------

    def show_error(self, title: str, text: str) -> None:
        self.errors.append(text)
        self.notify(text, title=title, severity="error", timeout=12, markup=False)

    def on_failed(self, message: Failed) -> None:
        """A view's worker failed (it has cleared its own pending state), or a request was refused."""
        text = message.text if message.text is not None else in_words(message.error or RuntimeError("unknown"))
        self.show_error(message.title, text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        text = in_words(event.worker.error)
        if event.worker.group == "load":
            self.sub_title = "no model loaded"
            self.main.model_failed(text)
            self.show_error("The model could not be loaded", text)
        else:
            self.show_error("Something went wrong", text)

    # --- model loading ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        found = self.lab.load(progress=lambda text: self.post_message(ModelLoadProgressed(text)))
        self.post_message(ModelLoaded(found))
        self.lab.hand_over_tokenizer()  # the label process gets the tokenizer now, not at the first save

    def on_model_load_progressed(self, message: ModelLoadProgressed) -> None:
        self.main.model_progressed(message.text)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        lm = self.lab.model
        found = message.found
        cache = "cached" if lm.from_cache else "converted now"
        trust = " · ⚠ trust_remote_code ON" if lm.trust_remote_code else ""
        self.sub_title = f"{short_name(lm)} · {lm.device} · {cache}{trust}"
        self.main.model_ready(lm)
        self._say_prepared(found.prepared)
        if found.data_error:
            self.show_error("The training data has a problem", found.data_error)
        if self.data_name:
            self._data_loaded(found.problems)
        elif self.lab.turn_policy.policy != "all":  # --turn-policy on the article's examples
            self.main.training_view.set_data_note(self.training_note() or "")
        if lm.trust_remote_code:
            self.notify("trust_remote_code is ON: this model's own Python code was allowed to run.",
                        title="Warning", severity="warning", timeout=10)

    def _data_loaded(self, format_problems: list[Any]) -> None:
        """--data: list the problems known so far, say what the bursts train on, check the rest."""
        known = sorted([*self.data_problems, *format_problems], key=lambda p: p.row)
        self.main.data_loaded(known, self.data_options is None, self.training_note(), self.data_options)

    def training_note(self) -> str | None:
        """What the bursts train: the rows of --data, and the rows a turn policy other than all makes of them."""
        from inspector.core.data.examples import train_rows_note

        rows = list(dict.fromkeys(ex.row for ex in self.lab.train_examples))  # split: several rows of one example
        note = train_rows_note(rows, self.data_name, len(self.lab.examples)) if self.data_name else None
        policy = self.lab.turn_policy.policy
        if policy == "all":
            return note
        said = f"turn policy {policy}: the bursts train {len(self.lab.formatted)} rows made of {len(rows)} examples"
        return f"{note} · {said}" if note else said

    def _say_prepared(self, strategies: list[str]) -> None:
        """The runs selector offers prepared runs only where some are stored for this model."""
        went_live = self.main.prepared_runs(strategies)
        if went_live and self.runs_chosen:
            self.notify(f"--replay-speed {self.runs_source}: no run is prepared for this model, so bursts train live. "
                        "Run causallm-inspect prepare first to replay on stage.",
                        title="Prepared runs", severity="warning", timeout=8)


def _exercise_of(reloader: Any, lessons: Sequence[Lesson]) -> Any:
    """The exercise whose starter file the label function's reloader follows (a `FoundExercise`), or None."""
    if reloader is None:
        return None
    from inspector.core.exercises.registry import find_exercise

    return find_exercise(reloader.source.path, lessons)
