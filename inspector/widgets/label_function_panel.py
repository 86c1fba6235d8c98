"""The user's label function (`--labels-from`) in the labels view: how its labels differ from a
reference strategy, or the error of their code, with their file, line and frames.

The labels view shows it above the token columns while the custom strategy is on show, or
whenever the function's file fails to load (the app keeps the last good version meanwhile).
"""

from __future__ import annotations

from typing import Any

from textual.markup import escape
from textual.widgets import Static

from inspector.core.labels.strategies import differing_positions

REFERENCE = "mask"  # the strategy the user's labels are compared with, unless an exercise says another
SHOWN_FAILURES = 3  # an exercise's failing examples listed here (the CLI's check lists every one)


def _positions(positions: list[int], limit: int = 12) -> str:
    shown = ", ".join(map(str, positions[:limit]))
    return shown + (f" … (+{len(positions) - limit})" if len(positions) > limit else "")


class LabelFunctionPanel(Static):
    """What the user's label function did with the example on show (see the module's docstring)."""

    HELP = """\
## Your label function

The labels your function (`--labels-from FILE[:FUNCTION]`) gives the example on show,
compared with the `mask` strategy (with `trl` for exercise 8's file, `copy` for exercise
10's): the columns where they differ are marked `≠` in the grid and counted here. Save the file and the columns follow within a second. An error in your
code shows here with your file, line and the frames of your code; the app keeps using the
last version that worked. Your code runs in a process of its own, started by this app: a loop,
an exit or a crash in it stops that process, never the app.

A starter file of `causallm-inspect exercise N` is checked on every save, a line per failing
example. Exercises 11 (`packed_labels`) and 13 (`token_weights`) are not label strategies:
they are checked against TRL's trainer on the model, and a notification says the result
wherever you are (the batch view of lessons 11 and 13). Exercise 15 (`final_answer_labels`) is
not one either: it is checked on conversations with tool calls that its check renders.
"""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=True)
        self.display = False
        self.differs: list[int] = []
        self.exercise: Any = None  # the exercise's CheckReport, where the file is one

    def show_for(
        self,
        strategy: str,
        name: str,
        labelings: dict[str, Any],
        error: Any = None,
        load_error: Any = None,
        pending: bool = False,
        reference: str = REFERENCE,
    ) -> None:
        """Update for the strategy on show; `error`: the function failed on this text;
        `load_error`: the file's latest version does not load; `reference`: the strategy compared with."""
        self.differs = []
        lines: list[str] = []
        if load_error is not None:
            lines.append("[b]✗ your latest save does not load[/b] (still using the last version that did):")
            lines.append(escape(load_error.report()))
        if strategy == "custom":
            custom, theirs = labelings.get("custom"), labelings.get(reference)
            if error is not None:
                lines.append(f"[b]✗ {escape(name)} failed on this example:[/b]")
                lines.append(escape(error.report()))
            elif pending or custom is None or theirs is None:
                lines.append(f"{escape(name)}: running your function…")
            else:
                self.differs = differing_positions(custom, theirs)
                n = len(self.differs)
                if n:
                    lines.append(
                        f"≠ {escape(name)} differs from {reference} at {n} position{'s' if n > 1 else ''}: "
                        f"{_positions(self.differs)}"
                    )
                else:
                    lines.append(f"✓ {escape(name)} gives the labels of {reference} at every position")
        report = self.exercise
        if report is not None:
            ok = sum(r.passed for r in report.results)
            verdict = "all pass ✓" if report.passed else "fix the ones marked ✗ and save again"
            lines.append(f"[b]exercise {report.number}[/b]: {ok} of {len(report.results)} {report.exercise.unit} pass · {verdict}")
            failed = [g for g in report.groups() if not g[0].passed]
            for group in failed[:SHOWN_FAILURES]:
                line = report.group_short(group)
                lines.append(escape(f"  {line if len(line) <= 110 else line[:109] + '…'}"))
            if len(failed) > SHOWN_FAILURES:
                lines.append(f"  … and {len(failed) - SHOWN_FAILURES} more ✗ (causallm-inspect exercise {report.number} --check FILE lists all)")
        self.update("\n".join(lines))
        self.display = bool(lines)
