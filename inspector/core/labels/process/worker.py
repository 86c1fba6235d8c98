"""The user's function where it runs: its file run, the function found, called and its return checked.

Only the label process's worker (`child`) runs this, and the bench, which times the same work
in its own process. A function is called as its `FunctionKind` says, and its return checked
by the kind's check (`KINDS`):

- LABELS and PACKED_LABELS are called once per example, in the article's style of
  `create_special_mask`, as `make_labels(example, tokenizer)` where `example` is a fresh dict
  of plain lists::

      {"input_ids": [...], "attention_mask": [1, ...], "labels": [...copied from input_ids...], "text": "..."}

  (a packed row's dict also has `position_ids`, `seq_lengths` and `completion_mask`). It returns
  the labels: a list of ints, or the example dict with its `labels` set (as the article's
  function does). A 1-D torch tensor or numpy array of integers is accepted too and converted;
  floats, bools, nested lists and `None` are refused, each with its own message. Every label
  must be -100 or the token's own id (the model shifts the labels itself).
- WEIGHTS is called with one step's micro-batches and returns a weight per label.

What the user's code raises becomes a `LabelCodeError` (`code_errors.raised_error`).
"""

from __future__ import annotations

import copy
import inspect
import numbers
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.labels.process.code_errors import LabelCodeError, raised_error
from inspector.core.labels.process.protocol import (
    ExampleItem,
    FunctionKind,
    Item,
    LabelSource,
    StepItem,
    fingerprint,
)
from inspector.core.labels.strategies import CUSTOM, IGNORE_INDEX, LabeledExample, check_length, encode, make_rows


@dataclass(frozen=True)
class LoadedFunction:
    """The user's function in the process that runs it (the label process's worker, or a bench)."""

    source: LabelSource
    func: Callable[..., Any] = field(repr=False, compare=False)
    fingerprint: str  # changes with the file's text
    text: str = field(repr=False, compare=False)
    kind: FunctionKind = FunctionKind.LABELS

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

    def answer(self, item: Item, tokenizer: Any) -> list[Any]:
        """Its checked return for one item, called as its kind says; a LabelCodeError otherwise."""
        return KINDS[self.kind](self, item, tokenizer)

    def call(
        self,
        input_ids: Sequence[int],
        tokenizer: Any,
        *,
        text: str = "",
        attention_mask: Sequence[int] | None = None,
        example: int | None = None,
        extra: Mapping[str, Any] | None = None,
        withheld: Sequence[str] = (),
    ) -> list[int]:
        """The function's labels for one tokenized example, checked; a LabelCodeError otherwise.

        `extra`: more fields of the example dict (a packed row's `position_ids`, `seq_lengths`);
        `withheld`: keys left out of it (exercise 10 gives no `attention_mask`)."""
        ids = [int(i) for i in input_ids]
        mask = [1] * len(ids) if attention_mask is None else [int(m) for m in attention_mask]
        arg = {"input_ids": list(ids), "attention_mask": mask, "labels": list(ids), "text": text}
        for key, value in (extra or {}).items():
            arg.setdefault(key, copy.deepcopy(value))
        for key in withheld:
            arg.pop(key, None)
        return check_labels(self, self._run(example, arg, tokenizer), ids, example=example)

    def call_weights(
        self, micro_batches: Sequence[Mapping[str, Any]], *, example: int | None = None
    ) -> list[list[list[float]]]:
        """`token_weights(micro_batches)`: the weight of every label of the step, checked."""
        arg = copy.deepcopy([dict(mb) for mb in micro_batches])
        return check_weights(self, self._run(example, arg), micro_batches, example=example)

    def _run(self, example: int | None, *args: Any) -> Any:
        try:
            return self.func(*args)
        except Exception as exc:  # the user's exception, whatever it is, is theirs to see
            raise raised_error(exc, self.file, self.text, self.name, example=example, line=self.def_line) from exc

    def labeled(
        self, fe: FormattedExample, tokenizer: Any, *, max_length: int | None = None, index: int = 0
    ) -> LabeledExample:
        """The `custom` strategy's labels of one formatted example, as the other strategies' rows."""
        ids, _ = encode(fe, tokenizer)
        check_length(ids, max_length, index)
        labels = self.call(ids, tokenizer, text=fe.text, example=index + 1)
        return LabeledExample(CUSTOM, make_rows(tokenizer, ids, labels), fe)

    def wrong_return(self, message: str, example: int | None, fix: str) -> LabelCodeError:
        return LabelCodeError(
            "wrong-return", self.file, self.def_line, message, example=example, function=self.name, fix=fix
        )


# --- calling by kind, and checking what came back -----------------------------------------------


def _call_example(fn: LoadedFunction, item: Item, tokenizer: Any) -> list[Any]:
    assert isinstance(item, ExampleItem), f"{fn.kind.name} is called on examples"
    return fn.call(
        item.input_ids,
        tokenizer,
        text=item.text,
        attention_mask=item.attention_mask,
        example=item.example,
        extra=item.extra,
        withheld=item.withheld,
    )


def _call_step(fn: LoadedFunction, item: Item, tokenizer: Any) -> list[Any]:
    assert isinstance(item, StepItem), f"{fn.kind.name} is called on steps"
    return fn.call_weights(item.micro_batches, example=item.example)


# How each kind of function is called, and so checked.
KINDS: dict[FunctionKind, Callable[[LoadedFunction, Item, Any], list[Any]]] = {
    FunctionKind.LABELS: _call_example,
    FunctionKind.PACKED_LABELS: _call_example,
    FunctionKind.WEIGHTS: _call_step,
}


def check_labels(fn: LoadedFunction, result: Any, ids: Sequence[int], *, example: int | None = None) -> list[int]:
    """The labels of a return value: a list of ints -100 or the token's id, as long as `ids`."""
    name = fn.name
    if result is None:
        raise fn.wrong_return(
            f"{name} returned None", example, "return the labels, or the example with example['labels'] set"
        )
    if isinstance(result, Mapping):
        if "labels" not in result:
            raise fn.wrong_return(
                f"{name} returned a dict without 'labels' (keys: {', '.join(map(str, result)) or 'none'})",
                example,
                "set example['labels'] and return the example, or return the labels themselves",
            )
        result = result["labels"]
    labels = _as_list(result)
    if labels is None:
        raise fn.wrong_return(
            f"{name} returned {_kind(result)}, not a list of labels", example, "return a list of ints, one per token"
        )
    if labels and all(isinstance(x, (list, tuple)) for x in labels):
        raise fn.wrong_return(
            f"{name} returned a list of {len(labels)} lists (a batch?), not one label per token",
            example,
            "return one flat list of ints for this one example",
        )
    if len(labels) != len(ids):
        raise fn.wrong_return(
            f"{name} returned {len(labels)} labels for {len(ids)} tokens",
            example,
            "return exactly one label per token of input_ids",
        )
    out = []
    for pos, (lab, tid) in enumerate(zip(labels, ids)):
        if isinstance(lab, bool) or not isinstance(lab, numbers.Integral):
            raise fn.wrong_return(
                f"the label at position {pos} is {_kind(lab)} {lab!r}, not an int",
                example,
                f"give -100 or the token's id ({tid})",
            )
        lab = int(lab)
        if lab != IGNORE_INDEX and lab != tid:
            raise fn.wrong_return(
                f"the label at position {pos} is {lab}: neither -100 nor the token's id {tid}",
                example,
                "keep the token's own id (the model shifts the labels itself) or mask it with -100",
            )
        out.append(lab)
    return out


def check_weights(
    fn: LoadedFunction, result: Any, micro_batches: Sequence[Mapping[str, Any]], *, example: int | None = None
) -> list[list[list[float]]]:
    """The weights of a return value: per micro-batch, per row, one finite number per label."""
    name = fn.name
    fix = "return one list per micro-batch, holding one list per row with one number per label"
    outer = _as_list(result)
    if outer is None:
        raise fn.wrong_return(f"{name} returned {_kind(result)}, not a list of weights", example, fix)
    if len(outer) != len(micro_batches):
        raise fn.wrong_return(
            f"{name} returned {len(outer)} entries for {len(micro_batches)} micro-batches", example, fix
        )
    out = []
    for m, (got, mb) in enumerate(zip(outer, micro_batches)):
        rows = _as_list(got)
        labels = mb["labels"]
        if rows is None or len(rows) != len(labels):
            what = _kind(got) if rows is None else f"{len(rows)} rows"
            raise fn.wrong_return(
                f"{name}: micro-batch {m} has {len(labels)} rows of labels, the weights {what}", example, fix
            )
        mine = []
        for b, (row, lab_row) in enumerate(zip(rows, labels)):
            values = _as_list(row)
            if values is None or len(values) != len(lab_row):
                what = _kind(row) if values is None else f"{len(values)} weights"
                raise fn.wrong_return(
                    f"{name}: micro-batch {m}, row {b} has {len(lab_row)} labels, the weights {what}", example, fix
                )
            for t, v in enumerate(values):
                if (
                    isinstance(v, bool)
                    or not isinstance(v, numbers.Real)
                    or v != v
                    or v in (float("inf"), float("-inf"))
                ):
                    raise fn.wrong_return(
                        f"the weight of micro-batch {m}, row {b}, position {t} is {_kind(v)} {v!r}, not a finite number",
                        example,
                        "give each label's weight as a float (0.0 for a label that is not scored)",
                    )
            mine.append([float(v) for v in values])
        out.append(mine)
    return out


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


# --- loading ----------------------------------------------------------------------------------


def run_label_file(source: LabelSource, text: str, kind: FunctionKind = FunctionKind.LABELS) -> LoadedFunction:
    """Run the file's text in this process and find its function, which must take `kind`'s parameters.

    Raises LabelCodeError for a syntax error, an exception while the file runs, a missing
    function or one that cannot take the parameters.
    """
    file = str(source.path)
    params = kind.params
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
        raise raised_error(exc, file, text, source.function, while_loading=True) from exc
    finally:
        sys.modules.pop(module.__name__, None)
    func = module.__dict__.get(source.function)
    if not callable(func):
        found = sorted(
            k for k, v in module.__dict__.items() if inspect.isfunction(v) and v.__module__ == module.__name__
        )
        what = "is not a function" if source.function in module.__dict__ else "is not defined"
        define = f"define {kind.signature(source.function)}"
        raise LabelCodeError(
            "missing-function",
            file,
            None,
            f"{source.function} {what} in the file",
            function=source.function,
            fix=f"{define}, or name one of {', '.join(found)} as FILE:FUNCTION" if found else define,
        )
    lf = LoadedFunction(source, func, fingerprint(text, source.function), text, kind)
    try:
        inspect.signature(func).bind(*[None] * len(params))
    except TypeError:
        raise LabelCodeError(
            "signature",
            file,
            lf.def_line,
            f"{source.function}{inspect.signature(func)} cannot be called with ({', '.join(params)})",
            function=source.function,
            fix=f"define it as {kind.signature(source.function)}",
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
        "syntax",
        file,
        line,
        f"{type(exc).__name__}: {exc.msg}",
        function=function,
        detail="\n".join(detail),
        fix="fix the line and save the file",
    )
