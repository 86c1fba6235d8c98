"""The batch view (F6): the micro-batches of one optimizer step as TRL's SFTTrainer builds them
from the training rows, a column per token like the labels view.

The rows: position, token, `position_ids` (restarting at 0 where a packed example starts),
label (struck and grey where -100), why it is -100 (prompt, pack boundary, padding, first
position), the source row (`▶7` where row 7's segment starts: a mark and a number, never a
colour alone; `7≠` where a trained turn of row 7 is trained in another context than the
model answers it in at inference, said in words in the summary) and the token's weight in
the step under the Trainer's normalisation. The
settings (packing strategy, max length, batch size, accumulation, world size, step) are
fields; a change recomputes the step off the UI thread (`Lab.batch_step`), the newest
request wins. `[` / `]` move through the micro-batches, their ranks and their rows.

With `--run DIR` (`Lab.recording`) it shows a run's recorded steps instead: the fields hold the
run's settings (only the step can change), a segment is a sequence found in the tokens (`sN`: a
recording holds no data rows), and a step that cannot be read is said in a notification.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.markup import escape
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from inspector.core.errors import InspectorError
from inspector.core.lessons.model import BATCH_VIEW_START
from inspector.widgets.batch_recorded import RECORDED_LEGEND, recorded_summary
from inspector.widgets.column_grid import Cell, ColumnGrid
from inspector.widgets.lab_view import LabView
from inspector.widgets.paging import Picker

if TYPE_CHECKING:
    from inspector.core.batches.step_types import MicroBatch, StepView
    from inspector.core.lab import Lab

ROWS = ("pos", "token", "position", "label", "why -100", "row", "weight")
YOURS = "yours"  # exercise 11's labels, where its starter is --labels-from (`≠` where not the collator's)
PACKINGS = (("no packing", "none"), ("bfd", "bfd"), ("bfd_split", "bfd_split"), ("wrapped", "wrapped"))
_START = {name: str(value) for name, value in BATCH_VIEW_START.items()}  # where a lesson's step starts too
FIELDS = (  # id, label, default, SFTConfig's name (None: the view's own)
    ("batch-max-length", "max length", _START["max_length"], "max_length"),
    ("batch-size", "batch size", _START["per_device_train_batch_size"], "per_device_train_batch_size"),
    ("batch-accumulation", "accumulation", _START["gradient_accumulation_steps"], "gradient_accumulation_steps"),
    ("batch-world", "world size", "1", None),
    ("batch-step", "step", "1", None),
)
DEBOUNCE = 0.4  # seconds after the last keystroke before the step is rebuilt
LEGEND = (
    "▶N: row N of the data starts here · position restarts at 0 for each packed example · "
    "struck grey labels are -100 (why: the row below) · weight: the token's share of the step's loss"
)
DIFFERS_LEGEND = " · N≠: a trained turn of row N has another context than at inference (the summary says which)"


class BatchGrid(ColumnGrid):
    """One row of a collated micro-batch, a column per token."""

    COMPONENT_CLASSES: ClassVar[set[str]] = ColumnGrid.COMPONENT_CLASSES | {
        "batch-grid--masked",
        "batch-grid--masked-label",
        "batch-grid--trained-label",
        "batch-grid--boundary",
        "batch-grid--yours-differs",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(ROWS, id=id)
        self.mb: MicroBatch | None = None
        self.batch_row = 0
        self.message = "the step is built once the model is loaded"  # BatchView.request says when it is being built
        self.yours: list[int] | None = None  # exercise 11's labels of the row on show (`--labels-from`)
        self.context_differs: frozenset[int] = frozenset()  # data rows with a trained turn whose context differs

    @property
    def rows(self) -> tuple[str, ...]:
        return (*ROWS, YOURS) if self.yours is not None else ROWS

    def show(self, mb: MicroBatch, batch_row: int, yours: list[int] | None = None) -> None:
        self.mb, self.batch_row = mb, batch_row
        self.yours = yours if yours is not None and len(yours) == len(mb.texts[batch_row]) else None
        self.set_row_names(self.rows)
        self.set_class(self.yours is not None, "with-yours")
        n = len(mb.texts[batch_row])
        self.set_widths([max(len(self._text(r, c)) for r in range(len(self.rows))) for c in range(n)])

    def differs(self) -> list[int]:
        """The columns where exercise 11's labels are not the collator's."""
        if self.yours is None or self.mb is None:
            return []
        labels = self._values("labels") or []
        return [t for t, (a, b) in enumerate(zip(self.yours, labels)) if a != b]

    def clear(self, message: str) -> None:
        self.mb = None
        self.message = message
        self.set_widths([])

    def _values(self, name: str) -> list[Any] | None:
        rows = self.mb.rows_of(name)
        return None if rows is None else rows[self.batch_row]

    def _start_of_segment(self, column: int) -> bool:
        return any(s.start == column for s in self.mb.segments[self.batch_row])

    def _text(self, row: int, column: int) -> str:
        mb, b = self.mb, self.batch_row
        name = self.rows[row]
        if name == YOURS:
            assert self.yours is not None
            mine = self.yours[column]
            return f"≠{mine}" if mine != self._values("labels")[column] else str(mine)
        if name == "pos":
            return str(column)
        if name == "token":
            return mb.texts[b][column]
        if name == "position":
            positions = self._values("position_ids")
            return "—" if positions is None else str(positions[column])
        if name == "label":
            return str(self._values("labels")[column])
        if name == "why -100":
            return mb.reasons[b][column] or ""
        if name == "row":
            k = mb.token_segment[b][column]
            if k is None:
                return ""
            source = mb.segments[b][k].row
            mark = "≠" if source in self.context_differs else ""
            text = f"s{k + 1}" if source is None else f"{source}{mark}"  # a recording's: the sequence, not a data row
            return f"▶{text}" if self._start_of_segment(column) else text
        weight = mb.weights["trainer"][b][column]
        return f"{weight:.1%}" if weight else "·"

    def cell(self, row: int, column: int) -> Cell:
        text = self._text(row, column)
        trained = self.mb.reasons[self.batch_row][column] is None
        layers: tuple[str, ...] = () if trained else ("batch-grid--masked",)
        name = self.rows[row]
        if name == "label":
            layers += ("batch-grid--trained-label",) if trained else ("batch-grid--masked-label",)
        if name == YOURS and text.startswith("≠"):
            layers += ("batch-grid--yours-differs",)
        if name in ("row", "position") and self._start_of_segment(column):
            layers += ("batch-grid--boundary",)
        return text, layers


class BatchView(LabView):
    """The micro-batches of one optimizer step, as SFTTrainer makes them (see the module's docstring)."""

    DEFAULT_CSS = """
    BatchView #batch-settings { height: 1; }
    BatchView #batch-settings Input { width: 7; }
    BatchView #batch-settings Label { padding: 0 1 0 2; }
    BatchView #batch-packing { width: 16; }
    BatchView BatchGrid { height: 10; }
    BatchView #batch-summary, BatchView #batch-legend, BatchView #batch-status { height: auto; padding: 0 1; }
    BatchView #batch-legend { color: $text-muted; }
    BatchView > BatchGrid > .batch-grid--masked { color: $text-disabled; }
    BatchView > BatchGrid > .batch-grid--masked-label { color: $text-disabled; text-style: strike dim; }
    BatchView > BatchGrid > .batch-grid--trained-label { color: $text-success; text-style: bold; }
    BatchView > BatchGrid > .batch-grid--boundary { text-style: bold reverse; }
    BatchView > BatchGrid > .batch-grid--yours-differs { color: $text-error; text-style: bold reverse; }
    BatchView BatchGrid.with-yours { height: 11; }
    """

    HELP = """\
## Batch view

The micro-batches of one optimizer step exactly as TRL's `SFTTrainer` builds them from the
training rows (its prepared dataset, its collator, its sampler), with the settings above:
packing strategy, max length, batch size per device, gradient accumulation, a simulated
world size (accelerate's own sharding: what each rank receives) and the step. Rows:
**position** is what the model gets as `position_ids` (restarting at 0 for every packed
example, `—` where the collator sends none), **label** struck and grey where it is -100,
**why -100** (prompt, pack boundary, padding, first position), **row** the data row a token
comes from (`▶N` where its segment starts), **weight** the token's share of the step's loss
as the Trainer normalises it (every trained token of the step's micro-batches and ranks
weighs 1/N). `[` / `]` move through micro-batches, ranks and rows; `←` / `→` the columns.
`causallm-inspect batch` prints the same with more detail. With exercise 11's starter as
`--labels-from`, a row **yours** gives your `packed_labels` of the row on show (padding-free
packing), `≠` where they are not the collator's; it follows every save.

With `causallm-inspect --run DIR` it shows a recording's steps instead (`record`, or
`RecorderCallback` in your own run): what the run's model received on every rank, the run's
settings in the summary, only the step to choose. A recording holds no data rows: **row** shows
`sN`, the batch row's Nth sequence (where `position_ids` start again), and **why -100** says
`not recorded` (a prompt's -100 and a collator's look the same); the weight is read off the
run's loss. `causallm-inspect batch --run DIR --config FILE` compares it with the simulation.
"""

    class Computed(Message):
        def __init__(self, request: int, view: StepView | None = None, error: str | None = None,
                     differs: dict[int, list[Any]] | None = None, turns_error: str = "") -> None:
            self.request = request
            self.view = view
            self.error = error
            self.differs = differs or {}  # data row -> its trained turns whose context differs from inference's
            self.turns_error = turns_error  # why the turns could not be compared
            super().__init__()

    class YoursComputed(Message):
        """Exercise 11's labels (or their LabelCodeError, or None) of the row at `place`."""

        def __init__(self, view: StepView, place: tuple[int, int], found: Any, version: str) -> None:
            self.view = view
            self.place = place
            self.found = found
            self.version = version  # the function's fingerprint it ran with
            super().__init__()

    VIEW = "batch"
    TITLE = "Batch"
    ACTIONS = frozenset({"batch_row"})
    GROUP = "batch"
    FAILURE = "The batch view could not be built"

    def __init__(self, lab: Lab, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lab = lab
        self.step_view: StepView | None = None
        self.index = 0  # into `places`
        self._request = 0
        self._debounce: Any = None
        self._recorded_step: int | None = None  # a recording's step on show or on its way: not read again
        # (when the model comes, or a field's first Changed ends its debounce)
        self.lesson_flags: dict[str, Any] = {}  # the open lesson's other SFTConfig settings (`batch:`)
        self.yours: dict[tuple[int, int], Any] = {}  # (micro-batch, row) -> exercise 11's labels or error
        self.differs: dict[int, list[Any]] = {}  # data row -> its trained turns in another context than at inference
        self.turns_error = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="batch-settings"):
            yield Label("packing", id="batch-packing-label")
            yield Picker(list(PACKINGS), value="bfd", allow_blank=False, compact=True, id="batch-packing")
            for field_id, label, default, _ in FIELDS:
                yield Label(label, id=f"{field_id}-label")
                yield Input(default, id=field_id, restrict=r"[0-9]*", compact=True)
        yield Static("", id="batch-summary")
        yield BatchGrid(id="batch-grid")
        yield Static(LEGEND, id="batch-legend")
        yield Static("", id="batch-status")

    def on_mount(self) -> None:
        """The fields start from the batch config's values (--config), where it sets them; with a
        recording, from its run's: only the world size and the step are on show (the run's settings
        are in the summary), and only the step can be changed."""
        if self.lab.recording is None:
            self._set_fields(self.lab.batch_defaults())
            return
        self.query_one("#batch-legend", Static).update(RECORDED_LEGEND)
        try:
            given = self.lab.recording.settings()
        except InspectorError as exc:
            self._status(str(exc))
            return
        with self.prevent(Input.Changed, Select.Changed):  # the run's values: nothing to rebuild
            self._set_fields({k: v for k, v in given.items() if k not in ("packing", "packing_strategy")}, world_size=given["world_size"])
            strategy = given["packing_strategy"] if given["packing"] else "none"
            self.query_one("#batch-packing", Select).value = strategy if strategy in dict(PACKINGS).values() else "none"
            self.query_one("#batch-step", Input).value = str(given["steps"][0] if given["steps"] else 1)
        for widget in self.query("#batch-settings Input, #batch-packing"):
            widget.disabled = widget.id != "batch-step"
            if widget.id not in ("batch-step", "batch-world"):
                widget.display = self.query_one(f"#{widget.id}-label").display = False

    def show_lesson(self, lesson: Any) -> None:
        """A lesson with `batch:` settings (packing, truncation, accumulation, world size) shows
        its step with them; its other SFTConfig settings apply while the lesson is open."""
        self.lesson_flags = {}
        if lesson.batch and self.lab.recording is None:
            flags = lesson.batch_flags  # as `lesson N` builds it
            field_names = {name for *_, name in FIELDS} | {"packing", "packing_strategy"}
            self.lesson_flags = {k: v for k, v in flags.items() if k not in field_names}
            self._set_fields(flags, world_size=lesson.batch_world_size)

    def _set_fields(self, given: dict[str, Any], world_size: int | None = None) -> None:
        for field_id, _label, _default, name in FIELDS:
            if name is not None and given.get(name) is not None:
                self.query_one(f"#{field_id}", Input).value = str(given[name])
        if world_size is not None:
            self.query_one("#batch-world", Input).value = str(world_size)
            self.query_one("#batch-step", Input).value = "1"
        if "packing" in given or "packing_strategy" in given:
            strategy = given.get("packing_strategy") or "bfd"
            self.query_one("#batch-packing", Select).value = strategy if given.get("packing", True) else "none"

    def focus_main(self) -> None:
        self.query_one(BatchGrid).focus()

    # --- settings -------------------------------------------------------------------------

    def read_settings(self) -> tuple[dict[str, Any], int, int]:
        """(SFTConfig flags, step, world size) from the fields; an InspectorError naming a bad one."""
        values: dict[str, int] = {}
        for field_id, label, _default, _name in FIELDS:
            text = self.query_one(f"#{field_id}", Input).value.strip()
            if not text or int(text) < 1:
                raise InspectorError(f"{label} must be a whole number of at least 1", f"type one in the {label} field")
            values[field_id] = int(text)
        packing = self.query_one("#batch-packing", Select).value
        flags: dict[str, Any] = dict(self.lesson_flags)
        flags.update({name: values[fid] for fid, _l, _d, name in FIELDS if name is not None})
        flags["packing"] = packing != "none"
        if packing != "none":
            flags["packing_strategy"] = packing
        return flags, values["batch-step"], values["batch-world"]

    @on(Input.Changed, "#batch-settings Input")
    @on(Select.Changed, "#batch-packing")
    def _settings_changed(self, event: Any) -> None:
        event.stop()
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE, self.request)

    # --- the step -------------------------------------------------------------------------

    def request(self) -> None:
        """Rebuild the step with the settings on show (read here, on the UI thread); a recording's
        step needs no model (its tokenizer loads on its own)."""
        recording = self.lab.recording is not None
        if not self.ready and not recording:
            return
        try:
            if recording:
                flags, world, text = {}, 0, self.query_one("#batch-step", Input).value.strip()
                if not text or int(text) < 1:
                    raise InspectorError("step must be a whole number of at least 1", "type a recorded step in the step field")
                step = int(text)
                if step == self._recorded_step:
                    return
                self._recorded_step = step
            else:
                flags, step, world = self.read_settings()
        except InspectorError as exc:
            self._status(str(exc))
            return
        self.stale = False
        self._request += 1
        if self.step_view is not None:  # what is on show until the new step comes is the old settings' step
            self.query_one("#batch-summary", Static).update("[dim]the step of the settings before (the new one is being built)[/dim]")
        else:
            self.query_one(BatchGrid).clear("the step is being built…")
        wait = " (after the demo or burst that is running: one trainer at a time)" if self.lab.trainer_busy else ""
        self._status(f"reading step {step} of {self.lab.recording.folder}…" if self.lab.recording is not None
                     else f"building TRL's SFTTrainer and its batches (no training){wait}…")
        self._compute(self._request, flags, step, world)

    @work(thread=True, exclusive=True, group="batch", exit_on_error=False)
    def _compute(self, request: int, flags: dict[str, Any], step: int, world: int) -> None:
        try:
            if self.lab.recording is not None:
                view = self.lab.recording.step(step)
            else:
                view = self.lab.batch_step(flags, step=step, world_size=world)
        except InspectorError as exc:
            self.post_message(self.Computed(request, error=str(exc)))
            return
        lab = self.lab
        examples, formatted = lab.train_examples, lab.formatted
        try:  # which rows train a turn in another context than at inference (the turn policy's rows)
            differs = lab.turn_policy.differing_turns(examples, formatted, lab.model.tokenizer)
        except InspectorError as exc:
            self.post_message(self.Computed(request, view, turns_error=f"the turns could not be compared: {exc}"))
            return
        self.post_message(self.Computed(request, view, differs=differs))

    def compute_failed(self) -> None:
        self._status("the batches could not be built: see the message")

    def on_batch_view_computed(self, message: Computed) -> None:
        message.stop()
        if message.request != self._request:
            return  # a newer request is on its way
        if message.error is not None:
            self.step_view, self._recorded_step = None, None
            self.query_one(BatchGrid).clear(message.error)
            self.query_one("#batch-summary", Static).update("")
            self._status(message.error)
            if self.lab.recording is not None:  # nothing of the step is shown: say why where it is seen
                self.app.notify(message.error, title="The recording", severity="warning", timeout=10, markup=False)
            return
        differ = (message.view.recording or {}).get("versions_differ")
        if differ and self.step_view is None:  # said once, and the record is shown as written
            self.app.notify(f"Recorded with other library versions: {', '.join(differ)}. It is shown as it was written.",
                            title="The recording", severity="warning", timeout=10, markup=False)
        self.step_view = message.view
        self.differs, self.turns_error = message.differs, message.turns_error
        self.yours = {}
        self.index = min(self.index, max(0, len(self.places) - 1))
        self._status("")
        self._draw()

    # --- exercise 11: your packed_labels beside the collator's ----------------------------

    def label_function_changed(self) -> None:
        """The exercise's file was saved: its labels of the row on show again."""
        self.yours = {}
        if self.step_view is not None:
            self._draw()

    def _ask_yours(self, place: tuple[int, int]) -> None:
        if not self.lab.label_host.labels_packed_rows or place in self.yours or self.lab.recording is not None:
            return
        self.yours[place] = None  # asked
        self._compute_yours(self.step_view, place)

    @work(thread=True, group="batch-yours", exit_on_error=False)
    def _compute_yours(self, view: StepView, place: tuple[int, int]) -> None:
        version = self._version()
        self.post_message(self.YoursComputed(view, place, self.lab.packed_row_labels(view, *place), version))

    def _version(self) -> str:
        return self.lab.label_host.version

    def on_batch_view_yours_computed(self, message: YoursComputed) -> None:
        message.stop()
        if message.view is not self.step_view or message.version != self._version():
            return  # a step or a version of the file that is not on show any more
        self.yours[message.place] = message.found
        if self.places and self.places[self.index] == message.place:
            self._draw()

    # --- moving through the step ----------------------------------------------------------

    @property
    def places(self) -> list[tuple[int, int]]:
        """(micro-batch, batch row) of every row of the step, in order."""
        if self.step_view is None:
            return []
        return [(m, b) for m, mb in enumerate(self.step_view.micro_batches) for b in range(len(mb.texts))]

    def move(self, delta: int) -> None:
        """`[` / `]`: the previous or next row of the step (micro-batch, rank, batch row)."""
        places = self.places
        if not places:
            return
        self.index = max(0, min(len(places) - 1, self.index + delta))
        self._draw()

    def _draw(self) -> None:
        from inspector.core.labels.process.code_errors import LabelCodeError

        view = self.step_view
        m, b = self.places[self.index]
        mb = view.micro_batches[m]
        self._ask_yours((m, b))
        found = self.yours.get((m, b))
        grid = self.query_one(BatchGrid)
        grid.context_differs = frozenset(self.differs)
        legend = RECORDED_LEGEND if self.lab.recording is not None else LEGEND
        self.query_one("#batch-legend", Static).update(legend + (DIFFERS_LEGEND if self.differs else ""))
        grid.show(mb, b, found if isinstance(found, list) else None)
        if isinstance(found, LabelCodeError):
            self._status(f"your {found.function} failed on this row: {found.problem_anywhere()}")
        elif isinstance(found, list):
            wrong = grid.differs()
            self._status(
                f"yours ≠ the collator's at {len(wrong)} position{'s' if len(wrong) != 1 else ''}: "
                f"{', '.join(map(str, wrong[:12]))}{' …' if len(wrong) > 12 else ''}" if wrong
                else "✓ yours: the collator's labels at every position of this row"
            )
        if view.recording is not None:
            self.query_one("#batch-summary", Static).update(recorded_summary(view, mb, b, self.index, len(self.places)))
            return
        rows = ", ".join(f"row {s.row}" for s in mb.segments[b])
        attention = "no attention_mask (padding-free)" if mb.rows_of("attention_mask") is None else "attention_mask sent"
        crosses = [s.row for s in mb.segments[b] if s.crosses]
        rows_word = "rows" if len(crosses) > 1 else "row"
        across = f" · ⚠ {rows_word} {', '.join(map(str, crosses))} can attend to the rows before" if crosses else ""
        self.query_one("#batch-summary", Static).update(
            f"step {view.step} of {view.steps_per_epoch} · micro-batch {mb.micro_step + 1} · rank {mb.rank} of "
            f"{view.world_size} · sequence {b + 1} of {len(mb.texts)} ({self.index + 1} of {len(self.places)} in the "
            f"step, [ ] to move) · {rows} · {attention}{across}{self._context_note(mb.segments[b])}\n{view.normalisation}"
        )

    def _context_note(self, segments: Any) -> str:
        """'≠ row 3: context differs from inference at turn 2 (…)' for the rows of the sequence on show."""
        lines = []
        for row in dict.fromkeys(s.row for s in segments):
            turns = self.differs.get(row, [])
            if turns:
                which = ", ".join(str(t.number) for t in turns)
                lines.append(f"≠ row {row}: context differs from inference at turn {which} ({escape(turns[0].verdict)})")
        if self.turns_error:
            lines.append(escape(self.turns_error))
        return "".join(f"\n{line}" for line in lines)

    def _status(self, text: str) -> None:
        self.query_one("#batch-status", Static).update(text)
