"""Your own label function: the `custom` strategy, loaded from `--labels-from FILE[:FUNCTION]`.

The file is Python, and only ever the one named on the command line. It never runs in this
process: `inspector.core.labels.sandbox` runs it in a child process with a time limit per call,
where a loop, `sys.exit`, a crash or a huge allocation is the user's error, not the program's
end. `LabelFunction` is this side of it; `LoadedFunction` is the function in that process.
Its function (default name `make_labels`) is called once per example, in the article's
style of `create_special_mask`, as `make_labels(example, tokenizer)` where `example` is a
fresh dict of plain lists::

    {"input_ids": [...], "attention_mask": [1, ...], "labels": [...copied from input_ids...], "text": "..."}

It returns the labels: a list of ints, or the example dict with its `labels` set (as the
article's function does). A 1-D torch tensor or numpy array of integers is accepted too and
converted; floats, bools, nested lists and `None` are refused, each with its own message.
Every label must be -100 or the token's own id (the model shifts the labels itself).

An exercise may name its own function and parameters (`load_label_function(..., params=...)`):
lesson 11's `packed_labels(example, tokenizer)` gets more fields in the example dict
(`LabelCall.extra`: `position_ids`, `seq_lengths`, `completion_mask`); lesson 13's
`token_weights(micro_batches)` is called with one step's micro-batches (`WeightsCall`) and
returns a weight per label (`LoadedFunction.check_weights` says what is wrong with a return).

A problem in the user's code is a `LabelCodeError`: an `InspectorError` that also carries the
file, the line, the message and a traceback trimmed to the user's own frames (`report()`),
since this is the one place where a traceback is the user's to read.

`LabelFunction.fingerprint` (a hash of the file's text and the function's name) changes
whenever the file does, so a strategy trained with an older version can be marked stale.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import numbers
import re
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
# The parameters a label function is called with; an exercise may name others (`token_weights(micro_batches)`).
DEFAULT_PARAMS = ("example", "tokenizer")

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
            d["kind"], d["file"], d.get("line"), d["message"], frames=[Frame(**f) for f in d.get("frames", ())],
            example=d.get("example"), function=d.get("function", DEFAULT_FUNCTION), fix=d.get("fix", ""),
            detail=d.get("detail", ""),
        )


class _FromSource:
    """What the UI calls a label function (`name`) and where it is (`file`), from its `source`."""

    source: LabelSource

    @property
    def name(self) -> str:
        return self.source.function

    @property
    def file(self) -> str:
        return str(self.source.path)


@dataclass(frozen=True)
class LoadedFunction(_FromSource):
    """The label function in the process that runs it (the label process's worker, or a bench)."""

    source: LabelSource
    func: Callable[..., Any] = field(repr=False, compare=False)
    fingerprint: str  # changes with the file's text: a strategy trained before is stale
    text: str = field(repr=False, compare=False)

    @property
    def def_line(self) -> int | None:
        code = getattr(self.func, "__code__", None)
        return code.co_firstlineno if code is not None else None

    def call(self, input_ids: Sequence[int], tokenizer: Any, *, text: str = "", attention_mask: Sequence[int] | None = None,
             example: int | None = None, extra: Mapping[str, Any] | None = None) -> list[int]:
        """The function's labels for one tokenized example, checked; a LabelCodeError otherwise.

        `extra`: more fields of the example dict (a packed row's `position_ids`, `seq_lengths`)."""
        ids = [int(i) for i in input_ids]
        mask = [1] * len(ids) if attention_mask is None else [int(m) for m in attention_mask]
        arg = {"input_ids": list(ids), "attention_mask": mask, "labels": list(ids), "text": text}
        for key, value in (extra or {}).items():
            arg.setdefault(key, copy.deepcopy(value))
        try:
            result = self.func(arg, tokenizer)
        except Exception as exc:  # the user's exception, whatever it is, is theirs to see
            raise self._exception(exc, example) from exc
        return self.check(result, ids, example=example)

    def call_weights(self, micro_batches: Sequence[Mapping[str, Any]], *, example: int | None = None) -> list[list[list[float]]]:
        """`token_weights(micro_batches)`: the weight of every label of the step, checked."""
        arg = copy.deepcopy([dict(mb) for mb in micro_batches])
        try:
            result = self.func(arg)
        except Exception as exc:  # the user's exception, whatever it is, is theirs to see
            raise self._exception(exc, example) from exc
        return self.check_weights(result, micro_batches, example=example)

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

    def check_weights(
        self, result: Any, micro_batches: Sequence[Mapping[str, Any]], *, example: int | None = None
    ) -> list[list[list[float]]]:
        """The weights of a return value: per micro-batch, per row, one finite number per label."""
        name = self.name
        fix = "return one list per micro-batch, holding one list per row with one number per label"
        outer = _as_list(result)
        if outer is None:
            raise self.wrong_return(f"{name} returned {_kind(result)}, not a list of weights", example, fix)
        if len(outer) != len(micro_batches):
            raise self.wrong_return(
                f"{name} returned {len(outer)} entries for {len(micro_batches)} micro-batches", example, fix
            )
        out = []
        for m, (got, mb) in enumerate(zip(outer, micro_batches)):
            rows = _as_list(got)
            labels = mb["labels"]
            if rows is None or len(rows) != len(labels):
                what = _kind(got) if rows is None else f"{len(rows)} rows"
                raise self.wrong_return(
                    f"{name}: micro-batch {m} has {len(labels)} rows of labels, the weights {what}", example, fix
                )
            mine = []
            for b, (row, lab_row) in enumerate(zip(rows, labels)):
                values = _as_list(row)
                if values is None or len(values) != len(lab_row):
                    what = _kind(row) if values is None else f"{len(values)} weights"
                    raise self.wrong_return(
                        f"{name}: micro-batch {m}, row {b} has {len(lab_row)} labels, the weights {what}", example, fix
                    )
                for t, v in enumerate(values):
                    if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != v or v in (float("inf"), float("-inf")):
                        raise self.wrong_return(
                            f"the weight of micro-batch {m}, row {b}, position {t} is {_kind(v)} {v!r}, not a finite number",
                            example, "give each label's weight as a float (0.0 for a label that is not scored)",
                        )
                mine.append([float(v) for v in values])
            out.append(mine)
        return out

    def _exception(self, exc: BaseException, example: int | None) -> LabelCodeError:
        frames = user_frames(exc.__traceback__, self.file, self.text)
        line = frames[-1].line if frames else self.def_line
        if isinstance(exc, MemoryError):
            return LabelCodeError(
                "memory", self.file, line, "it ran out of memory (MemoryError)", frames=frames, example=example,
                function=self.name, fix="allocate less: the label process may use a quarter of the machine's memory",
            )
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return LabelCodeError(
            "exception", self.file, line, message, frames=frames, example=example, function=self.name,
            detail=message, fix=f"fix {self.name} and save the file",
        )


@dataclass(frozen=True)
class LabelCall:
    """One call of the label function: a tokenized example and the tokenizer it is called with."""

    input_ids: Sequence[int]
    tokenizer: Any
    text: str = ""
    attention_mask: Sequence[int] | None = None
    example: int | None = None  # 1-based, for the messages
    extra: Mapping[str, Any] | None = None  # more fields of the example dict (a packed row's position_ids)

    def item(self) -> dict[str, Any]:
        """The call as the label process receives it."""
        return {
            "kind": "labels",
            "input_ids": [int(i) for i in self.input_ids],
            "attention_mask": None if self.attention_mask is None else [int(m) for m in self.attention_mask],
            "text": self.text,
            "example": self.example,
            "extra": None if self.extra is None else dict(self.extra),
        }


@dataclass(frozen=True)
class WeightsCall:
    """One call of an exercise's `token_weights(micro_batches)`: one optimizer step's micro-batches
    (dicts of plain nested lists). The tokenizer is the one the label process holds."""

    micro_batches: Sequence[Mapping[str, Any]]
    tokenizer: Any
    example: int | None = None  # 1-based: the step's number among those checked

    def item(self) -> dict[str, Any]:
        return {"kind": "weights", "micro_batches": [dict(mb) for mb in self.micro_batches], "example": self.example}


@dataclass(frozen=True)
class LabelFunction(_FromSource):
    """The user's label function, run in the label process; `name` is what the UI calls the strategy.

    Every call goes to the process as one request for all its examples (`call_many`). What the
    function printed during the last request is `printed` (a `sandbox.Printed`, or None).
    """

    source: LabelSource
    fingerprint: str  # changes with the file's text: a strategy trained before is stale
    text: str = field(repr=False, compare=False)
    def_line: int | None = field(default=None, compare=False)
    sandbox: Any = field(default=None, repr=False, compare=False)
    _last: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    params: tuple[str, ...] = DEFAULT_PARAMS  # what it is called with

    @property
    def printed(self) -> Any:
        """What the function printed during the last request (a `sandbox.Printed`), or None."""
        return self._last.get("printed")

    @property
    def printed_in_all(self) -> Any:
        """What it printed since it was loaded, its start and its end (a `sandbox.Printed`), or None."""
        return self._last.get("all")

    def call_many(
        self, calls: Sequence[LabelCall | WeightsCall], *, stop_on_error: bool = True
    ) -> list[Any]:
        """What every call returned (labels, or a WeightsCall's weights), checked, or its LabelCodeError;
        with `stop_on_error` the list ends at the first error."""
        if not calls:
            return []
        items = [c.item() for c in calls]
        load = {"file": self.file, "text": self.text, "function": self.name, "params": list(self.params)}
        results, printed = self.sandbox.call(
            self.fingerprint, load, items, [c.tokenizer for c in calls], stop_on_error
        )
        self._last["printed"] = printed
        if printed is not None:
            self._last["all"] = printed if self._last.get("all") is None else self._last["all"].then(printed)
        return [r if isinstance(r, list) else error_from(r, self.file, self.text, self.name) for r in results]

    def call(self, input_ids: Sequence[int], tokenizer: Any, *, text: str = "", attention_mask: Sequence[int] | None = None,
             example: int | None = None) -> list[int]:
        """The function's labels for one tokenized example, checked; a LabelCodeError otherwise."""
        (result,) = self.call_many([LabelCall(input_ids, tokenizer, text, attention_mask, example)])
        if isinstance(result, LabelCodeError):
            raise result
        return result

    def labeled_many(
        self, examples: Sequence[FormattedExample], tokenizer: Any, *, max_length: int | None = None,
        numbers: Sequence[int] | None = None,
    ) -> list[LabeledExample]:
        """The `custom` strategy's labels of several examples in one request; the first error is raised.

        `numbers` are the examples' 1-based numbers in the messages (default 1, 2, ...)."""
        numbers = list(numbers) if numbers is not None else list(range(1, len(examples) + 1))
        encoded = []
        for n, fe in zip(numbers, examples):
            ids, _ = encode(fe, tokenizer)
            check_length(ids, max_length, n - 1)
            encoded.append(ids)
        calls = [LabelCall(ids, tokenizer, fe.text, None, n) for n, fe, ids in zip(numbers, examples, encoded)]
        out = []
        for fe, ids, result in zip(examples, encoded, self.call_many(calls)):
            if isinstance(result, LabelCodeError):
                raise result
            out.append(LabeledExample(CUSTOM, make_rows(tokenizer, ids, result), fe))
        return out

    def labeled(
        self, fe: FormattedExample, tokenizer: Any, *, max_length: int | None = None, index: int = 0
    ) -> LabeledExample:
        """The `custom` strategy's labels of one formatted example, as the other strategies' rows."""
        return self.labeled_many([fe], tokenizer, max_length=max_length, numbers=[index + 1])[0]

    def prepare(self, tokenizer: Any) -> None:
        """Hand the tokenizer to the label process ahead of the first call (seconds for a big vocabulary)."""
        self.sandbox.prepare(tokenizer)

    def stop_others(self) -> None:
        """This version replaced the others: end their processes, whatever they are doing."""
        self.sandbox.retire(keep=[self.fingerprint])


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


def read_label_file(source: LabelSource) -> str:
    """The text of the label function's file; a LabelCodeError where it cannot be read."""
    file = str(source.path)
    try:
        return source.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelCodeError("not-found", file, None, "there is no such file", function=source.function,
                             fix="check the path given to --labels-from") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LabelCodeError("not-found", file, None, f"it cannot be read ({reason})", function=source.function,
                             fix="give a UTF-8 Python file") from None


def load_label_function(
    spec: str | LabelSource, *, sandbox: Any = None, params: Sequence[str] = DEFAULT_PARAMS
) -> LabelFunction:
    """Load the function of `FILE[:FUNCTION]`: read the file here, run it in the label process.

    Raises LabelCodeError for a file that cannot be read, a syntax error, an exception (or a
    loop, an exit, a crash) while the file runs, a missing function or one that cannot take
    (example, tokenizer). The file is read and compiled afresh every time (no bytecode cache),
    so a reload sees every save. `sandbox` is the label process (default: this program's).
    `params`: the parameters it must take (an exercise's own, e.g. `("micro_batches",)`).
    """
    from inspector.core.labels.sandbox import default_sandbox

    source = spec if isinstance(spec, LabelSource) else LabelSource.parse(spec)
    text = read_label_file(source)
    box = sandbox or default_sandbox()
    params = tuple(params)
    version = fingerprint(text, source.function if params == DEFAULT_PARAMS else f"{source.function}({','.join(params)})")
    reply = box.load(version, str(source.path), text, source.function, params)
    if reply[0] != "loaded":
        raise error_from(reply[1], str(source.path), text, source.function)
    return LabelFunction(source, version, text, reply[1]["def_line"], box, params=params)


def run_label_file(source: LabelSource, text: str, params: Sequence[str] = DEFAULT_PARAMS) -> LoadedFunction:
    """Run the file's text in this process and find its function (the label process does this).

    Raises LabelCodeError as `load_label_function` says.
    """
    path = source.path
    file = str(path)
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
            fix=(f"define def {source.function}({', '.join(params)}), or name one of "
                 f"{', '.join(found)} as FILE:FUNCTION") if found else f"define def {source.function}({', '.join(params)})",
        )
    lf = LoadedFunction(source, func, fingerprint(text, source.function), text)
    wanted = ", ".join(params)
    try:
        inspect.signature(func).bind(*[None] * len(params))
    except TypeError:
        raise LabelCodeError(
            "signature", file, lf.def_line, f"{source.function}{inspect.signature(func)} cannot be called with "
            f"({wanted})", function=source.function,
            fix=f"define it as def {source.function}({wanted})",
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


# --- a label process that was stopped or ended before it answered ---------------------------

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


def stopped_error(gone: Mapping[str, Any], file: str, text: str, function: str) -> LabelCodeError:
    """The user's error for a call whose process was stopped or ended (the sandbox's `WorkerGone.to_dict`)."""
    import signal

    frames = dump_frames(gone["dump"], file, text)
    line = frames[-1].line if frames else None
    example = gone.get("example")
    during = " while the file ran" if gone.get("while_loading") else ""
    if gone["gone"] == "replaced":
        return LabelCodeError("replaced", file, line, f"stopped{during}: a newer version of the file replaced it",
                              example=example, function=function, fix="nothing to do: the newer version is used")
    if gone["gone"] == "timeout" or gone["dump"].lstrip().startswith("Timeout"):
        return LabelCodeError(
            "timeout", file, line, f"it ran for more than {gone['timeout']:g} s{during} and was stopped",
            frames=frames, example=example, function=function,
            fix="look for a loop that never ends or a wait, fix it and save; or allow more time with --labels-timeout S",
        )
    status = gone.get("status")
    fatal = re.search(r"Fatal Python error: (.+)", gone["dump"])
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
        "crashed", file, line, what + during, frames=frames, example=example, function=function,
        fix="fix the code that brings the process down and save; the app and the command go on without it",
    )


def error_from(d: Mapping[str, Any], file: str, text: str, function: str) -> LabelCodeError:
    """The LabelCodeError the label process sent (its dict), or the one of a call it never answered."""
    return stopped_error(d, file, text, function) if "gone" in d else LabelCodeError.from_dict(d)
