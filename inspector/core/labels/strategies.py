"""The three label strategies of the article, as per-token rows.

- `copy`: labels are the input_ids (the model shifts them itself: position i is scored on
  token i+1).
- `mask`: the article's `create_special_mask`: -100 from the start through each `bos`,
  the answer and its closing `eos` trained, masked again after it, for every turn.
- `trl`: whatever TRL's `SFTTrainer` produces for the prompt/completion dataset with
  `completion_only_loss=True`; TRL is asked, not imitated. Where its labels differ from
  `mask` (a multi-turn text trains only its last answer), the difference is shown.
- `custom`: the user's own label function (`--labels-from FILE[:FUNCTION]`,
  inspector.core.labels.process), an optional fourth strategy, shown under the function's name.

`STRATEGIES` are the three built-ins, always there; `strategies_with(custom)` adds `custom`
where a label function is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from inspector.core.data.chat_format import FormattedExample
from inspector.core.data.tokens import IGNORE_INDEX, special_token_ids, visible
from inspector.core.errors import InspectorError, NothingToLearn

STRATEGIES = ("copy", "mask", "trl")  # the built-ins, always there
CUSTOM = "custom"  # the user's label function, there only with --labels-from
ALL_STRATEGIES = (*STRATEGIES, CUSTOM)
STRATEGY_TITLES = {
    "copy": "labels copied from input_ids",
    "mask": "human part masked to -100",
    "trl": "TRL SFTTrainer, completion-only loss",
    CUSTOM: "your own label function",
}


class LabelMaker(Protocol):
    """What the `custom` strategy needs of a label function (inspector.core.labels.process.parent.LabelFunction)."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    def labeled(
        self, fe: FormattedExample, tokenizer: Any, *, max_length: int | None = None, index: int = 0
    ) -> LabeledExample: ...

    def labeled_many(
        self,
        examples: Sequence[FormattedExample],
        tokenizer: Any,
        *,
        max_length: int | None = None,
        numbers: Sequence[int] | None = None,
    ) -> list[LabeledExample]: ...


def strategies_with(custom: LabelMaker | None) -> tuple[str, ...]:
    """The strategies there are: the three built-ins, and `custom` when a label function is loaded."""
    return ALL_STRATEGIES if custom is not None else STRATEGIES


def display_name(strategy: str, custom: LabelMaker | None = None) -> str:
    """What the UI calls a strategy: its key, or for `custom` the label function's name."""
    return custom.name if strategy == CUSTOM and custom is not None else strategy


def check_strategy(strategy: str, custom: LabelMaker | None = None) -> None:
    """An InspectorError for an unknown strategy, or for `custom` without a label function."""
    if strategy == CUSTOM and custom is None:
        raise InspectorError(
            "the custom strategy needs your label function", "pass --labels-from FILE[:FUNCTION] (default make_labels)"
        )
    if strategy not in ALL_STRATEGIES:
        raise InspectorError(f"unknown strategy {strategy!r}", f"choose one of {', '.join(strategies_with(custom))}")


@dataclass(frozen=True)
class TokenRow:
    position: int
    id: int
    text: str  # visible form: whitespace as glyphs, special tokens as their names
    label: int
    masked: bool
    special: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabeledExample:
    strategy: str
    rows: tuple[TokenRow, ...]
    formatted: FormattedExample | None = None

    @property
    def input_ids(self) -> list[int]:
        return [r.id for r in self.rows]

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self.rows]

    @property
    def trained_tokens(self) -> int:
        """Tokens whose label is scored: the model predicts each from the tokens before it.

        The first position is never predicted (nothing precedes it), so a trained label
        there does not count.
        """
        return sum(1 for r in self.rows[1:] if not r.masked)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "text": self.formatted.text if self.formatted else None,
            "tokens": [r.to_dict() for r in self.rows],
            "trained_tokens": self.trained_tokens,
        }


def make_rows(tokenizer: Any, ids: Sequence[int], labels: Sequence[int]) -> tuple[TokenRow, ...]:
    special_ids = special_token_ids(tokenizer)
    rows = []
    for pos, (tid, lab) in enumerate(zip(ids, labels, strict=True)):
        tid, lab = int(tid), int(lab)
        if tid in special_ids:
            # Added special tokens may hold whitespace (a "\n\n### Human:" template): made visible too.
            text, special = visible(str(tokenizer.convert_ids_to_tokens(tid))), True
        else:
            text, special = visible(tokenizer.decode([tid])), False
        rows.append(TokenRow(pos, tid, text, lab, lab == IGNORE_INDEX, special))
    return tuple(rows)


def encode(fe: FormattedExample, tokenizer: Any) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets of a formatted example.

    The tokenizer adds what it always adds (Gemma and Llama prepend their own `bos`); the
    `bos`/`eos` the format inserted must each come out as one special token, or the masks
    could not find them.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise InspectorError(
            f"the tokenizer {type(tokenizer).__name__} is a slow (Python) tokenizer without offsets",
            "use a model that ships a tokenizer.json (a fast tokenizer)",
        )
    enc = tokenizer(fe.text, return_offsets_mapping=True, add_special_tokens=fe.add_special)
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    if fe.kind != "article":
        return ids, offsets
    bos_id = tokenizer.convert_tokens_to_ids(fe.bos)
    for start, _ in fe.answer_spans:
        if not any(t == bos_id and e == start for t, (_, e) in zip(ids, offsets)):
            raise InspectorError(
                f"the tokenizer does not read its bos text {fe.bos!r} as one special token",
                "use a tokenizer whose bos_token is a registered special token",
            )
    return ids, offsets


def check_length(ids: Sequence[int], max_length: int | None, index: int) -> None:
    if max_length is not None and len(ids) > max_length:
        raise InspectorError(
            f"example {index + 1} is {len(ids)} tokens long, longer than the model's context of {max_length}",
            "shorten the example or split it into several",
        )


def mask_labels(ids: Sequence[int], offsets: Sequence[tuple[int, int]], fe: FormattedExample) -> list[int]:
    """-100 everywhere except the tokens inside an answer span (answer + closing eos).

    A conversation rendered by a chat template is masked as transformers makes its
    `assistant_masks` (what TRL's assistant_only_loss trains): a token is trained when it
    overlaps a span, so a token the tokenizer merged across a span's edge (Gemma's `?<` before
    DeepSeek's `<｜Assistant｜>`) is trained, as TRL trains it.
    """
    if fe.kind == "chat":
        return [
            int(t) if any(s < b and e > a for a, b in fe.answer_spans) else IGNORE_INDEX
            for t, (s, e) in zip(ids, offsets)
        ]
    labels: list[int] = []
    prev_trained = False
    for tid, (s, e) in zip(ids, offsets):
        if e > s:
            trained = any(a <= s and e <= b for a, b in fe.answer_spans)
        else:  # a zero-width token (a prefix the tokenizer adds, a byte piece) goes with its neighbour
            trained = prev_trained and bool(labels)
        labels.append(int(tid) if trained else IGNORE_INDEX)
        prev_trained = trained
    return labels


def label_example(
    strategy: str,
    fe: FormattedExample,
    tokenizer: Any,
    *,
    max_length: int | None = None,
    index: int = 0,
    custom: LabelMaker | None = None,
) -> LabeledExample:
    """Labels for `copy`, `mask` or `custom` (for `trl`, see `label_examples`)."""
    if strategy == CUSTOM:
        check_strategy(strategy, custom)
        assert custom is not None  # check_strategy refuses custom without a label function
        return custom.labeled(fe, tokenizer, max_length=max_length, index=index)
    ids, offsets = encode(fe, tokenizer)
    check_length(ids, max_length, index)
    if strategy == "copy":
        labels = list(ids)
    elif strategy == "mask":
        labels = mask_labels(ids, offsets, fe)
    else:
        raise ValueError(f"label_example handles copy and mask, not {strategy!r}")
    return LabeledExample(strategy, make_rows(tokenizer, ids, labels), fe)


def label_examples(
    strategy: str,
    examples: Sequence[FormattedExample],
    tokenizer: Any,
    model: Any = None,
    *,
    max_length: int | None = None,
    custom: LabelMaker | None = None,
) -> list[LabeledExample]:
    """Labels of every example under one strategy (`custom` needs the label function)."""
    check_strategy(strategy, custom)
    if strategy == "trl":
        if model is None:
            raise ValueError("the trl strategy needs the model: TRL's SFTTrainer makes the labels")
        from inspector.core.labels.trl_bridge import trl_dataset_rows
        from inspector.core.labels.turn_policy import trl_view

        examples = [trl_view(fe, tokenizer) for fe in examples]  # split rows as TRL renders them
        out = []
        for i, (fe, (ids, labels)) in enumerate(zip(examples, trl_dataset_rows(model, tokenizer, examples))):
            check_length(ids, max_length, i)
            out.append(LabeledExample("trl", make_rows(tokenizer, ids, labels), fe))
        return out
    if strategy == CUSTOM:  # the user's code: one request to the label process for every example
        assert custom is not None  # check_strategy refuses custom without a label function
        return custom.labeled_many(examples, tokenizer, max_length=max_length)
    return [
        label_example(strategy, fe, tokenizer, max_length=max_length, index=i, custom=custom)
        for i, fe in enumerate(examples)
    ]


def untrained_examples(labeled: Sequence[LabeledExample]) -> list[int]:
    """The 1-based numbers of the examples whose labels train no token (every scored label -100)."""
    return [i + 1 for i, ex in enumerate(labeled) if ex.trained_tokens == 0]


def refuse_nothing_to_learn(strategy: str, labeled: Sequence[LabeledExample], function: str | None = None) -> list[int]:
    """The examples that train no token (1-based); an InspectorError when none trains any.

    A burst whose every label is -100 would run its steps on a loss of 0 and learn nothing;
    it is refused before the first step. `function` names the label function of `custom`.
    """
    empty = untrained_examples(labeled)
    if labeled and len(empty) == len(labeled):
        who = f"your label function {function}" if strategy == CUSTOM and function else f"the {strategy} strategy"
        n = len(labeled)
        what = "the example" if n == 1 else f"any of the {n} examples"
        fix = (
            "return the token id (not -100) at the positions to train, e.g. the answer's"
            if strategy == CUSTOM
            else "look at its labels (the labels view, or `causallm-inspect labels`): the data may hold no answer"
        )
        raise NothingToLearn(f"{who} trains no token of {what}: every label is -100, so there is nothing to learn", fix)
    return empty


def skipped_note(skipped: Sequence[int], total: int) -> str:
    """The line saying which examples a burst leaves out because they train no token."""
    which = ", ".join(str(n) for n in skipped)
    one = len(skipped) == 1
    rest = total - len(skipped)
    return (
        f"{'example' if one else 'examples'} {which} of {total} {'trains' if one else 'train'} no token "
        f"(every label -100): left out, the other {rest} {'is' if rest == 1 else 'are'} trained"
    )


def differing_positions(a: LabeledExample, b: LabeledExample) -> list[int]:
    """Positions whose label differs between two labelings of the same example.

    Positions present in only one of them (TRL tokenizes the text itself) count as
    differing too.
    """
    n = max(len(a.rows), len(b.rows))
    out = []
    for i in range(n):
        ra = a.rows[i] if i < len(a.rows) else None
        rb = b.rows[i] if i < len(b.rows) else None
        if ra is None or rb is None or ra.id != rb.id or ra.label != rb.label:
            out.append(i)
    return out


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
