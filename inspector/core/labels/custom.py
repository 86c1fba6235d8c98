"""Your own label function: the `custom` strategy, loaded from `--labels-from FILE[:FUNCTION]`.

The file is Python, run in this process, and only ever the one named on the command line.
Its function (default name `make_labels`) is called once per example, in the article's
style of `create_special_mask`, as `make_labels(example, tokenizer)` where `example` is a
fresh dict of plain lists::

    {"input_ids": [...], "attention_mask": [1, ...], "labels": [...copied from input_ids...], "text": "..."}

It returns the labels: a list of ints, or the example dict with its `labels` set (as the
article's function does). A 1-D torch tensor or numpy array of integers is accepted too and
converted; floats, bools, nested lists and `None` are refused, each with its own message.
Every label must be -100 or the token's own id (the model shifts the labels itself).

A problem in the user's code is a `LabelCodeError`: an `InspectorError` that also carries the
file, the line, the message and a traceback trimmed to the user's own frames (`report()`),
since this is the one place where a traceback is the user's to read.

`LabelFunction.fingerprint` (a hash of the file's text and the function's name) changes
whenever the file does, so a strategy trained with an older version can be marked stale.
"""

from __future__ import annotations

import hashlib
import inspect
import numbers
import sys
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import (
    CUSTOM,
    IGNORE_INDEX,
    LabeledExample,
    check_length,
    differing_positions,
    encode,
    make_rows,
)

DEFAULT_FUNCTION = "make_labels"

# What went wrong, as LabelCodeError.kind.
ERROR_KINDS = {
    "not-found": "file not found",
    "syntax": "syntax error",
    "exception": "exception",
    "missing-function": "missing function",
    "signature": "wrong signature",
    "wrong-return": "wrong return",
}


@dataclass(frozen=True)
class LabelSource:
    """Where the label function is: a file and the name of a function in it."""

    path: Path
    function: str = DEFAULT_FUNCTION

    @classmethod
    def parse(cls, spec: str) -> LabelSource:
        """`FILE` or `FILE:FUNCTION`; a Windows drive letter (`C:\\x.py`) is not a function name."""
        text = spec.strip()
        if not text:
            raise InspectorError("--labels-from is empty", "give a Python file, e.g. --labels-from mask.py:make_labels")
        head, sep, tail = text.rpartition(":")
        if sep and tail.isidentifier() and head and not (len(head) == 1 and head.isalpha()):
            return cls(Path(head).expanduser(), tail)
        if sep and not tail:
            raise InspectorError(
                f"--labels-from {spec}: no function name after ':'", "write FILE:FUNCTION, or FILE for make_labels"
            )
        if sep and tail and not tail.isidentifier() and not (len(head) == 1 and head.isalpha()):
            raise InspectorError(
                f"--labels-from {spec}: {tail!r} is not a Python function name", "write FILE:FUNCTION, e.g. mask.py:make_labels"
            )
        return cls(Path(text).expanduser(), DEFAULT_FUNCTION)

    def __str__(self) -> str:
        return f"{self.path}:{self.function}"


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
        """Several lines for the CLI and the app's panel: what, where, the trimmed traceback, the fix."""
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
        }


@dataclass(frozen=True)
class LabelFunction:
    """A loaded label function, ready to label examples; `name` is what the UI calls the strategy."""

    source: LabelSource
    func: Callable[..., Any] = field(repr=False, compare=False)
    fingerprint: str  # changes with the file's text: a strategy trained before is stale
    text: str = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.source.function

    @property
    def file(self) -> str:
        return str(self.source.path)

    @property
    def def_line(self) -> int | None:
        code = getattr(self.func, "__code__", None)
        return code.co_firstlineno if code is not None else None

    def call(self, input_ids: Sequence[int], tokenizer: Any, *, text: str = "", attention_mask: Sequence[int] | None = None,
             example: int | None = None) -> list[int]:
        """The function's labels for one tokenized example, checked; a LabelCodeError otherwise."""
        ids = [int(i) for i in input_ids]
        mask = [1] * len(ids) if attention_mask is None else [int(m) for m in attention_mask]
        arg = {"input_ids": list(ids), "attention_mask": mask, "labels": list(ids), "text": text}
        try:
            result = self.func(arg, tokenizer)
        except Exception as exc:  # the user's exception, whatever it is, is theirs to see
            raise self._exception(exc, example) from exc
        return self.check(result, ids, example=example)

    def labeled(
        self, fe: FormattedExample, tokenizer: Any, *, max_length: int | None = None, index: int = 0
    ) -> LabeledExample:
        """The `custom` strategy's labels of one formatted example, as the other strategies' rows."""
        ids, _ = encode(fe, tokenizer)
        check_length(ids, max_length, index)
        labels = self.call(ids, tokenizer, text=fe.text, example=index + 1)
        return LabeledExample(CUSTOM, make_rows(tokenizer, ids, labels), fe)

    # --- checks ---------------------------------------------------------------------------

    def wrong_return(self, message: str, example: int | None, fix: str) -> LabelCodeError:
        return LabelCodeError(
            "wrong-return", self.file, self.def_line, message, example=example, function=self.name, fix=fix
        )

    def check(self, result: Any, ids: Sequence[int], *, example: int | None = None) -> list[int]:
        """The labels of a return value: a list of ints -100 or the token's id, as long as `ids`."""
        name = self.name
        if result is None:
            raise self.wrong_return(
                f"{name} returned None", example, "return the labels, or the example with example['labels'] set"
            )
        if isinstance(result, Mapping):
            if "labels" not in result:
                raise self.wrong_return(
                    f"{name} returned a dict without 'labels' (keys: {', '.join(map(str, result)) or 'none'})",
                    example,
                    "set example['labels'] and return the example, or return the labels themselves",
                )
            result = result["labels"]
        labels = _as_list(result)
        if labels is None:
            raise self.wrong_return(
                f"{name} returned {_kind(result)}, not a list of labels", example, "return a list of ints, one per token"
            )
        if labels and all(isinstance(x, (list, tuple)) for x in labels):
            raise self.wrong_return(
                f"{name} returned a list of {len(labels)} lists (a batch?), not one label per token",
                example,
                "return one flat list of ints for this one example",
            )
        if len(labels) != len(ids):
            raise self.wrong_return(
                f"{name} returned {len(labels)} labels for {len(ids)} tokens",
                example,
                "return exactly one label per token of input_ids",
            )
        out = []
        for pos, (lab, tid) in enumerate(zip(labels, ids)):
            if isinstance(lab, bool) or not isinstance(lab, numbers.Integral):
                raise self.wrong_return(
                    f"the label at position {pos} is {_kind(lab)} {lab!r}, not an int",
                    example,
                    f"give -100 or the token's id ({tid})",
                )
            lab = int(lab)
            if lab != IGNORE_INDEX and lab != tid:
                raise self.wrong_return(
                    f"the label at position {pos} is {lab}: neither -100 nor the token's id {tid}",
                    example,
                    "keep the token's own id (the model shifts the labels itself) or mask it with -100",
                )
            out.append(lab)
        return out

    def _exception(self, exc: BaseException, example: int | None) -> LabelCodeError:
        frames = user_frames(exc.__traceback__, self.file, self.text)
        line = frames[-1].line if frames else self.def_line
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return LabelCodeError(
            "exception", self.file, line, message, frames=frames, example=example, function=self.name,
            detail=message, fix=f"fix {self.name} and save the file",
        )


def _as_list(value: Any) -> list[Any] | None:
    """The elements of a list, a tuple, or a torch tensor / numpy array (`tolist()`); None for anything else.

    A float or bool tensor gives floats or bools, which the element check then refuses.
    """
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist") and hasattr(value, "dtype") and hasattr(value, "shape"):
        items = value.tolist()
        return items if isinstance(items, list) else None
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a str"
    article = "an" if type(value).__name__[:1].lower() in "aeiou" else "a"
    return f"{article} {type(value).__name__}"


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


def fingerprint(text: str, function: str) -> str:
    """A short hash of the file's text and the function's name."""
    return hashlib.sha256(f"{function}\0{text}".encode()).hexdigest()[:12]


def load_label_function(spec: str | LabelSource) -> LabelFunction:
    """Load the function of `FILE[:FUNCTION]`: run the file (in this process) and find the function.

    Raises LabelCodeError for a file that cannot be read, a syntax error, an exception while
    the file runs, a missing function or one that cannot take (example, tokenizer). The file
    is read and compiled afresh every time (no bytecode cache), so a reload sees every save.
    """
    source = spec if isinstance(spec, LabelSource) else LabelSource.parse(spec)
    path = source.path
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelCodeError("not-found", file, None, "there is no such file", function=source.function,
                             fix="check the path given to --labels-from") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LabelCodeError("not-found", file, None, f"it cannot be read ({reason})", function=source.function,
                             fix="give a UTF-8 Python file") from None
    try:
        code = compile(text, file, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise _syntax_error(exc, file, text, source.function) from None
    module = types.ModuleType(f"causallm_inspect_labels_{fingerprint(text, source.function)}")
    module.__file__ = file
    # Registered while it runs, so that dataclasses and the like can find their module.
    sys.modules[module.__name__] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 (the user's own file, named on the command line)
    except Exception as exc:
        frames = user_frames(exc.__traceback__, file, text)
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise LabelCodeError(
            "exception", file, frames[-1].line if frames else None, f"{message} (while the file ran)",
            frames=frames, function=source.function, detail=message, fix="fix the file and save it",
        ) from exc
    finally:
        sys.modules.pop(module.__name__, None)
    func = module.__dict__.get(source.function)
    if not callable(func):
        found = sorted(k for k, v in module.__dict__.items() if inspect.isfunction(v) and v.__module__ == module.__name__)
        what = "is not a function" if source.function in module.__dict__ else "is not defined"
        raise LabelCodeError(
            "missing-function", file, None, f"{source.function} {what} in the file",
            function=source.function,
            fix=(f"define def {source.function}(example, tokenizer), or name one of "
                 f"{', '.join(found)} as FILE:FUNCTION") if found else f"define def {source.function}(example, tokenizer)",
        )
    lf = LabelFunction(source, func, fingerprint(text, source.function), text)
    try:
        inspect.signature(func).bind({}, None)
    except TypeError:
        raise LabelCodeError(
            "signature", file, lf.def_line, f"{source.function}{inspect.signature(func)} cannot be called with "
            "(example, tokenizer)", function=source.function,
            fix=f"define it as def {source.function}(example, tokenizer)",
        ) from None
    except ValueError:  # a builtin without a signature: let the call say
        pass
    return lf


def _syntax_error(exc: SyntaxError, file: str, text: str, function: str) -> LabelCodeError:
    line = exc.lineno
    lines = text.splitlines()
    code = lines[line - 1] if line and 0 < line <= len(lines) else (exc.text or "").rstrip("\n")
    detail = []
    if code:
        stripped = code.lstrip()
        detail.append(f"    {stripped}")
        if exc.offset:
            col = max(0, exc.offset - 1 - (len(code) - len(stripped)))
            width = max(1, (exc.end_offset or exc.offset + 1) - exc.offset) if exc.end_lineno == line else 1
            detail.append("    " + " " * col + "^" * width)
    detail.append(f"{type(exc).__name__}: {exc.msg}")
    return LabelCodeError(
        "syntax", file, line, f"{type(exc).__name__}: {exc.msg}", function=function, detail="\n".join(detail),
        fix="fix the line and save the file",
    )


# --- differences to a reference strategy -----------------------------------------------------


@dataclass(frozen=True)
class LabelDiff:
    """Where the custom labels differ from a reference strategy's, for one example."""

    reference: str
    positions: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.positions)

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "positions": list(self.positions), "count": self.count}


def diff_labels(custom: LabeledExample, reference: LabeledExample) -> LabelDiff:
    """Positions whose label differs between the custom labels and a reference strategy's (mask, copy or trl)."""
    return LabelDiff(reference.strategy, tuple(differing_positions(custom, reference)))

