"""The problem rows of the user's data (`--data`), listed by row number; Enter jumps to one.

The rows that cannot be read show at once (the app finds them while reading the file);
the rest (no trained token, an eos never trained, a template not found, truncation) come
from the data report (the same one `causallm-inspect inspect-data` prints), which the list's
worker asks the Lab for once the model is loaded (`check`); the problems' words are the
report's too, through the Lab (a view asks the Lab, never the reports).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from inspector.messages import DataChecked, DataCheckProgressed, Failed, RowRead, worker_error
from inspector.widgets.paging import LaidOutPaging

if TYPE_CHECKING:
    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.lab import Lab


class ProblemList(LaidOutPaging):
    """One line per problem: where, what, why; selecting a line shows that row."""

    HELP = """\
## Problem rows

The rows of your data that train wrongly or not at all, by row number (lines of a JSONL
file, rows of a table), with the reason: a row that cannot be read or fits none of TRL's
dataset types, a row of another type than the rest, a template not found, a chat template
made for another model family (its turn markers are not tokens of this model: listed under
all rows), every label -100, an answer whose closing eos is never trained, truncation into
an answer. `↑`/`↓` move, `Enter` shows the row in the grid above (a row that cannot be read
shows why). The same report in the terminal is `causallm-inspect inspect-data FILE`. `e`,
from any view, comes back to this list.
"""

    class Picked(Message):
        """A problem line was chosen: show `row` (a file row number)."""

        def __init__(self, row: int, kind: str, detail: str) -> None:
            self.row = row
            self.kind = kind
            self.detail = detail
            super().__init__()

    def __init__(self, source: str, lab: Lab, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self.source = source
        self.lab = lab
        self.problems: list[Any] = []  # Problem-like: row, kind, detail, strategy
        self.border_title = f"problem rows · {source}"
        self.state = "reading"

    def show_problems(self, problems: list[Any], *, final: bool, note: str = "") -> None:
        """List these problems; `final` once the data report has covered every row read."""
        self.problems = [p for p in problems if p.row is not None] + [p for p in problems if p.row is None]
        self.state = "done" if final else "checking"
        self.clear_options()
        for i, p in enumerate(self.problems):
            where = f"row {p.row}" if p.row is not None else "all rows"
            who = f" ({p.strategy})" if getattr(p, "strategy", None) else ""
            self.add_option(Option(f"{where} · {p.kind}{who} · {p.detail}", id=str(i)))
        if not self.problems:
            self.add_option(
                Option(
                    "no problem found in the rows read" if final else "checking the rows for problems…",
                    disabled=True,
                )
            )
        counts = Counter(p.kind for p in self.problems)
        summary = ", ".join(f"{k} {n}" for k, n in counts.items())
        rows = len({p.row for p in self.problems if p.row is not None})
        head = f"problem rows · {rows} in {self.source}" + (f" ({summary})" if summary else "")
        self.border_title = head if final else f"{head} · checking…"
        self.border_subtitle = note

    @work(thread=True, exclusive=True, group="data-check", exit_on_error=False)
    def check(self, reading: dict[str, Any]) -> None:
        """The data report over the rows of the file (`reading`: how the app read it, `path` included).

        Its result bubbles up (`DataChecked`) to the labels view, which lists it here.
        """
        total = reading.get("limit")  # None: the whole file
        report = self.lab.check_data(reading, progress=lambda n: self.post_message(DataCheckProgressed(n, total)))
        self.post_message(DataChecked(report))

    @work(thread=True, group="data-row", exit_on_error=False)
    def read_row(self, row: int, kind: str, reading: dict[str, Any], template: TurnMarkers) -> None:
        """Read one row of the file that the app did not keep (streaming up to it); the labels view
        hears it (`RowRead`) and shows it."""
        from inspector.core.data.examples import RowProblem, read_row

        options = {k: v for k, v in reading.items() if k not in ("path", "more", "limit")}
        item = read_row(reading["path"], row, template, **options)
        if item is None or isinstance(item, RowProblem):
            why = item.problem if isinstance(item, RowProblem) else f"the file has no row {row} any more"
            self.post_message(RowRead(row, kind, problem=why))
            return
        self.lab.add_example(item)
        self.post_message(RowRead(row, kind, item))

    def on_data_check_progressed(self, message: DataCheckProgressed) -> None:
        message.stop()
        self.progressed(message.rows, message.total)

    def on_worker_state_changed(self, event: Any) -> None:
        error = worker_error(event)
        if error is not None and event.worker.group == "data-check":
            self.failed("see the message")
            self.post_message(Failed("The data could not be checked", error=error))

    def progressed(self, rows: int, total: int | None) -> None:
        if self.state != "done":
            self.border_subtitle = f"checking row {rows:,}" + (f" of {total:,}…" if total else "…")

    def failed(self, problem: str) -> None:
        self.state = "failed"
        self.border_subtitle = f"the check failed: {problem}"

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is None:
            return
        p = self.problems[int(event.option.id)]
        if p.row is not None:
            self.post_message(self.Picked(p.row, p.kind, f"{p.detail}: {self.lab.problem_words(p.kind)[1]}"))
        else:
            what, fix = self.lab.problem_words(p.kind)
            self.notify(f"{what}. {fix}.", title=p.kind, timeout=8)
