"""Your own function, seen from this process: loaded from `--labels-from FILE[:FUNCTION]` and called
in the label process.

The file is Python, and only ever the one named on the command line. It never runs in this
process: `load_label_function` reads it here and has the label process (`sandbox`) run it;
`LabelFunction` is this side of the function, and each of its calls is one request for all
its examples. What a function of each kind is called with and must return is said by its
`FunctionKind` (`protocol`): the `custom` strategy's `make_labels(example, tokenizer)`, lesson
11's `packed_labels(example, tokenizer)` (`LabelCall.extra`: `position_ids`, `seq_lengths`,
`completion_mask`), lesson 13's `token_weights(micro_batches)` (`WeightsCall`).

A problem in the user's code is a `LabelCodeError` (`code_errors`). `LabelFunction.fingerprint` (a
hash of the file's text and the function's name) changes whenever the file does, so a strategy
trained with an older version can be marked stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.labels.process.code_errors import LabelCodeError, error_from
from inspector.core.labels.process.protocol import (
    ExampleItem,
    Failed,
    FunctionKind,
    LabelSource,
    Load,
    Loaded,
    Printed,
    StepItem,
    fingerprint,
)
from inspector.core.labels.strategies import CUSTOM, LabeledExample, check_length, encode, make_rows


@dataclass(frozen=True)
class LabelCall:
    """One call of a LABELS or PACKED_LABELS function: a tokenized example and the tokenizer it is called with."""

    input_ids: Sequence[int]
    tokenizer: Any
    text: str = ""
    attention_mask: Sequence[int] | None = None
    example: int | None = None  # 1-based, for the messages
    extra: Mapping[str, Any] | None = None  # more fields of the example dict (a packed row's position_ids)
    withheld: tuple[str, ...] = ()  # keys left out of the example dict (exercise 10 gives no attention_mask)

    def item(self) -> ExampleItem:
        """The call as the label process receives it (the sandbox names the tokenizer)."""
        return ExampleItem(
            [int(i) for i in self.input_ids],
            None if self.attention_mask is None else [int(m) for m in self.attention_mask],
            self.text,
            self.example,
            None if self.extra is None else dict(self.extra),
            "",
            tuple(self.withheld),
        )


@dataclass(frozen=True)
class WeightsCall:
    """One call of a WEIGHTS function (`token_weights(micro_batches)`): one optimizer step's
    micro-batches (dicts of plain nested lists). The tokenizer is the one the label process holds."""

    micro_batches: Sequence[Mapping[str, Any]]
    tokenizer: Any
    example: int | None = None  # 1-based: the step's number among those checked

    def item(self) -> StepItem:
        return StepItem([dict(mb) for mb in self.micro_batches], self.example, "")


@dataclass(frozen=True)
class LabelFunction:
    """The user's function, run in the label process; `name` is what the UI calls the strategy.

    Every call goes to the process as one request for all its examples (`call_many`). What the
    function printed during the last request is `printed` (a `protocol.Printed`, or None).
    """

    source: LabelSource
    fingerprint: str  # changes with the file's text: a strategy trained before is stale
    text: str = field(repr=False, compare=False)
    def_line: int | None = field(default=None, compare=False)
    sandbox: Any = field(default=None, repr=False, compare=False)
    _last: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    kind: FunctionKind = FunctionKind.LABELS  # how it is called, and what it must return

    @property
    def name(self) -> str:
        return self.source.function

    @property
    def file(self) -> str:
        return str(self.source.path)

    @property
    def params(self) -> tuple[str, ...]:
        """What it is called with (its kind's parameters)."""
        return self.kind.params

    @property
    def printed(self) -> Printed | None:
        """What the function printed during the last request, or None."""
        return self._last.get("printed")

    @property
    def printed_in_all(self) -> Printed | None:
        """What it printed since it was loaded, its start and its end, or None."""
        return self._last.get("all")

    def _load(self) -> Load:
        return Load(self.file, self.text, self.name, self.kind, 0.0)

    def call_many(self, calls: Sequence[LabelCall | WeightsCall], *, stop_on_error: bool = True) -> list[Any]:
        """What every call returned (labels, or a WeightsCall's weights), checked, or its LabelCodeError;
        with `stop_on_error` the list ends at the first error."""
        if not calls:
            return []
        results, printed = self.sandbox.call(
            self.fingerprint, self._load(), [c.item() for c in calls], [c.tokenizer for c in calls], stop_on_error
        )
        self._last["printed"] = printed
        if printed is not None:
            self._last["all"] = printed if self._last.get("all") is None else self._last["all"].then(printed)
        return [error_from(r.error, self.file, self.text, self.name) if isinstance(r, Failed) else r for r in results]

    def call(
        self,
        input_ids: Sequence[int],
        tokenizer: Any,
        *,
        text: str = "",
        attention_mask: Sequence[int] | None = None,
        example: int | None = None,
    ) -> list[int]:
        """The function's labels for one tokenized example, checked; a LabelCodeError otherwise."""
        (result,) = self.call_many([LabelCall(input_ids, tokenizer, text, attention_mask, example)])
        if isinstance(result, LabelCodeError):
            raise result
        return result

    def labeled_many(
        self,
        examples: Sequence[FormattedExample],
        tokenizer: Any,
        *,
        max_length: int | None = None,
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

    def hand_over(self, tokenizer: Any) -> None:
        """Hand the tokenizer to the label process ahead of the first call (seconds for a big vocabulary)."""
        self.sandbox.hand_over(tokenizer)

    def stop_others(self) -> None:
        """This version replaced the others: end their processes, whatever they are doing."""
        self.sandbox.retire(keep=[self.fingerprint])


def read_label_file(source: LabelSource) -> str:
    """The text of the label function's file; a LabelCodeError where it cannot be read."""
    file = str(source.path)
    try:
        return source.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelCodeError(
            "not-found",
            file,
            None,
            "there is no such file",
            function=source.function,
            fix="check the path given to --labels-from",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LabelCodeError(
            "not-found",
            file,
            None,
            f"it cannot be read ({reason})",
            function=source.function,
            fix="give a UTF-8 Python file",
        ) from None


def load_label_function(
    spec: str | LabelSource, *, sandbox: Any = None, kind: FunctionKind = FunctionKind.LABELS
) -> LabelFunction:
    """Load the function of `FILE[:FUNCTION]`: read the file here, run it in the label process.

    Raises LabelCodeError for a file that cannot be read, a syntax error, an exception (or a
    loop, an exit, a crash) while the file runs, a missing function or one that cannot take
    its kind's parameters. The file is read and compiled afresh every time (no bytecode cache),
    so a reload sees every save. `sandbox` is the label process (default: this program's).
    `kind`: what kind of function it is (an exercise's own, e.g. FunctionKind.WEIGHTS).
    """
    from inspector.core.labels.process.sandbox import default_sandbox

    source = spec if isinstance(spec, LabelSource) else LabelSource.parse(spec)
    text = read_label_file(source)
    box = sandbox or default_sandbox()
    params = kind.params
    named = source.function if params == FunctionKind.LABELS.params else f"{source.function}({','.join(params)})"
    version = fingerprint(text, named)
    reply = box.load(version, Load(str(source.path), text, source.function, kind, 0.0))
    if not isinstance(reply, Loaded):
        raise error_from(reply.error, str(source.path), text, source.function)
    return LabelFunction(source, version, text, reply.def_line, box, kind=kind)
