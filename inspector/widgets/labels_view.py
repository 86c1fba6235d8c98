"""The labels view: an example, its tokens as columns, and the labels each strategy gives them.

The text is editable and re-tokenized as you type (after a short pause); the view's worker
asks the lab for the labels (`trl` asks TRL's SFTTrainer, which takes a moment), and problems
with the text show inline. With `--data`, the problem rows of the file are listed above
(`ProblemList`), and a row past those the app kept is read when picked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.markup import escape
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import RadioButton, RadioSet, Select, Static, TextArea

from inspector.core.errors import InspectorError
from inspector.core.lab.context import lesson_text
from inspector.core.labels.strategies import differing_positions
from inspector.messages import DataChecked, Failed, LabelsComputed, RowRead, worker_error
from inspector.widgets.column_grid import ColumnGrid
from inspector.widgets.lab_view import LabView, ViewOptions
from inspector.widgets.label_function_panel import LabelFunctionPanel
from inspector.widgets.labels_parts import (
    LEGEND,
    ExampleEditor,
    StrategyBar,
    count_text,
    example_label,
    legend_text,
    waiting_text,
)
from inspector.widgets.paging import Picker
from inspector.widgets.problem_list import ProblemList
from inspector.widgets.token_details import TokenDetails
from inspector.widgets.token_grid import TokenGrid
from inspector.widgets.turns_panel import PolicyBar, TurnsMode, TurnsPanel

if TYPE_CHECKING:
    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.lab import Lab


DEBOUNCE_SECONDS = 0.3

class LabelsView(TurnsMode, LabView):
    """Everything about the labels of one example."""

    HELP = """\
## Labels view

The selected example as the model sees it: one column per token, with the label the
loss uses for each. Pick the strategy with `1`, `2`, `3` (or the buttons), the example
with the picker, or edit the text. `←`/`→` select a token and show why it is trained or
masked. With a conversation: the turn policy (which assistant turns train) and `i`, each
turn's training context beside the inference prompt.
"""

    strategy: reactive[str] = reactive("copy", init=False)

    VIEW = "labels"
    TITLE = "Labels"
    ACTIONS = frozenset({"strategy", "step", "jump"})  # with "turns" for a conversation, "part" for a split one
    stale = False  # it follows the example and the label function itself

    @classmethod
    def build(cls, lab: Lab, options: ViewOptions) -> LabelsView:
        return cls(lab, options.examples, options.template, rows=options.rows, data_source=options.data_source,
                   id=f"{cls.VIEW}-view")

    def show_lesson(self, lesson: Any) -> None:
        self.set_strategy(lesson.strategy)
        if text := lesson_text(lesson, self.lab):
            self.set_example(text)
        self.point_at_interesting_column()

    def step(self, delta: int) -> None:
        self.grid.action_move(delta)

    def jump(self, end: bool) -> None:
        self.grid.action_move_to(-1 if end else 0)

    def __init__(
        self,
        lab: Lab,
        examples: list[str],
        template: TurnMarkers,
        *,
        rows: list[int] | None = None,
        data_source: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.lab = lab
        self.reading: dict[str, Any] | None = None  # how --data was read, for the rows read on demand
        self.template = template
        # With --data: the file row of each example, and the file's name for the problem list.
        self.rows = rows if rows is not None else list(range(1, len(examples) + 1))
        self.data_source = data_source
        self.row_problems: dict[int, list[str]] = {}  # file row -> its problems, as lines
        self.choices: list[tuple[str, str]] = [
            (example_label(row, text, template), text) for row, text in zip(self.rows, examples)
        ]
        self._choice_of_row = {row: i for i, row in enumerate(self.rows)}  # lessons' texts join the picker too
        self.text = examples[0] if examples else ""
        self.labelings: dict[str, Any] = {}  # strategy -> LabeledExample
        self.custom_error: Any = None  # the user's label function failed on this text (a LabelCodeError)
        self.roles: list[str] | None = None  # each token's role, where a chat template rendered the text
        self.pending: tuple[str, ...] = ()
        self.error: str | None = None
        self._cache: dict[str, LabelsComputed] = {}
        self._timer: Timer | None = None
        self._ready = False
        self._point = False  # move the cursor to the telling column once labels arrive
        self._edited_choice: int | None = None  # the picker's entry for the text as edited
        self.part, self.parts = 0, 1  # which of the rows the turn policy makes of the text is on show
        self.turns_mode = False  # `i`: each turn's training context beside the inference prompt

    def compose(self) -> ComposeResult:
        yield StrategyBar(
            *(
                RadioButton(f"{i + 1} {self.lab.name_of(s)}", value=(s == self.strategy))
                for i, s in enumerate(self.lab.strategies)
            ),
            id="strategy-bar",
        )
        bar = PolicyBar(self.lab, id="policy-bar")
        bar.display = self.lab.turn_policy.policy != "all" or any(ex.messages for ex in self.lab.examples)
        yield bar
        yield Static("", id="trained-count")
        picker: Select[int] = Picker(
            [(label, i) for i, (label, _) in enumerate(self.choices)],
            allow_blank=False,
            compact=True,
            id="example-picker",
        )
        picker.display = len(self.choices) > 1
        yield picker
        if self.data_source is not None:
            yield ProblemList(self.data_source, self.lab, id="problem-list")
        note = Static("", id="row-problems")
        note.display = False
        yield note
        yield ExampleEditor(self.text, soft_wrap=True, compact=True, id="example-editor")
        yield Static("", id="labels-error")
        yield LabelFunctionPanel(id="label-function")
        yield TokenGrid(id="token-grid")
        yield Static(LEGEND, id="labels-legend")
        yield TokenDetails("", id="token-details")
        yield TurnsPanel(self.lab, id="turns-panel")

    def focus_main(self) -> None:
        (self.query_one(TurnsPanel) if self.turns_mode else self.grid).focus()

    @property
    def grid(self) -> TokenGrid:
        return self.query_one(TokenGrid)

    # --- inputs ----------------------------------------------------------------------------

    def model_ready(self) -> None:
        self._ready = True
        self.request_labels()

    def model_failed(self, problem: str) -> None:
        self.grid.clear("no model: see the message on the left")
        self.refresh_view()

    def set_strategy(self, strategy: str) -> None:
        self.strategy = strategy

    def set_example(self, text: str) -> None:
        """Show this text (a lesson's example); it joins the picker if it is new."""
        texts = [t for _, t in self.choices]
        if text not in texts:
            self.choices.append((example_label(len(self.choices) + 1, text, self.template), text))
            picker = self.query_one("#example-picker", Select)
            picker.set_options([(label, i) for i, (label, _) in enumerate(self.choices)])
            picker.display = True
        index = [t for _, t in self.choices].index(text)
        self.query_one("#example-picker", Select).value = index
        self._load_text(text)

    def _load_text(self, text: str) -> None:
        editor = self.query_one(ExampleEditor)
        if editor.text != text:
            editor.load_text(text)
        self.text, self.part = text, 0
        self._show_row_problems()
        self.request_labels()

    # --- problem rows (--data) -------------------------------------------------------------

    @property
    def current_row(self) -> int | None:
        """The file row of the example on show (None for an edited or a lesson's text)."""
        texts = [t for _, t in self.choices]
        if self.text in texts:
            i = texts.index(self.text)
            return next((row for row, choice in self._choice_of_row.items() if choice == i), None)
        return None

    def set_problems(self, problems: list[Any], *, final: bool, note: str = "") -> None:
        """The data's problem rows (from reading the file, then from the data report)."""
        self.row_problems = {}
        for p in problems:
            if p.row is not None:
                who = f" ({p.strategy})" if getattr(p, "strategy", None) else ""
                self.row_problems.setdefault(p.row, []).append(f"{p.kind}{who}: {p.detail}")
        if self.data_source is not None:
            self.query_one(ProblemList).show_problems(problems, final=final, note=note)
        self._show_row_problems()

    def check_data(self, reading: dict[str, Any] | None) -> None:
        """The model is loaded: run the data report over the file (`reading`: how it was read)."""
        self.reading = reading
        if reading is not None and self.data_source is not None:
            self.query_one(ProblemList).check(reading)

    def on_data_checked(self, message: DataChecked) -> None:
        message.stop()
        report = message.report
        fractions = " · ".join(f"{s} trains {t.trained_fraction:.0%} of tokens" for s, t in report.totals.items())
        note = f"{report.format_found()} · all {report.rows_read:,} rows checked · {fractions}"
        if self.reading and self.reading.get("more"):
            note += f" · the picker holds the first {len(self.lab.examples):,} rows; a later one is read when picked"
        self.set_problems(report.problems, final=True, note=note)

    def _show_row_problems(self, unreadable: str | None = None) -> None:
        note = self.query_one("#row-problems", Static)
        row = self.current_row
        lines = [unreadable] if unreadable else self.row_problems.get(row, []) if row is not None else []
        note.update("\n".join(f"⚠ row {row if row is not None else ''}: {escape(line)}" for line in lines))
        note.display = bool(lines)

    def show_row(self, row: int) -> bool:
        """Show the example of file row `row`, if it is one of the examples read."""
        if row not in self._choice_of_row:
            return False
        index = self._choice_of_row[row]
        self.query_one("#example-picker", Select).value = index
        if self.choices[index][1] != self.text:
            self._load_text(self.choices[index][1])
        self.point_at_interesting_column()
        self.grid.focus()  # arrows walk the row's tokens; `e` goes back to the list
        return True

    @on(ProblemList.Picked)
    def _problem_picked(self, event: ProblemList.Picked) -> None:
        event.stop()
        if self.show_row(event.row):
            return
        if event.kind not in ("bad-row", "mixed-format") and self.reading is not None:
            # An example the app has not read (past --limit or the first rows): read it.
            self.query_one(ProblemList).read_row(event.row, event.kind, self.reading, self.template)
            return
        self.show_unusable_row(event.row, event.kind, event.detail)

    def on_row_read(self, message: RowRead) -> None:
        message.stop()
        if message.example is None:
            self.show_unusable_row(message.row, message.kind, message.problem)
        else:
            self.add_row(message.row, message.example.text)

    def add_row(self, row: int, text: str) -> None:
        """An example read on demand joins the picker (under its row number) and shows."""
        if row not in self._choice_of_row:
            self.rows.append(row)
            self._choice_of_row[row] = len(self.choices)
            self.choices.append((example_label(row, text, self.template), text))
            picker = self.query_one("#example-picker", Select)
            picker.set_options([(label, i) for i, (label, _) in enumerate(self.choices)])
            picker.display = True
        self.show_row(row)

    def show_unusable_row(self, row: int, kind: str, detail: str) -> None:
        """A row that is not an example (it cannot be read, or is of another type): say why."""
        self.text = ""
        self.labelings = {}
        self.pending = ()
        self.error = None
        self.query_one(ExampleEditor).load_text("")
        self.grid.clear(f"row {row} cannot be shown as tokens")
        note = self.query_one("#row-problems", Static)
        note.update(f"⚠ row {row}: {escape(kind)}: {escape(detail)}")
        note.display = True

    @on(Select.Changed, "#example-picker")
    def _picked(self, event: Select.Changed) -> None:
        if isinstance(event.value, int) and 0 <= event.value < len(self.choices):
            text = self.choices[event.value][1]
            if text != self.text:
                self._load_text(text)

    @on(TextArea.Changed, "#example-editor")
    def _edited(self, event: TextArea.Changed) -> None:
        if event.text_area.text == self.text:
            return
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_SECONDS, self._retokenize)

    def _retokenize(self) -> None:
        self._timer = None
        self.text, self.part = self.query_one(ExampleEditor).text, 0
        self._show_edited_in_picker()
        self._show_row_problems()
        self.request_labels()

    def _show_edited_in_picker(self) -> None:
        """The picker names what the grid shows: an edited text has an entry of its own,
        kept up to date, so the original example is one pick away and the edit is not lost."""
        picker = self.query_one("#example-picker", Select)
        texts = [t for _, t in self.choices]
        if self.text in texts:  # edited back into one of the examples
            picker.value = texts.index(self.text)
            return
        try:
            entry = (example_label("✎ edited", self.text, self.template), self.text)
        except InspectorError:  # not a chat text (yet): the grid says what is wrong
            entry = ("✎ edited", self.text)
        if self._edited_choice is None:
            self._edited_choice = len(self.choices)
            self.choices.append(entry)
        else:
            self.choices[self._edited_choice] = entry
        picker.set_options([(label, i) for i, (label, _) in enumerate(self.choices)])
        picker.display = True
        picker.value = self._edited_choice

    @on(RadioSet.Changed, "#strategy-bar")
    def _strategy_pressed(self, event: RadioSet.Changed) -> None:
        self.strategy = self.lab.strategies[event.index]

    def watch_strategy(self, strategy: str) -> None:
        if strategy not in self.lab.strategies:  # custom without --labels-from
            self.strategy = "mask"
            return
        button = self.query_one(StrategyBar).query(RadioButton)[self.lab.strategies.index(strategy)]
        if not button.value:
            button.value = True
        self.refresh_view()

    # --- labels ----------------------------------------------------------------------------

    def request_labels(self) -> None:
        if not self._ready:
            return
        cached = self._cache.get(self.key)
        if cached is not None and not cached.pending:
            self._apply(cached)
            return
        self.pending = self.lab.strategies
        self.refresh_view()
        self._compute(self.key)


    def show_exercise(self, report: Any) -> None:
        """The exercise's check of the label function's current version, a line per example."""
        self.query_one(LabelFunctionPanel).exercise = report
        self.refresh_view()

    def label_function_changed(self) -> None:
        """The user saved their label function: its labels again, for every text (or its error shown)."""
        self._cache.clear()
        self.query_one(TurnsPanel).forget()
        if self._ready:
            self.request_labels()
        else:
            self.refresh_view()

    @work(thread=True, exclusive=True, group="labels", exit_on_error=False)
    def _compute(self, key: tuple[str, str, int]) -> None:
        """copy and mask at once (the tokenizer only), then trl (after a running burst: one trainer at a time)."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        text, policy, part = key
        first: dict[str, Any] = {}
        roles: list[str] | None = None
        row = (policy, part, 1)

        def partial(found: dict[str, Any]) -> None:
            nonlocal roles, row
            first.update(found)
            roles, row = self.lab.roles(text, policy, part), (policy, part, len(self.lab.shown_rows(text, policy)))
            self.post_message(LabelsComputed(text, dict(found), pending=("trl",), roles=roles, row=row))

        try:
            found = self.lab.labels(text, partial, cancelled=lambda: worker.is_cancelled, policy=policy, part=part)
        except InspectorError as exc:
            error = f"trl: {exc}" if first else str(exc)
            self.post_message(LabelsComputed(text, dict(first), error=error, roles=roles, row=row))
            return
        if "trl" in found:  # else cancelled: a newer text is on its way
            self.post_message(LabelsComputed(text, found, roles=roles, row=row))

    def on_worker_state_changed(self, event: Any) -> None:
        error = worker_error(event)
        if error is None or event.worker.group not in ("labels", "data-row"):
            return
        if event.worker.group == "labels":
            self.pending = ()
            self.error = "the labels could not be made: see the message"
            self.refresh_view()
            self.post_message(Failed("The labels could not be made", error=error))
        else:
            self.post_message(Failed("The row could not be read", error=error))

    def on_labels_computed(self, message: LabelsComputed) -> None:
        message.stop()
        key = (message.text, *message.row[:2])
        if not message.pending:
            self._cache[key] = message
        if key == self.key:
            self._apply(message)

    def _apply(self, message: LabelsComputed) -> None:
        from inspector.core.labels.process.code_errors import LabelCodeError

        self.labelings = {s: lab for s, lab in message.labelings.items() if not isinstance(lab, LabelCodeError)}
        errors = [lab for lab in message.labelings.values() if isinstance(lab, LabelCodeError)]
        self.custom_error = errors[0] if errors else None
        self.roles = message.roles
        self.pending = message.pending
        self.error = message.error
        self.rows_known(message.row[2])
        self.refresh_view()

    def refresh_view(self) -> None:
        grid = self.grid
        reference = self.lab.label_host.compared_with  # what yours is compared with (an exercise's own)
        lab = self.labelings.get(self.strategy)
        error = self.query_one("#labels-error", Static)
        if lab is None:
            waiting = waiting_text(self.strategy, self.custom_error is not None, self.pending, self.lab.trainer_busy,
                                   self.error, self._ready)
            if waiting is not None:
                grid.clear(waiting)
        else:
            differs: list[int] = []
            if self.strategy == "custom" and reference in self.labelings:
                differs = differing_positions(lab, self.labelings[reference])
            elif "mask" in self.labelings and "trl" in self.labelings:
                differs = differing_positions(self.labelings["mask"], self.labelings["trl"])
            grid.show(
                lab,
                differs,
                show_differs=self.strategy in ("mask", "trl", "custom"),
                differs_row=f"≠{reference}" if self.strategy == "custom" else "mask≠trl",
                roles=self.roles if self.roles is not None and len(self.roles) == len(lab.rows) else None,
            )
        if self.lab.label_host.followed is not None:
            self.query_one(LabelFunctionPanel).show_for(
                self.strategy,
                self.lab.name_of("custom"),
                self.labelings,
                error=self.custom_error,
                load_error=self.lab.label_host.load_error,
                pending="custom" in self.pending,
                reference=reference,
            )
        error.update(escape(self.error) if self.error and lab is None else "")
        error.display = bool(self.error and lab is None)
        self.query_one("#trained-count", Static).update(
            count_text(self.lab.strategies, self.strategy, self.labelings, self.pending, self.lab.name_of))
        self.query_one("#labels-legend", Static).update(legend_text(self.strategy, self.labelings, self.roles))
        self.query_one(TokenDetails).show(self.strategy, grid.cursor, self.labelings, self.roles)
        self.show_turns(lab, self.grid, self.query_one("#labels-legend"), self.query_one(TokenDetails),
                        self.query_one(ExampleEditor))
        self._apply_point()

    def point_at_interesting_column(self) -> None:
        """After a lesson opens: select where mask and trl differ, or the first trained label."""
        self._point = True
        self._apply_point()

    def _apply_point(self) -> None:
        lab = self.labelings.get(self.strategy)
        if not self._point or lab is None or (self.strategy != "copy" and "trl" in self.pending):
            return
        self._point = False
        target = 0
        if self.strategy != "copy":
            differs = self.grid.differs if self.grid.show_differs else frozenset()
            trained = [r.position for r in lab.rows if not r.masked and r.position > 0]
            target = min(differs) if differs else trained[0] if trained else 0
        self.grid.cursor = target
        self.grid.scroll_cursor_visible(center=True)

    @on(ColumnGrid.CursorMoved, "#token-grid")
    def _cursor_moved(self, event: ColumnGrid.CursorMoved) -> None:
        self.query_one(TokenDetails).show(self.strategy, event.position, self.labelings, self.roles)

