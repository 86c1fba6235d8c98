"""Messages that cross widgets and screens, named in the past tense: what happened.

Workers run in threads and post these (`post_message` is thread-safe); the widget they
are posted to handles them and they bubble up to the screen and the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from inspector.core.lab import Loaded


class ModelLoadProgressed(Message):
    """A step of the model load, as `load_model` reports it."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__()

    def can_replace(self, message: Message) -> bool:
        # Only the latest step matters; a backlog of them may collapse.
        return isinstance(message, ModelLoadProgressed)


class ModelLoaded(Message):
    """The lab's model and its formatted examples are ready; `found` is what the load found
    (`inspector.core.lab.Loaded`: rows that could not be formatted, prepared runs)."""

    def __init__(self, found: Loaded) -> None:
        self.found = found
        super().__init__()


class LabelsComputed(Message):
    """Labels of one text under the strategies computed so far.

    `labelings` maps a strategy to its `LabeledExample`; `error` is a user-facing
    problem with the text (no assistant turn...); `pending` lists strategies still being
    computed (trl asks TRL, which takes a moment).
    """

    def __init__(
        self,
        text: str,
        labelings: dict[str, Any],
        error: str | None = None,
        pending: tuple[str, ...] = (),
        roles: list[str] | None = None,
        row: tuple[str, int, int] = ("all", 0, 1),
    ) -> None:
        self.text = text
        self.roles = roles  # each token's role, where a chat template rendered the text
        self.row = row  # (turn policy, which row of the text, how many rows it makes)
        self.labelings = labelings
        self.error = error
        self.pending = pending
        super().__init__()


class BurstStarted(Message):
    """A burst began; `source` is "live", or says which prepared run is being replayed."""

    NEWS = "burst-started"  # what the views hear (LabView.news)

    def __init__(self, strategy: str, epochs: int, total_steps: int, source: str = "live") -> None:
        self.strategy = strategy
        self.epochs = epochs
        self.total_steps = total_steps
        self.source = source
        super().__init__()


class TrainingStepLogged(Message):
    """One optimizer step of a burst; `log` is a `StepLog`, `done` counts steps in this burst."""

    def __init__(self, strategy: str, log: Any, done: int, elapsed: float, tokens: int) -> None:
        self.strategy = strategy
        self.log = log
        self.done = done
        self.elapsed = elapsed  # seconds since the burst's first step began
        self.tokens = tokens  # tokens run through the model so far in this burst
        super().__init__()


class EpochFinished(Message):
    """An epoch ended; `log` is an `EpochLog` with the held-out answer."""

    NEWS = "epoch"  # what the views hear (LabView.news)

    def __init__(self, strategy: str, log: Any) -> None:
        self.strategy = strategy
        self.log = log
        super().__init__()


class BurstFinished(Message):
    """A burst ended, completed or stopped; `result` is a `BurstResult`; `source` as in BurstStarted."""

    NEWS = "burst-finished"  # what the views hear (LabView.news)

    def __init__(self, strategy: str, result: Any, source: str = "live") -> None:
        self.strategy = strategy
        self.result = result
        self.source = source
        super().__init__()


class BurstRefused(Message):
    """A burst was refused before its first step: its labels train no token."""

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        super().__init__()


class TrainingIdle(Message):
    """No burst is running any more (the sequence finished, stopped or failed)."""

    NEWS = "idle"  # what the views hear (LabView.news)


class PredictionsComputed(Message):
    """Teacher-forced rows per model ("untrained", "copy", ...) for one text."""

    def __init__(
        self,
        text: str,
        rows: dict[str, Any],
        answer_positions: frozenset[int],
        notes: dict[str, str] | None = None,
        sources: dict[str, str] | None = None,
    ) -> None:
        self.text = text
        self.rows = rows  # model name -> list of PredictionRow, or None where not trained
        self.answer_positions = answer_positions  # positions whose next token is part of an answer
        self.notes = notes or {}  # model name -> why its row is empty, where the view cannot tell
        self.sources = sources or {}  # model name -> "replay, epoch 3" for rows from a prepared run
        super().__init__()


class DemoProgressed(Message):
    """A step of a lesson's demo (which variant is being timed, ...)."""

    def __init__(self, lesson_id: str, text: str) -> None:
        self.lesson_id = lesson_id
        self.text = text
        super().__init__()


class DemoComputed(Message):
    """A lesson's demo finished: its text, or the problem that stopped it."""

    def __init__(
        self, lesson_id: str, text: str = "", error: str | None = None, source: str = "live", quick: bool = False,
        seconds: float = 0.0,
    ) -> None:
        self.lesson_id = lesson_id
        self.text = text
        self.error = error
        self.source = source  # "live", or the label of the prepared run shown
        self.quick = quick  # only the quick part of a demo that trains (`DemoSpec.quick`)
        self.seconds = seconds  # how long it ran (as recorded, for a replay)
        super().__init__()


class DataCheckProgressed(Message):
    """The data report has gone through `rows` of `total` rows (None: the whole file, length unknown)."""

    def __init__(self, rows: int, total: int | None) -> None:
        self.rows = rows
        self.total = total
        super().__init__()

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DataCheckProgressed)


class DataChecked(Message):
    """The data report (`inspect_data`) over the rows the app read; `report` is a DataReport."""

    def __init__(self, report: Any) -> None:
        self.report = report
        super().__init__()


class Failed(Message):
    """Something went wrong that the user must hear of: the app shows it as an error.

    `text` is what to say; a worker's failure passes the `error` instead, and the app makes
    it readable. Views post this after clearing their own pending state.
    """

    def __init__(self, title: str, text: str | None = None, error: BaseException | None = None) -> None:
        self.title = title
        self.text = text
        self.error = error
        super().__init__()


class Told(Message):
    """A word for the user from a worker (a prepared run that is not there, ...): shown as a notification."""

    def __init__(self, text: str, title: str, severity: str = "information") -> None:
        self.text = text
        self.title = title
        self.severity = severity
        super().__init__()


class RowRead(Message):
    """A row of --data that the app had not kept was read: `example` (an Example), or why it cannot be shown."""

    def __init__(self, row: int, kind: str, example: Any = None, problem: str = "") -> None:
        self.row = row
        self.kind = kind
        self.example = example
        self.problem = problem
        super().__init__()


class TrainingStarting(Message):
    """Bursts were asked for and are being prepared (the stop key applies from now)."""


class TrainingReset(Message):
    """Every strategy is back to the untrained model (`x`)."""

    NEWS = "reset"  # what the views hear (LabView.news)


def worker_error(event: Any) -> BaseException | None:
    """The error of a worker that failed, from its `Worker.StateChanged` event; else None."""
    from textual.worker import WorkerState

    if event.state == WorkerState.ERROR and event.worker.error is not None:
        return event.worker.error
    return None


class Command(Message):
    """An action for the screen to run whatever view is on show (the command palette's entries)."""

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__()
