"""What an exercise's check finds: one result per case (an example, a packed row, a step), the
positions that differ from the reference, and the report the CLI prints and the app shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from inspector.core.labels.process.code_errors import ONE_LINE_KINDS, LabelCodeError
from inspector.core.labels.process.parent import LabelFunction

SHOWN_DIFFERENCES = 3  # the first positions that differ, per example


class Checked(Protocol):
    """What a report says of the exercise it checked (a `registry.Exercise`)."""

    @property
    def lesson_id(self) -> str: ...

    @property
    def task(self) -> str: ...

    @property
    def unit(self) -> str: ...


@dataclass(frozen=True)
class Case:
    """One example a check runs: its chat text, whether it is hidden, how it is tokenized."""

    name: str
    text: str
    hidden: bool = False
    bos_added: bool = False  # tokenized by a copy of the tokenizer that puts its own bos in front
    padded: int = 0  # pad tokens (pad == eos) appended, attention_mask 0 over them; -1: as in a batch


@dataclass(frozen=True)
class Difference:
    position: int
    token: str  # visible text of the token
    expected: int | float
    got: int | float
    where: str = ""  # where it is, when not a position of one row ("micro-batch 1, row 0, position 7")

    def to_dict(self) -> dict[str, Any]:
        d = {"position": self.position, "token": self.token, "expected": self.expected, "got": self.got}
        return {**d, "where": self.where} if self.where else d

    def text(self) -> str:
        at = self.where or f"position {self.position}"
        return f"{at} {self.token!r}: expected {_value(self.expected)}, got {_value(self.got)}"


def _value(x: int | float) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class CaseResult:
    case: Case
    passed: bool
    differences: tuple[Difference, ...] = ()  # every differing position
    error: LabelCodeError | None = None
    hint: str = ""
    detail: str = ""  # one more line (a weights case: your gradient against the Trainer's)

    def line(self) -> str:
        """One line, rustlings style: ✓ or ✗, the example, and what differs."""
        if self.passed:
            return f"✓ {self.case.name}"
        if self.error is not None:
            return f"✗ {self.case.name}: {self.error.problem}"
        n = len(self.differences)
        first = "; ".join(d.text() for d in self.differences[:SHOWN_DIFFERENCES])
        more = f" (and {n - SHOWN_DIFFERENCES} more)" if n > SHOWN_DIFFERENCES else ""
        return f"✗ {self.case.name}: {n} position{'s differ' if n != 1 else ' differs'}: {first}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "example": self.case.name,
            "hidden": self.case.hidden,
            "passed": self.passed,
            "differences": [d.to_dict() for d in self.differences],
            "error": self.error.to_dict() if self.error else None,
            "hint": self.hint,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class CheckReport:
    exercise: Checked
    number: int
    function: LabelFunction
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def groups(self) -> list[list[CaseResult]]:
        """The results in order, those failing with the same error (on any example) in one group,
        placed where the first of them is; every other result a group of its own."""
        groups: list[list[CaseResult]] = []
        by_error: dict[tuple[Any, ...], list[CaseResult]] = {}
        for r in self.results:
            if r.error is None:
                groups.append([r])
                continue
            key = r.error.same_as
            if key in by_error:
                by_error[key].append(r)
            else:
                by_error[key] = [r]
                groups.append(by_error[key])
        return groups

    def group_line(self, group: Sequence[CaseResult]) -> str:
        """One line for a group: a result's own line, or an error shared by several examples, once."""
        first = group[0]
        if len(group) == 1 or first.error is None:
            return first.line()
        names = ", ".join(r.case.name for r in group)
        return f"✗ {len(group)} examples ({names}): {first.error.problem_anywhere()}"

    def group_short(self, group: Sequence[CaseResult]) -> str:
        """A group's line for a narrow panel: an error shared by several examples says the error
        first and how many examples it hit (their names are in `group_line`)."""
        first = group[0]
        if len(group) == 1 or first.error is None:
            return first.line()
        return f"✗ {len(group)} examples: {first.error.problem_anywhere()}"

    def text(self) -> str:
        lines = [f"exercise {self.number} ({self.exercise.task}): {self.function.name} in {self.function.file}"]
        for group in self.groups():
            r = group[0]
            lines.append(f"  {self.group_line(group)}")
            if r.error is not None and r.error.traceback and r.error.kind not in ONE_LINE_KINDS:
                lines.extend(f"      {x}" for x in r.error.traceback.splitlines())
            if r.error is not None and r.error.kind in ONE_LINE_KINDS and r.error.fix:
                lines.append(f"      {r.error.fix[0].upper()}{r.error.fix[1:]}.")
            if r.detail:
                lines.append(f"      {r.detail}")
            if r.hint:
                lines.append(f"      hint: {r.hint}")
        ok = sum(r.passed for r in self.results)
        verdict = "all match the reference" if self.passed else "fix the ones marked ✗ and check again"
        lines.append(f"{ok} of {len(self.results)} {self.exercise.unit} pass: {verdict}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise": self.number,
            "lesson": self.exercise.lesson_id,
            "function": self.function.name,
            "file": self.function.file,
            "fingerprint": self.function.fingerprint,
            "passed": self.passed,
            "results": [r.to_dict() for r in self.results],
        }
