"""The app's part of `--data`: the problem rows of the user's file, listed and jumpable.

A mixin of `InspectorApp`. Rows that cannot be read are known as soon as the file is read;
rows that cannot be formatted once the tokenizer is there; and once the model is loaded a
worker runs the data report (`inspect_data`, the one `causallm-inspect inspect-data`
prints) over the same rows, which finds the rest: no trained token, an eos never trained,
truncation into an answer. The labels view lists them all; the bursts train on the first
`train_rows` examples (a small slice, said in the training view).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work

from inspector.messages import DataChecked, DataCheckProgressed

if TYPE_CHECKING:
    from inspector.core.data.chat_format import ChatTemplate
    from inspector.core.models import LoadedModel


def _rows_text(rows: list[int]) -> str:
    """'1-3, 5, 7-8' for a sorted list of row numbers."""
    parts: list[str] = []
    start = prev = None
    for r in rows:
        if start is None:
            start = prev = r
        elif r == prev + 1:  # type: ignore[operator]
            prev = r
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = r
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


class DataRows:
    """Problem rows and the training slice of `--data`, for `InspectorApp`."""

    # Provided by InspectorApp.
    data_name: str | None
    data_problems: list[Any]
    data_options: dict[str, Any] | None
    examples: list[Any]
    train_examples: list[Any]
    extra_examples: dict[str, Any]
    train_rows: int
    template: ChatTemplate
    loaded: LoadedModel

    def data_loaded(self, format_problems: list[Any]) -> None:
        """The model is loaded: list what is known so far, say what the bursts train on, check the rest."""
        known = sorted([*self.data_problems, *format_problems], key=lambda p: p.row)
        view = self.main.labels_view  # type: ignore[attr-defined]
        view.set_problems(known, final=self.data_options is None)
        rows = [ex.row for ex in self.train_examples]
        if rows:
            name = Path(self.data_name or "").name
            self.main.training_view.set_data_note(  # type: ignore[attr-defined]
                f"bursts train on rows {_rows_text(rows)} of {name}: the first {len(rows)} of "
                f"{len(self.examples):,} examples read (--train-rows N for another number)"
            )
        if self.data_options is not None:
            self.check_data()

    @work(thread=True, exclusive=True, group="data-check", exit_on_error=False)
    def check_data(self) -> None:
        from inspector.core.reports.data_report import inspect_data

        o = self.data_options
        assert o is not None
        total = o["limit"]  # None: the whole file
        report = inspect_data(
            o["path"],
            self.loaded,
            strategies=("copy", "mask"),
            template=self.template,
            chat_template=o["chat_template"],
            max_length=self.loaded.max_length,
            split=o["split"],
            limit=total,
            columns=o["columns"],
            row_format=o.get("row_format", "auto"),
            batch_size=64,
            progress=lambda n: self.post_message(DataCheckProgressed(n, total)),  # type: ignore[attr-defined]
        )
        self.post_message(DataChecked(report))  # type: ignore[attr-defined]

    def on_data_check_progressed(self, message: DataCheckProgressed) -> None:
        self.main.labels_view.problem_list_progressed(message.rows, message.total)  # type: ignore[attr-defined]

    def on_data_checked(self, message: DataChecked) -> None:
        report = message.report
        fractions = " · ".join(f"{s} trains {t.trained_fraction:.0%} of tokens" for s, t in report.totals.items())
        note = f"{report.format_found()} · all {report.rows_read:,} rows checked · {fractions}"
        if self.data_options and self.data_options.get("more"):
            note += f" · the picker holds the first {len(self.examples):,} rows; a later one is read when picked"
        self.main.labels_view.set_problems(report.problems, final=True, note=note)  # type: ignore[attr-defined]

    def on_labels_view_row_wanted(self, message: Any) -> None:
        self.fetch_row(message.row, message.kind, message.detail)

    @work(thread=True, group="data-row", exit_on_error=False)
    def fetch_row(self, row: int, kind: str, detail: str) -> None:
        """Read one row of the file that the app did not keep (streaming up to it)."""
        from inspector.core.data.examples import RowProblem, read_row

        o = self.data_options
        assert o is not None
        item = read_row(
            o["path"], row, self.template, split=o["split"], columns=o["columns"], chat_template=o["chat_template"],
            row_format=o.get("row_format", "auto"),
        )
        view = self.main.labels_view  # type: ignore[attr-defined]
        if item is None or isinstance(item, RowProblem):
            why = item.problem if isinstance(item, RowProblem) else f"the file has no row {row} any more"
            self.call_from_thread(view.show_unusable_row, row, kind, why)  # type: ignore[attr-defined]
            return
        self.extra_examples[item.text] = item
        self.call_from_thread(view.add_row, row, item.text)  # type: ignore[attr-defined]

    def data_check_failed(self, text: str) -> None:
        self.main.labels_view.problem_list_failed(text)  # type: ignore[attr-defined]
