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


class NothingToLearn(InspectorError):
    """A burst refused before its first step: its labels train no token of any example."""
