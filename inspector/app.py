"""The Textual app: lessons beside live views of labels, training and predictions.

The app owns the slow work. Every worker runs in a thread (`@work(thread=True, ...)`),
imports torch and transformers only when it runs, and posts messages to the view that
shows its results; its failures reach the one `on_worker_state_changed` handler, which
turns them into a readable notification and leaves the app working. Nothing here imports
torch at module level, so the first screen paints at once.
"""

from __future__ import annotations

import threading
from pathlib import Path
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from inspector.core.data.chat_format import ARTICLE_TEMPLATE, HOLDOUT_ANSWER, HOLDOUT_WORD, ChatTemplate, article_text
from inspector.core.data.examples import TRAIN_ROWS, Example, article_examples
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import STRATEGIES
from inspector.core.lessons.model import Lesson, load_lessons
from inspector.core.training.burst import DEFAULT_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULT_SEED
from inspector.help import help_for
from inspector.bursts import Bursts
from inspector.data_rows import DataRows
from inspector.lesson_extras import LessonExtras
from inspector.palette import InspectorCommands
from inspector.prepared_runs import PreparedReplays
from inspector.messages import LabelsComputed, ModelLoaded, ModelLoadProgressed, PredictionsComputed
from inspector.screens.help import HelpScreen
from inspector.screens.main import MainScreen
from inspector.widgets.labels_view import example_label
from inspector.widgets.model_status import short_name


def screenshot_folder() -> Path:
    """Where Ctrl+P → Screenshot saves: the Downloads folder where there is one, else the working folder."""
    import os

    from platformdirs import user_downloads_path

    downloads = user_downloads_path()
    if downloads.is_dir() and os.access(downloads, os.W_OK):
        return downloads
    return Path.cwd()


def _readable(error: BaseException) -> str:
    """A user-facing line for any worker error: InspectorError as it is, others by type and message."""
    if isinstance(error, InspectorError):
        return str(error)
    lines = str(error).strip().splitlines()
    message = lines[0][:300] if lines else ""
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if "out of memory" in str(error).lower() or type(error).__name__ == "OutOfMemoryError":
        text += ". The model does not fit: try --device cpu, fewer epochs, or a smaller model."
    return text


class InspectorApp(DataRows, PreparedReplays, LessonExtras, Bursts, App[int]):
    """causallm-inspect: which tokens a causal LM is trained on, and what it learns."""

    CSS_PATH = "inspector.tcss"
    TITLE = "causallm-inspect"
    COMMANDS = App.COMMANDS | {InspectorCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", id="help", tooltip="Explain the part in focus"),
        Binding("question_mark", "help", "Help", show=False, id="help-alt"),
        Binding("n", "next_lesson", "Next", id="lesson-next", tooltip="Next lesson"),
        Binding("p", "previous_lesson", "Prev", id="lesson-previous", tooltip="Previous lesson"),
        Binding("ctrl+right", "next_lesson", "Next lesson", show=False, id="lesson-next-alt"),
        Binding("ctrl+left", "previous_lesson", "Previous lesson", show=False, id="lesson-previous-alt"),
        Binding("f2", "view('labels')", "Labels", id="view-labels"),
        Binding("f3", "view('training')", "Training", id="view-training"),
        Binding("f4", "view('predictions')", "Predictions", id="view-predictions"),
    ]

    loaded: var[Any] = var(None)
    lesson_index: var[int] = var(0, init=False)
    training: var[bool] = var(False, init=False)

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "auto",
        examples: Sequence[Example | str] | None = None,
        template: ChatTemplate | None = None,
        trust_remote_code: bool = False,
        data_name: str | None = None,
        epochs: int = DEFAULT_EPOCHS,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        seed: int = DEFAULT_SEED,
        lessons: list[Lesson] | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        runs: str | None = None,
        data_problems: Sequence[Any] = (),
        data_options: dict[str, Any] | None = None,
        train_rows: int = TRAIN_ROWS,
    ) -> None:
        super().__init__()
        self._init_replays()
        # The runs selector's first value: "live" or a replay speed. None: replay as recorded
        # where prepared runs are stored for the model, else live (said once it is loaded).
        self.runs_chosen = runs is not None
        self.runs_source = runs or "1"
        self.model_spec = model
        self.special_tokens = {"bos_token": bos_token, "eos_token": eos_token}
        self.device = device
        self.template = template or ARTICLE_TEMPLATE
        self.examples = [
            e if isinstance(e, Example) else Example(e, i + 1, "given")
            for i, e in enumerate(examples or article_examples())
        ]
        self.trust_remote_code = trust_remote_code
        self.data_name = data_name
        # --data: the rows that are not examples (found while reading), how to read the file
        # again for the data report, and how many examples the bursts train on.
        self.data_problems = list(data_problems)
        self.data_options = data_options
        self.train_rows = train_rows if data_name else len(self.examples)
        self._formatted_by_text: dict[str, Any] = {}
        self.train_examples: list[Example] = []  # the examples the bursts train on, once formatted
        self.extra_examples: dict[str, Example] = {}  # data rows read on demand (past the rows kept)
        self.burst_defaults = (epochs, learning_rate, seed)
        self.lesson_error: str | None = None
        if lessons is None:
            try:
                lessons = load_lessons()
            except InspectorError as exc:
                lessons, self.lesson_error = [], str(exc)
        self.lessons = lessons
        self.formatted: list[Any] = []
        self.load_error: str | None = None
        self.data_error: str | None = None
        self.errors: list[str] = []  # every error shown, newest last
        self.sessions: dict[str, Any] = {}
        self.training_strategy: str | None = None  # set by the train worker while a burst runs
        self._stop = threading.Event()
        self._stop_demo = threading.Event()  # set on quit: a training demo ends after its current step
        self._base_lock = threading.Lock()  # the untrained model: read by labels, predictions, copies
        self._session_locks = {s: threading.Lock() for s in STRATEGIES}
        # HF trainers, one at a time (see `one_trainer`); always taken before the other locks.
        self._trainer_lock = threading.Lock()
        self._prediction_cache: dict[tuple[Any, ...], list[Any]] = {}

    @contextmanager
    def one_trainer(self, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        """A turn to make or run HF trainers, in a worker; `waiting` is called first if it must wait.

        Making a Trainer or an SFTTrainer (their TrainingArguments, in fact) resets accelerate's
        process-wide AcceleratorState, which a training loop reads at every step: a trainer made
        during a burst failed it. A burst, TRL's labels and the demos that train take turns;
        and a turn puts that state back if a refused trainer left it reset.
        """
        from inspector.core.labels.trl_bridge import accelerate_state_kept

        if waiting is not None and self._trainer_lock.locked():
            waiting()
        with self._trainer_lock, accelerate_state_kept():
            yield

    # --- screens ---------------------------------------------------------------------------

    def get_default_screen(self) -> MainScreen:
        texts = [e.text for e in self.examples]
        if self.data_name:
            choices = [(example_label(e.row, e.text, self.template), e.text) for e in self.examples[: self.train_rows]]
        else:
            holdout = article_text(HOLDOUT_WORD, HOLDOUT_ANSWER, self.template)
            choices = [(f"held-out · {HOLDOUT_WORD} → {HOLDOUT_ANSWER}", holdout)]
            choices += [(f"training {example_label(i + 1, t, self.template)}", t) for i, t in enumerate(texts)]
        return MainScreen(
            self.lessons,
            texts,
            self.template,
            choices,
            self.burst_defaults,
            self.runs_source,
            rows=[e.row for e in self.examples] if self.data_name else None,
            data_source=self.data_name and Path(self.data_name).name,
        )

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0] if self.screen_stack else self.screen
        assert isinstance(screen, MainScreen)
        return screen

    def on_mount(self) -> None:
        self.call_after_refresh(lambda: self._check_size(self.size))
        self.sub_title = f"loading {self.model_spec or 'the embedded Gemma 3 270M'}…"
        if self.lesson_error:
            self.show_error("The lessons could not be read", self.lesson_error)
        # The model loads once the main screen is composed (see MainScreen.on_mount),
        # so that every message of the load finds its widgets.

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size)

    def _check_size(self, size: Any) -> None:
        """Cover the app with a notice while the terminal is too small for its layout."""
        from inspector.screens.too_small import TooSmallScreen, too_small

        showing = isinstance(self.screen, TooSmallScreen)
        if too_small(size):
            if showing:
                self.screen.update_size(size)
            else:
                self.push_screen(TooSmallScreen(size))
        elif showing:
            self.pop_screen()

    def on_unmount(self) -> None:
        self._stop.set()  # a running burst ends after its current step, so the process can exit
        self._stop_demo.set()
        self._drop_sessions()

    # --- lessons, views, strategies --------------------------------------------------------

    def goto_lesson(self, index: int) -> None:
        if self.lessons:
            self.lesson_index = index % len(self.lessons)

    def watch_lesson_index(self, index: int) -> None:
        self.main.show_lesson(index)

    def action_next_lesson(self) -> None:
        if self.lessons and self.lesson_index < len(self.lessons) - 1:
            self.lesson_index += 1
        elif self.lessons:
            self.notify("This is the last lesson.", timeout=2)

    def action_previous_lesson(self) -> None:
        if self.lesson_index > 0:
            self.lesson_index -= 1

    def action_view(self, view: str) -> None:
        self.show_view(view)

    def show_view(self, view: str) -> None:
        self.main.show_view(view)

    def set_strategy(self, strategy: str) -> None:
        self.main.show_view("labels")
        self.main.labels_view.set_strategy(strategy)

    def action_command_palette(self) -> None:
        """Ctrl+P: Textual's palette, made safe against keys typed fast (see screens/palette.py)."""
        from textual.command import CommandPalette

        from inspector.screens.palette import SafeCommandPalette

        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(SafeCommandPalette(id="--command-palette"))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        view = self.main.current_view_widget if self.screen is self.main else None
        tok = self.loaded.tokenizer if self.loaded is not None else None
        tokens = {"bos": tok.bos_token, "eos": tok.eos_token} if tok is not None else None
        self.push_screen(HelpScreen(help_for(self.focused or self.screen, view, tokens)))

    # --- screenshots -----------------------------------------------------------------------

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

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        text = _readable(event.worker.error)
        group = event.worker.group
        if group == "load":
            self.load_error = text
            self.sub_title = "no model loaded"
            self.main.model_failed(text)
            self.show_error("The model could not be loaded", text)
        elif group == "train":
            self.training = False
            self.training_strategy = None
            self.main.training_view.failed()
            self.main.predictions_view.invalidate()
            self.show_error("Training failed", text)
        elif group == "labels":
            self.show_error("The labels could not be made", text)
        elif group == "data-check":
            self.data_check_failed(text)
            self.show_error("The data could not be checked", text)
        elif group in ("demo", "demo-run"):
            self.main.demo_panel.failed(None, text)
            self.show_error("The lesson's demo failed", text)
        else:
            self.show_error("Something went wrong", text)

    # --- model loading ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        from inspector.core.data.examples import format_leniently
        from inspector.core.models import load_model

        loaded = load_model(
            self.model_spec,
            device=self.device,
            trust_remote_code=self.trust_remote_code,
            progress=lambda text: self.post_message(ModelLoadProgressed(text)),
            **self.special_tokens,
        )
        from inspector.core.runs.store import stored_runs_of

        pairs, problems = format_leniently(self.examples, loaded.tokenizer, self.template, loaded.name)
        self._formatted_by_text = {ex.text: fe for ex, fe in pairs}
        self.train_examples = [ex for ex, _ in pairs[: self.train_rows]]
        try:
            prepared = stored_runs_of(loaded)
        except OSError:  # an unreadable store: nothing to replay
            prepared = []
        if not pairs:  # bad data: the model is still good for the lessons
            self.post_message(ModelLoaded(loaded, [], data_error=str(problems[0]), problems=problems))
            return
        self.post_message(
            ModelLoaded(loaded, [fe for _, fe in pairs[: self.train_rows]], problems=problems, prepared=prepared)
        )

    def on_model_load_progressed(self, message: ModelLoadProgressed) -> None:
        self.main.model_progressed(message.text)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        lm = message.loaded
        self.formatted = message.formatted
        self.loaded = lm
        cache = "cached" if lm.from_cache else "converted now"
        trust = " · ⚠ trust_remote_code ON" if lm.trust_remote_code else ""
        self.sub_title = f"{short_name(lm)} · {lm.device} · {cache}{trust}"
        self.main.model_ready(lm)
        self._say_prepared(message.prepared)
        if message.data_error:
            self.data_error = message.data_error
            self.show_error("The training data has a problem", message.data_error)
        if self.data_name:
            self.data_loaded(message.problems)
        if lm.trust_remote_code:
            self.notify(
                "trust_remote_code is ON: this model's own Python code was allowed to run.",
                title="Warning",
                severity="warning",
                timeout=10,
            )

    def _say_prepared(self, strategies: list[str]) -> None:
        """The runs selector offers prepared runs only where some are stored for this model."""
        view = self.main.training_view
        if strategies:
            names = ", ".join(sorted(set(strategies)))
            view.set_runs_note(f"prepared for this model: {names}")
            return
        asked = self.runs_chosen and view.read_source() != "live"
        view.set_source("live")
        view.set_runs_note("none prepared for this model: bursts train live ([b]causallm-inspect prepare[/b])")
        if asked:
            self.notify(
                f"--replay-speed {self.runs_source}: no run is prepared for this model, so bursts train live. "
                "Run causallm-inspect prepare first to replay on stage.",
                title="Prepared runs",
                severity="warning",
                timeout=8,
            )

    # --- labels ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="labels", exit_on_error=False)
    def compute_labels(self, text: str, target: Widget) -> None:
        """copy and mask at once (the tokenizer only), then trl (TRL makes an SFTTrainer)."""
        from inspector.core.labels.strategies import label_examples

        lm = self.loaded
        tok = lm.tokenizer
        try:
            fe = self.formatted_for(text)
            found = {s: label_examples(s, [fe], tok, max_length=lm.max_length)[0] for s in ("copy", "mask")}
        except InspectorError as exc:
            target.post_message(LabelsComputed(text, {}, error=str(exc)))
            return
        target.post_message(LabelsComputed(text, dict(found), pending=("trl",)))
        if get_current_worker().is_cancelled:
            return
        try:
            # TRL makes an SFTTrainer around the untrained model: after a running burst.
            with self.one_trainer(), self._base_lock:
                found["trl"] = label_examples("trl", [fe], tok, lm.model, max_length=lm.max_length)[0]
            target.post_message(LabelsComputed(text, found))
        except InspectorError as exc:
            target.post_message(LabelsComputed(text, found, error=f"trl: {exc}"))

    # --- predictions -----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="predict", exit_on_error=False)
    def compute_predictions(self, text: str, target: Widget) -> None:
        """Teacher-forced rows of the untrained model and of every trained strategy."""
        from inspector.core.training.predictions import prediction_input, teacher_forced

        lm = self.loaded
        tok = lm.tokenizer
        ids, answer = prediction_input(self.formatted_for(text), tok, lm.max_length)
        rows: dict[str, Any] = {}
        notes: dict[str, str] = {}
        sources: dict[str, str] = {}
        key = ("untrained", text)
        if key not in self._prediction_cache:
            with self._base_lock:
                self._prediction_cache[key] = teacher_forced(lm.model, tok, ids)
        rows["untrained"] = self._prediction_cache[key]
        for strategy in STRATEGIES:
            rows[strategy] = None
            if strategy in self.replays:
                rows[strategy], notes[strategy], sources[strategy] = self.replayed_predictions(strategy, text)
                continue
            lock = self._session_locks[strategy]
            if not lock.acquire(blocking=False):  # training right now: its row waits for the burst's end
                continue
            try:
                session = self.sessions.get(strategy)
                if session is None or session.steps_done == 0:
                    continue
                key = (strategy, id(session), session.steps_done, text)
                if key not in self._prediction_cache:
                    self._prediction_cache[key] = teacher_forced(session.model, tok, ids)
                rows[strategy] = self._prediction_cache[key]
            finally:
                lock.release()
        notes = {k: v for k, v in notes.items() if v}
        target.post_message(PredictionsComputed(text, rows, answer, notes=notes, sources=sources))

    def formatted_for(self, text: str) -> Any:
        """The formatted example behind a shown text: a data row as training formats it
        (a conversation through its chat template), else the text with the article's special tokens."""
        from inspector.core.data.chat_format import add_special_tokens

        if text in self._formatted_by_text:
            return self._formatted_by_text[text]
        tok = self.loaded.tokenizer
        if text in self.extra_examples:  # a data row read on demand: formatted as training would
            from inspector.core.data.examples import format_examples

            (fe,) = format_examples([self.extra_examples[text]], tok, self.template, self.loaded.name)
            self._formatted_by_text[text] = fe
            return fe
        return add_special_tokens(text, tok.bos_token, tok.eos_token, self.template, model_name=self.loaded.name)


WORKER_THREADS = "inspector-worker"


def run_until_quit(app: App[Any], **run_options: Any) -> int:
    """Run the app; once it has quit, end the process at once if a worker is still busy.

    A thread cannot be interrupted: the model's conversion (one to two minutes), a load or
    a training step would keep the process alive after its window closed, since asyncio
    and Python's exit both wait for them. The terminal is restored by then, bursts have
    been told to stop, and every store is crash-safe (the conversion and prepared runs are
    written to temporary names and renamed last), so a busy worker is ended with the process.
    """
    import asyncio
    import os
    import sys
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix=WORKER_THREADS)
    loop.set_default_executor(executor)
    try:
        app.run(loop=loop, **run_options)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    code = app.return_code or 0
    deadline = time.monotonic() + 0.5  # idle threads take their leave at once
    for thread in threading.enumerate():
        if thread.name.startswith(WORKER_THREADS):
            thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.name.startswith(WORKER_THREADS) and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    loop.close()
    return code
