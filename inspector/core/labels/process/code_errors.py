"""The label process's errors: a problem in the user's code (`LabelCodeError`), its frames, and
a worker that was stopped or ended before it answered (`WorkerGone`, answered as a `Gone`).

Both sides of the process boundary build these: the worker for what the user's code raised
(`raised_error`), the parent for a worker it lost (`stopped_error`). Every error of a kind is
built here once, with its fix.

A `LabelCodeError` is an `InspectorError` that also carries the file, the line, the message and
a traceback trimmed to the user's own frames (`report()`), since this is the one place where a
traceback is the user's to read. It crosses the boundary as its `to_dict()`.
"""

from __future__ import annotations

import re
import traceback
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.errors import InspectorError
from inspector.core.labels.process.protocol import DEFAULT_FUNCTION, Gone

# What went wrong, as LabelCodeError.kind.
ERROR_KINDS = {
    "not-found": "file not found",
    "syntax": "syntax error",
    "exception": "exception",
    "missing-function": "missing function",
    "signature": "wrong signature",
    "wrong-return": "wrong return",
    "timeout": "time limit",
    "exit": "exit",
    "crashed": "crash",
    "memory": "out of memory",
    "replaced": "replaced",
}
# Kinds said in one line: the process was stopped or ended, there is no traceback to read.
ONE_LINE_KINDS = frozenset({"timeout", "exit", "crashed", "memory", "replaced"})

FIX_MEMORY = "allocate less: the label process may use a quarter of the machine's memory"
FIX_EXIT = "return the labels instead of ending the process (the app and the command go on without it)"
FIX_TIMEOUT = "look for a loop that never ends or a wait, fix it and save; or allow more time with --labels-timeout S"
FIX_CRASH = "fix the code that brings the process down and save; the app and the command go on without it"
FIX_FILE = "fix the file and save it"


@dataclass(frozen=True)
class Frame:
    """One frame of the user's code in a trimmed traceback."""

    file: str
    line: int
    function: str
    code: str  # the source line, stripped ("" when unknown)


class LabelCodeError(InspectorError):
    """A problem in the user's label code, with where it is.

    `kind` is one of ERROR_KINDS; `line` the line of the user's file the problem points at
    (for a wrong return: the function's `def`); `frames` the user's frames, outermost first;
    `example` the 1-based example the function was called on, when it was.
    """

    def __init__(
        self,
        kind: str,
        file: str,
        line: int | None,
        message: str,
        *,
        frames: Sequence[Frame] = (),
        example: int | None = None,
        function: str = DEFAULT_FUNCTION,
        fix: str = "",
        detail: str = "",
    ) -> None:
        self.kind = kind
        self.file = file
        self.line = line
        self.message = message
        self.frames = tuple(frames)
        self.example = example
        self.function = function
        self.detail = detail  # e.g. the caret lines of a syntax error
        where = f"{file}, line {line}" if line else file
        on = f" (example {example})" if example is not None else ""
        super().__init__(f"label function {function}: {ERROR_KINDS.get(kind, kind)} at {where}{on}: {message}", fix)

    @property
    def same_as(self) -> tuple[Any, ...]:
        """What makes two errors the same error, whatever example each was on. A loop stopped by
        the time limit is one error wherever in it the watchdog found it."""
        if self.kind == "timeout":
            return (self.kind, self.file, self.function, self.message)
        return (self.kind, self.file, self.line, self.message, self.traceback)

    def problem_anywhere(self) -> str:
        """The problem without the example it was on (for an error several examples share)."""
        where = f"{self.file}, line {self.line}" if self.line else self.file
        return f"label function {self.function}: {ERROR_KINDS.get(self.kind, self.kind)} at {where}: {self.message}"

    @property
    def traceback(self) -> str:
        """The trimmed traceback as Python would print it, the user's frames only."""
        lines = []
        if self.frames:
            lines.append("Traceback (your code only):")
            for f in self.frames:
                lines.append(f'  File "{f.file}", line {f.line}, in {f.function}')
                if f.code:
                    lines.append(f"    {f.code}")
        elif self.kind == "syntax":
            lines.append(f'  File "{self.file}", line {self.line}')
        if self.detail:
            lines.append(self.detail)
        return "\n".join(lines)

    def report(self) -> str:
        """Several lines for the CLI and the app's panel: what, where, the trimmed traceback, the fix.

        Where the process was stopped or ended (a time limit, an exit, a crash), one line: the
        line of code it was at, if any, is in it."""
        if self.kind in ONE_LINE_KINDS:
            code = next((f.code for f in reversed(self.frames) if f.line == self.line and f.code), "")
            at = f" [{code}]" if code else ""
            fix = f" {self.fix[0].upper()}{self.fix[1:]}." if self.fix else ""
            return f"{self.problem}{at}.{fix}"
        out = [str(self.problem_line())]
        tb = self.traceback
        if tb:
            out.append(tb)
        if self.fix:
            out.append(f"{self.fix[0].upper()}{self.fix[1:]}.")
        return "\n".join(out)

    def problem_line(self) -> str:
        return f"{self.problem}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "example": self.example,
            "function": self.function,
            "traceback": self.traceback,
            "frames": [vars(f) for f in self.frames],
            "detail": self.detail,
            "fix": self.fix,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelCodeError:
        """The error `to_dict` described (as the label process sends it)."""
        return cls(
            d["kind"],
            d["file"],
            d.get("line"),
            d["message"],
            frames=[Frame(**f) for f in d.get("frames", ())],
            example=d.get("example"),
            function=d.get("function", DEFAULT_FUNCTION),
            fix=d.get("fix", ""),
            detail=d.get("detail", ""),
        )


class ProcessExit(BaseException):
    """`os._exit` called by the user's code: the worker raises this instead, so the process lives on."""

    def __init__(self, code: Any) -> None:
        self.code = code
        super().__init__(code)


def user_frames(tb: types.TracebackType | None, file: str, text: str) -> list[Frame]:
    """The frames of a traceback that are in the user's file, with their source lines."""
    lines = text.splitlines()
    out = []
    for fs in traceback.extract_tb(tb):
        if fs.filename != file:
            continue
        n = fs.lineno or 0
        code = lines[n - 1].strip() if 0 < n <= len(lines) else (fs.line or "")
        out.append(Frame(file, n, fs.name, code))
    return out


def raised_error(
    exc: BaseException,
    file: str,
    text: str,
    function: str,
    *,
    example: int | None = None,
    line: int | None = None,
    while_loading: bool = False,
) -> LabelCodeError:
    """The user's error for what their code raised: an exception, an exit (`sys.exit`, `os._exit`)
    or a MemoryError, while the file ran or in a call on `example`. `line`: where it points when
    none of the user's frames is in the traceback (a call's: the function's `def`)."""
    frames = user_frames(exc.__traceback__, file, text)
    line = frames[-1].line if frames else line
    if isinstance(exc, (SystemExit, ProcessExit)):
        call = "os._exit" if isinstance(exc, ProcessExit) else "sys.exit"
        code = exc.code if exc.code is not None else ""
        where = " while the file ran" if while_loading else ""
        said = f"it called {call}({code!r}){where}" if code != "" else f"it called {call}(){where}"
        return LabelCodeError("exit", file, line, said, frames=frames, example=example, function=function, fix=FIX_EXIT)
    if isinstance(exc, MemoryError):
        where = " while the file ran" if while_loading else ""
        return LabelCodeError(
            "memory",
            file,
            line,
            f"it ran out of memory{where} (MemoryError)",
            frames=frames,
            example=example,
            function=function,
            fix=FIX_MEMORY,
        )
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if while_loading:
        return LabelCodeError(
            "exception",
            file,
            line,
            f"{message} (while the file ran)",
            frames=frames,
            function=function,
            detail=message,
            fix=FIX_FILE,
        )
    return LabelCodeError(
        "exception",
        file,
        line,
        message,
        frames=frames,
        example=example,
        function=function,
        detail=message,
        fix=f"fix {function} and save the file",
    )


# --- a worker that was stopped or ended before it answered -----------------------------------


class WorkerGone(Exception):
    """The worker ended (or was ended) before it answered; `status` says how, `dump` what it wrote."""

    def __init__(self, why: str, status: int | None, dump: str) -> None:
        self.why = why  # "timeout" (the parent's deadline), "ended", "replaced", "closed"
        self.status = status
        self.dump = dump
        super().__init__(why)

    def on(self, example: int | None, timeout: float, *, while_loading: bool = False) -> Gone:
        """This end, as the answer of the call it was on."""
        return Gone(self.why, self.status, self.dump, example, timeout, while_loading)


_FRAME = re.compile(r'^\s*File "(?P<file>.+)", line (?P<line>\d+) in (?P<function>\S+)', re.M)
_THREAD = re.compile(r"^(?:Current thread|Thread) 0x[0-9a-fA-F]+", re.M)


def dump_frames(dump: str, file: str, text: str) -> list[Frame]:
    """The user's frames in what faulthandler wrote, outermost first: those of the thread that ran
    the call (the one whose stack passes through the worker's guard), else of any thread."""
    lines = text.splitlines()
    starts = [m.start() for m in _THREAD.finditer(dump)] or [0]
    blocks = [dump[a:b] for a, b in zip(starts, [*starts[1:], len(dump)])]
    blocks.sort(key=lambda block: "in _guarded" not in block)
    for block in blocks:
        frames = []
        for m in _FRAME.finditer(block):
            if m["file"] == file:
                n = int(m["line"])
                frames.append(Frame(file, n, m["function"], lines[n - 1].strip() if 0 < n <= len(lines) else ""))
        if frames:
            return list(reversed(frames))  # faulthandler lists the most recent call first
    return []


def stopped_error(gone: Gone, file: str, text: str, function: str) -> LabelCodeError:
    """The user's error for a call whose process was stopped or ended."""
    import signal

    frames = dump_frames(gone.dump, file, text)
    line = frames[-1].line if frames else None
    example = gone.example
    during = " while the file ran" if gone.while_loading else ""
    if gone.why == "replaced":
        return LabelCodeError(
            "replaced",
            file,
            line,
            f"stopped{during}: a newer version of the file replaced it",
            example=example,
            function=function,
            fix="nothing to do: the newer version is used",
        )
    if gone.why == "timeout" or gone.dump.lstrip().startswith("Timeout"):
        return LabelCodeError(
            "timeout",
            file,
            line,
            f"it ran for more than {gone.timeout:g} s{during} and was stopped",
            frames=frames,
            example=example,
            function=function,
            fix=FIX_TIMEOUT,
        )
    status = gone.status
    fatal = re.search(r"Fatal Python error: (.+)", gone.dump)
    if fatal:
        what = f"the process running it crashed ({fatal.group(1).strip()})"
    elif status is not None and status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        what = f"the process running it was killed ({name})"
        if -status == getattr(signal, "SIGKILL", 9):
            what += ", perhaps for using too much memory"
    elif status is not None:
        what = f"the process running it ended (exit code {status})"
    else:
        what = "the process running it ended"
    return LabelCodeError(
        "crashed", file, line, what + during, frames=frames, example=example, function=function, fix=FIX_CRASH
    )


def error_from(failure: Mapping[str, Any] | Gone, file: str, text: str, function: str) -> LabelCodeError:
    """The LabelCodeError the label process sent (its dict), or the one of a call it never answered."""
    if isinstance(failure, Gone):
        return stopped_error(failure, file, text, function)
    return LabelCodeError.from_dict(failure)
