"""The one exception type a user is meant to see: what was wrong and what to do about it."""

from __future__ import annotations


class InspectorError(Exception):
    """A problem caused by the user's input or environment, with the fix.

    The CLI prints it as one line and exits with code 2; the app shows it in a
    notification. Never raised for bugs: those stay ordinary exceptions.
    """

    kind: str | None = None  # the problem kind of a data report ("bad-row", ...), where it is one

    def __init__(self, problem: str, fix: str = "", *, kind: str | None = None) -> None:
        self.problem = problem.rstrip(".")
        self.fix = fix.rstrip(".")
        if kind is not None:
            self.kind = kind
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.fix:
            return f"{self.problem}."
        return f"{self.problem}. {self.fix[0].upper()}{self.fix[1:]}."

    def report(self) -> str:
        """What the CLI and the app show: this line; a subclass with more to say (the user's own
        code: where, and their frames) gives several."""
        return str(self)


def in_words(error: BaseException) -> str:
    """A user-facing text for any error a command or a view's worker meets: an InspectorError's
    own report, anything else by its type and first line (a bug of ours, or a library's)."""
    if isinstance(error, InspectorError):
        return error.report()
    text = briefly(error, 300)
    if "out of memory" in str(error).lower() or type(error).__name__ == "OutOfMemoryError":
        text += ". The model does not fit: try --device cpu, fewer epochs, or a smaller model."
    return text


def briefly(error: BaseException, limit: int) -> str:
    """An exception as its type and the first `limit` characters of its message's first line
    ("TemplateError: Conversation roles must alternate"), to quote inside a message of ours."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__


class NothingToLearn(InspectorError):
    """A burst refused before its first step: its labels train no token of any example."""
