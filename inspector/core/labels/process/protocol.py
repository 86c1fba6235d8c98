"""What the label process and its parent say to each other, and every constant both sides share.

The kinds of user function the label process runs (`FunctionKind`), where a function is
(`LabelSource`), the requests and replies between the parent, the zygote and a worker (plain
dataclasses, pickled by `channel`), and the limits: time per call, output kept. Nothing here
runs the user's code or starts a process; both sides import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from inspector.core.data.tokenizer_variants import TokenizerVariant
from inspector.core.errors import InspectorError

DEFAULT_TIMEOUT = 5.0  # seconds per example (per call) a label function may take
START_TIMEOUT = 60.0  # the zygote's start and a tokenizer's hand-over (transformers' import, a big vocabulary)
GRACE = 3.0  # beyond the watchdog's own limit, before the parent kills a worker itself
OUTPUT_KEPT = 4000  # characters of what the function printed kept from its start, and as many from its end


class FunctionKind(Enum):
    """A kind of user function: its usual name, its parameters, what it is called with, what it returns.

    The worker calls a function and checks its return by its kind (`worker.KINDS`); the parent
    sends the calls of its kind (`parent.LabelCall`, `parent.WeightsCall`)."""

    #: `make_labels(example, tokenizer)`: one example's labels, the `custom` strategy (lessons 4, 8, 10).
    LABELS = ("make_labels", ("example", "tokenizer"), "one example", "a label per token: -100 or the token's id")
    #: `packed_labels(example, tokenizer)`: a packed row's labels; the example dict also has
    #: `position_ids`, `seq_lengths` and `completion_mask` (lesson 11).
    PACKED_LABELS = (
        "packed_labels",
        ("example", "tokenizer"),
        "one packed row",
        "a label per token: -100 or the token's id",
    )
    #: `token_weights(micro_batches)`: the weight of every label of one optimizer step (lesson 13).
    WEIGHTS = (
        "token_weights",
        ("micro_batches",),
        "one step's micro-batches",
        "per micro-batch, per row, a finite number per label",
    )

    def __init__(self, function: str, params: tuple[str, ...], called_on: str, returns: str) -> None:
        self.function = function  # the name a file's function has unless FILE:FUNCTION says otherwise
        self.params = params
        self.called_on = called_on
        self.returns = returns

    def signature(self, function: str | None = None) -> str:
        """`def name(params)` as a fix tells the user to write it."""
        return f"def {function or self.function}({', '.join(self.params)})"


DEFAULT_FUNCTION = FunctionKind.LABELS.function


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
                f"--labels-from {spec}: {tail!r} is not a Python function name",
                "write FILE:FUNCTION, e.g. mask.py:make_labels",
            )
        return cls(Path(text).expanduser(), DEFAULT_FUNCTION)

    def __str__(self) -> str:
        return f"{self.path}:{self.function}"


@dataclass(frozen=True)
class Printed:
    """What the function printed (stdout and stderr): its first and last `OUTPUT_KEPT` characters
    (the same text when it is short) and its size in bytes."""

    head: str
    tail: str
    bytes: int

    @property
    def whole(self) -> bool:
        """Whether `head` is all of it."""
        return self.bytes <= len(self.head.encode())

    def then(self, later: Printed | None) -> Printed:
        """This output followed by `later`'s."""
        if later is None:
            return self
        head = (self.head + later.head)[:OUTPUT_KEPT] if self.whole else self.head
        tail = (self.tail + later.tail)[-OUTPUT_KEPT:] if later.whole else later.tail
        return Printed(head, tail, self.bytes + later.bytes)

    def text(self, limit: int = 2000) -> str:
        """The output as a user reads it: all of it when short, else its start and end with a note."""
        if self.whole and len(self.head) <= limit:
            return self.head
        half = limit // 2
        return f"{self.head[:half]}\n… ({self.bytes:,} bytes in all; the first and last lines shown) …\n{self.tail[-half:]}"


def joined(outputs: Sequence[Printed | None]) -> Printed | None:
    """Several requests' output, one after the other (None where nothing was printed)."""
    out: Printed | None = None
    for p in outputs:
        if p is not None:
            out = p if out is None else out.then(p)
    return out


# --- parent -> worker --------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Run the file's text and find its function, checked against its kind's parameters."""

    file: str
    text: str
    function: str
    kind: FunctionKind
    timeout: float  # the sandbox's, set when it sends the request


@dataclass(frozen=True)
class ExampleItem:
    """One call of a LABELS or PACKED_LABELS function: a tokenized example (and a packed row's fields)."""

    input_ids: list[int]
    attention_mask: list[int] | None
    text: str
    example: int | None  # 1-based, for the messages
    extra: Mapping[str, Any] | None  # more fields of the example dict (a packed row's position_ids)
    tokenizer: str  # the zygote's key of the tokenizer it is called with
    withheld: tuple[str, ...] = ()  # keys left out of the example dict (exercise 10: attention_mask)


@dataclass(frozen=True)
class StepItem:
    """One call of a WEIGHTS function: one optimizer step's micro-batches (dicts of plain nested lists)."""

    micro_batches: list[dict[str, Any]]
    example: int | None  # 1-based: the step's number among those checked
    tokenizer: str


Item = ExampleItem | StepItem


@dataclass(frozen=True)
class Call:
    """Call the loaded function on every item, each within `timeout` s; with `stop_on_error` stop at the first error."""

    items: list[Item]
    timeout: float
    stop_on_error: bool


# --- worker -> parent --------------------------------------------------------------------------


@dataclass(frozen=True)
class Gone:
    """A call (or a load) whose worker was stopped or ended before it answered."""

    why: str  # "timeout" (the parent's deadline), "ended", "replaced", "closed"
    status: int | None  # the exit status, negative for a signal
    dump: str  # what faulthandler wrote
    example: int | None
    timeout: float
    while_loading: bool = False


@dataclass(frozen=True)
class Failed:
    """A load or a call that failed: the user's error (`LabelCodeError.to_dict()`), or its worker gone."""

    error: Mapping[str, Any] | Gone
    printed: Printed | None = None


@dataclass(frozen=True)
class Loaded:
    """The file ran and its function takes its kind's parameters."""

    def_line: int | None
    printed: Printed | None = None


@dataclass(frozen=True)
class Answers:
    """Per item run: its checked return (a list), or its Failed; fewer than asked after an error
    with `stop_on_error`."""

    results: list[Any]
    printed: Printed | None = None


@dataclass(frozen=True)
class NeedTokenizer:
    """The worker lacks a tokenizer (forked before the zygote got it): the parent forks anew."""

    key: str
    printed: Printed | None = None


# --- parent -> zygote, and its replies --------------------------------------------------------


@dataclass(frozen=True)
class HandOver:
    """Hold this tokenizer (a pickle) under `key`."""

    key: str
    payload: bytes


@dataclass(frozen=True)
class Derive:
    """Make the tokenizer `key` from the one held as `base` by `variant` (no pickle to send)."""

    key: str
    base: str
    variant: TokenizerVariant


@dataclass(frozen=True)
class Fork:
    """Start a worker that connects to `address` with `token`; faulthandler writes to `dump_path`."""

    address: str
    token: str
    dump_path: str
    memory: int | None


@dataclass(frozen=True)
class Status:
    """The exit status of worker `pid`, once it has ended (waiting for it with `wait`)."""

    pid: int
    wait: bool


@dataclass(frozen=True)
class Done:
    """The zygote's answer: `value` is a Fork's pid or a Status's code (None otherwise)."""

    value: int | None = None


@dataclass(frozen=True)
class Refused:
    """The zygote could not do it (a tokenizer that does not unpickle, a failed fork)."""

    reason: str


def fingerprint(text: str, function: str) -> str:
    """A short hash of the file's text and the function's name: a version of the user's function."""
    import hashlib

    return hashlib.sha256(f"{function}\0{text}".encode()).hexdigest()[:12]
