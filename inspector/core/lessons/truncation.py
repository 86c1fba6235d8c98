"""Lesson 12's demo: the answer that lost its end (it trains nothing: lesson 10 trained a copy
with its eos masked, which is what a cut eos does).

Three examples and a `max_length` chosen from their lengths: one keeps every token, one loses
only its closing eos, one's prompt fills max_length so it keeps no trained token. TRL's
SFTTrainer (its own preparation, through the batch core) truncates them: the panel counts what
it kept, what it dropped and what it trains; with packing (`bfd_split`, `wrapped`) it counts the
pieces that train nothing, labels read from the trainer's own collator. Then SFTConfig's default
`max_length` on the TRL installed, and how many of the training rows are longer than it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.data.tokens import IGNORE_INDEX


@dataclass
class RowCut:
    row: int
    role: str  # what max_length was chosen to do to it
    tokens: int
    trained_full: int  # trained tokens of the whole row
    kept: bool  # a sequence of TRL's prepared dataset
    trained_kept: int = 0
    eos_trained: bool = False  # its closing eos still has a trained label
    ends_with: str = ""  # the last kept token


@dataclass
class PackedPieces:
    strategy: str
    sequences: int
    pieces: int
    untrained: int  # pieces with no scored label: they run through the model and train nothing
    untrained_tokens: int
    tokens: int  # tokens in the pieces: every token of the rows when nothing is dropped
    # The eos the unpacked cut loses, packed: "trained", "not trained", "first of its piece" (never
    # trained: under bfd_split position_ids restart there and the collator sets its label to -100), "gone".
    cut_eos: str = ""


@dataclass
class TruncationView:
    max_length: int
    truncation_mode: str
    rows: list[RowCut]
    dropped: int  # rows TRL's preparation left out
    packed: list[PackedPieces] = field(default_factory=list)

    @property
    def eos_lost(self) -> RowCut | None:
        """The first row kept and trained whose closing eos the cut took."""
        return next((c for c in self.rows if c.kept and c.trained_kept and not c.eos_trained and c.trained_full > c.trained_kept), None)


@dataclass(frozen=True)
class DefaultCut:
    """SFTConfig's own max_length, and the training rows (as TRL prepares them, untruncated) longer than it."""

    trl_version: str
    max_length: int | None
    rows: int
    longer: int
    longest: int


def truncation_examples(make: Callable[[str, str], FormattedExample], tokenizer: Any, word: str, answer: str) -> tuple[list[FormattedExample], int]:
    """(examples, max_length): a short answer, a longer one, and a long question, with max_length one
    token shorter than the longer answer's row, so it loses only its eos; the question grows until its
    prompt alone fills max_length."""

    def length(fe: FormattedExample) -> int:
        return len(tokenizer(fe.text)["input_ids"])

    def prompt_length(fe: FormattedExample) -> int:
        return len(tokenizer(fe.prompt)["input_ids"])

    short = make(word, answer)
    longer = make(word, " ".join([answer] * 3))
    cap = length(longer) - 1
    if length(short) > cap:
        raise RuntimeError("the short example is longer than the longer one: the tokenizer merges the repeats")
    k = 2
    question = make(" ".join([word] * k), answer)
    while prompt_length(question) < cap:
        k += 1
        question = make(" ".join([word] * k), answer)
    return [short, longer, question], cap


def _trained(labels: Sequence[int]) -> int:
    """Labels a causal LM scores: every one but the first (nothing predicts it)."""
    return sum(1 for x in list(labels)[1:] if x != IGNORE_INDEX)


@contextmanager
def _trainer(model: Any, tokenizer: Any, examples: Sequence[FormattedExample], source: str, flags: dict[str, Any], device: str) -> Iterator[tuple[Any, Any]]:
    """(setup, trainer): TRL's SFTTrainer on the examples (batch size 1), in a temporary output folder."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.trainer import sft_trainer

    rows = list(range(1, len(examples) + 1))
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-lesson-") as tmp:
        setup = examples_setup(examples, rows, source, {"per_device_train_batch_size": 1, **flags}, output_dir=tmp, device=device)
        with sft_trainer(model, tokenizer, setup) as trainer:
            yield setup, trainer


def _packed(
    model: Any, tokenizer: Any, examples: Sequence[FormattedExample], max_length: int, strategy: str, device: str,
    watch: int | None = None,
) -> PackedPieces:
    """The pieces of TRL's packed sequences, and those whose labels, as the trainer's collator gives
    them (position_ids restart at each piece under bfd_split, so its first label is -100), train
    nothing; and what becomes of the closing eos of row index `watch`."""
    from inspector.core.batches.provenance import Provenance

    flags = {"max_length": max_length, "packing": True, "packing_strategy": strategy}
    with _trainer(model, tokenizer, examples, "the lesson's truncation examples", flags, device) as (setup, trainer):
        prov = Provenance(trainer, setup)
        pieces = untrained = untrained_tokens = tokens = 0
        last = len(prov.row(watch)["input_ids"]) - 1 if watch is not None else -1
        cut_eos = "gone" if watch is not None else ""
        for s in range(len(trainer.train_dataset)):
            labels = trainer.data_collator([trainer.train_dataset[s]])["labels"][0].tolist()
            for piece in prov.pieces(s):
                pieces += 1
                tokens += piece.length
                scored = [t for t in range(max(piece.start, 1), piece.start + piece.length) if labels[t] != IGNORE_INDEX]
                if not scored:
                    untrained += 1
                    untrained_tokens += piece.length
                if piece.index == watch and piece.row_start <= last < piece.row_start + piece.length:
                    at = piece.start + last - piece.row_start
                    if at in scored:
                        cut_eos = "trained"
                    else:
                        cut_eos = "first of its piece" if at == piece.start else "not trained"
        return PackedPieces(strategy, len(trainer.train_dataset), pieces, untrained, untrained_tokens, tokens, cut_eos)


def truncation_view(
    model: Any, tokenizer: Any, examples: Sequence[FormattedExample], max_length: int, *, device: str = "cpu"
) -> TruncationView:
    from inspector.core.batches.provenance import Provenance
    from inspector.core.batches.setup import ROW_COLUMN

    roles = ["keeps all", "loses its eos", "loses every trained token"]
    flags = {"max_length": max_length, "packing": False}
    with _trainer(model, tokenizer, examples, "the lesson's truncation examples", flags, device) as (setup, trainer):
        prov = Provenance(trainer, setup)
        mode = str(trainer.args.truncation_mode)
        kept = {int(r[ROW_COLUMN]): r for r in trainer.train_dataset}
        out = []
        for i in range(len(examples)):
            full = prov.row(i)
            cut = RowCut(i + 1, roles[i] if i < len(roles) else "", len(full["input_ids"]), _trained(full["labels"]), i in kept)
            if i in kept:
                ids, labels = list(kept[i]["input_ids"]), list(kept[i]["labels"])
                cut.trained_kept = _trained(labels)
                cut.eos_trained = ids[-1] == tokenizer.eos_token_id and labels[-1] != IGNORE_INDEX
                cut.ends_with = tokenizer.convert_ids_to_tokens(ids[-1])
            out.append(cut)
    view = TruncationView(max_length, mode, out, sum(1 for c in out if not c.kept))
    lost = view.eos_lost
    for strategy in ("bfd_split", "wrapped"):
        view.packed.append(_packed(model, tokenizer, examples, max_length, strategy, device, lost.row - 1 if lost else None))
    return view


def sft_default_max_length() -> int | None:
    """SFTConfig's own default `max_length`, read from the dataclass of the TRL installed."""
    from trl import SFTConfig

    return next(f.default for f in dataclasses.fields(SFTConfig) if f.name == "max_length")


def default_cut(model: Any, tokenizer: Any, examples: Sequence[FormattedExample], *, device: str = "cpu") -> DefaultCut:
    """How many of `examples` SFTConfig's default max_length cuts: TRL's SFTTrainer with no max_length
    given, and each row's length as its own preparation makes it untruncated (its tokenizing, its eos)."""
    import trl

    from inspector.core.batches.provenance import Provenance

    default = sft_default_max_length()
    with _trainer(model, tokenizer, examples, "the training rows", {"packing": False}, device) as (setup, trainer):
        if trainer.args.max_length != default:
            raise RuntimeError(f"SFTConfig's default max_length is {default}, the trainer's {trainer.args.max_length}")
        lengths = [len(ids) for ids in Provenance(trainer, setup).unpacked["input_ids"]]
    longer = sum(1 for n in lengths if default is not None and n > default)
    return DefaultCut(trl.__version__, default, len(lengths), longer, max(lengths, default=0))


def truncation_text(v: TruncationView, default: DefaultCut | None = None) -> str:
    lines = [f"max_length {v.max_length}, truncation_mode {v.truncation_mode}, no packing (TRL's SFTTrainer prepares the rows):"]
    for c in v.rows:
        if not c.kept:
            state = f"DROPPED by TRL: no trained token left (it had {c.trained_full})"
        else:
            eos = "its eos trained" if c.eos_trained else f"its eos is gone (ends with {c.ends_with!r})"
            state = f"kept, {c.trained_kept} of {c.trained_full} trained tokens, {eos}"
        lines.append(f"   row {c.row} ({c.role}): {c.tokens} tokens → {state}")
    if v.truncation_mode == "keep_start":
        lines.append("keep_start keeps the first max_length tokens: what is cut is the end, where the answer and its eos are")
    lines.append(f"rows dropped: {v.dropped} of {len(v.rows)}")
    lost = v.eos_lost
    if lost:
        lines.append(f"row {lost.row} is kept and trains its answer, never the stop: lesson 10 shows what that does")
    gone = [c for c in v.rows if not c.kept]
    if gone:
        lines.append(f"row {gone[0].row} has no trained token left: without packing TRL drops it")
    total = sum(c.tokens for c in v.rows)
    said = {"trained": "trains it", "not trained": "keeps it untrained", "gone": "drops it",
            "first of its piece": "keeps it as the first token of a piece, whose label is not trained"}
    for p in v.packed:
        kept = "every token kept" if p.tokens == total else f"{total - p.tokens} of {total} tokens dropped"
        lines.append(
            f"packing {p.strategy}: {p.sequences} sequences, {p.pieces} pieces, {kept}; {p.untrained} "
            f"train nothing ({p.untrained_tokens} tokens run through the model for no loss)"
        )
        if lost and p.cut_eos:
            lines.append(f"   row {lost.row}'s cut eos under {p.strategy}: {said[p.cut_eos]}")
    if default is not None:
        lines.append(default_text(default))
    return "\n".join(lines)


def default_text(d: DefaultCut) -> str:
    if d.max_length is None:
        return f"SFTConfig's default max_length on TRL {d.trl_version}: None (no truncation unless you set one)"
    rows = "row" if d.rows == 1 else "rows"
    return (
        f"SFTConfig's default max_length on TRL {d.trl_version}: {d.max_length}; {d.longer} of the {d.rows} training "
        f"{rows} are longer (the longest has {d.longest} tokens)"
    )
