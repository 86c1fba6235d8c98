"""Lesson 12's demo: the answer that lost its end.

Three examples and a `max_length` chosen from their lengths: one keeps every token, one loses
only its closing eos, one's prompt fills max_length so it keeps no trained token. TRL's
SFTTrainer (its own preparation, through the batch core) truncates them: the panel counts what
it kept, what it dropped and what it trains; with packing (`bfd_split`, `wrapped`) it counts the
chunks that hold only prompt tokens. Then two copies of the model are trained with the mask
strategy, one on the full examples and one on the same examples cut before their eos.
"""

from __future__ import annotations

import copy
import gc
import tempfile
from collections.abc import Callable, Sequence
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
class PackedChunks:
    strategy: str
    sequences: int
    chunks: int
    prompt_only: int  # chunks with no trained label
    prompt_only_tokens: int  # what they cost: tokens run through the model, no loss


@dataclass
class TruncationView:
    max_length: int
    truncation_mode: str
    rows: list[RowCut]
    dropped: int  # rows TRL's preparation left out
    packed: list[PackedChunks] = field(default_factory=list)


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
    return sum(1 for x in list(labels)[1:] if x != IGNORE_INDEX)


def truncation_view(
    model: Any, tokenizer: Any, examples: Sequence[FormattedExample], max_length: int, *, device: str = "cpu"
) -> TruncationView:
    from inspector.core.batches.setup import ROW_COLUMN, examples_setup
    from inspector.core.batches.provenance import Provenance
    from inspector.core.batches.trainer import sft_trainer

    rows = list(range(1, len(examples) + 1))
    roles = ["keeps all", "loses its eos", "loses every trained token"]
    source = "the lesson's truncation examples"
    flags = {"max_length": max_length, "packing": False, "per_device_train_batch_size": 1}
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-lesson-") as tmp:
        setup = examples_setup(examples, rows, source, flags, output_dir=tmp, device=device)
        with sft_trainer(model, tokenizer, setup) as trainer:
            prov = Provenance(trainer, setup)
            mode = str(trainer.args.truncation_mode)
            kept = {int(r[ROW_COLUMN]): r for r in trainer.train_dataset}
            out = []
            for i in range(len(examples)):
                full = prov.row(i)
                cut = RowCut(rows[i], roles[i] if i < len(roles) else "", len(full["input_ids"]), _trained(full["labels"]), i in kept)
                if i in kept:
                    ids, labels = list(kept[i]["input_ids"]), list(kept[i]["labels"])
                    cut.trained_kept = _trained(labels)
                    cut.eos_trained = ids[-1] == tokenizer.eos_token_id and labels[-1] != IGNORE_INDEX
                    cut.ends_with = tokenizer.convert_ids_to_tokens(ids[-1])
                out.append(cut)
    view = TruncationView(max_length, mode, out, sum(1 for c in out if not c.kept))
    for strategy in ("bfd_split", "wrapped"):
        flags = {"max_length": max_length, "packing": True, "packing_strategy": strategy, "per_device_train_batch_size": 1}
        with tempfile.TemporaryDirectory(prefix="causallm-inspect-lesson-") as tmp:
            setup = examples_setup(examples, rows, source, flags, output_dir=tmp, device=device)
            with sft_trainer(model, tokenizer, setup) as trainer:
                prov = Provenance(trainer, setup)
                chunks = only = only_tokens = 0
                for s in range(len(trainer.train_dataset)):
                    labels = list(trainer.train_dataset[s]["labels"])
                    for piece in prov.pieces(s):
                        chunks += 1
                        part = labels[piece.start : piece.start + piece.length]
                        if all(x == IGNORE_INDEX for x in part):
                            only += 1
                            only_tokens += piece.length
                view.packed.append(PackedChunks(strategy, len(trainer.train_dataset), chunks, only, only_tokens))
    return view


def truncation_text(v: TruncationView) -> str:
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
    eos_lost = [c for c in v.rows if c.kept and c.trained_kept and not c.eos_trained and c.trained_full > c.trained_kept]
    if eos_lost:
        lines.append(
            f"row {eos_lost[0].row} lost only its eos and is kept and trained: the model learns its answer, never where it stops"
        )
    for p in v.packed:
        lines.append(
            f"packing {p.strategy}: {p.sequences} sequences, {p.chunks} chunks; {p.prompt_only} hold only prompt "
            f"tokens ({p.prompt_only_tokens} tokens run through the model for no loss)"
        )
    return "\n".join(lines)


VARIANTS = ("full", "truncated (no eos)")


def cut_before_eos(lab: Any, tokenizer: Any) -> Any:
    """The labelled example without its closing eos, as max_length one token short leaves it."""
    from inspector.core.labels.strategies import LabeledExample, make_rows

    ids, labels = lab.input_ids, lab.labels
    n = len(ids) - 1 if ids and ids[-1] == tokenizer.eos_token_id else len(ids)
    return LabeledExample(f"{lab.strategy}, truncated", make_rows(tokenizer, ids[:n], labels[:n]), lab.formatted)


def truncated_training_run(model: Any, tokenizer: Any, examples: Sequence[FormattedExample], **options: Any) -> Any:
    """Train `mask` on copies of the model: the full examples, then the examples cut before their
    eos (`options` as `demo_runs.label_variants_run` takes them)."""
    from inspector.core.lessons.demo_runs import label_variants_run

    variants = ((VARIANTS[0], None), (VARIANTS[1], lambda lab: cut_before_eos(lab, tokenizer)))
    return label_variants_run(model, tokenizer, examples, variants, **options)


def training_text(run: Any) -> str:
    """The answers of `truncated_training_run` (a `demo_runs.EosRun`), epoch by epoch, with what they show."""
    lines = [f"held-out prompt {run.prompt!r}; untrained answer {run.untrained!r}"]
    for variant, logs in run.answers.items():
        for log in logs:
            verdict = "stops ✓" if run.stops(log.holdout) else "runs on ✗"
            lines.append(f"   {variant:<18} epoch {log.epoch:>2}  {log.holdout!r}  {verdict}")
    full, cut = run.answers.get(VARIANTS[0], []), run.answers.get(VARIANTS[1], [])
    if full and cut:
        full_stops = any(run.stops(log.holdout) for log in full)
        cut_stops = any(run.stops(log.holdout) for log in cut)
        if full_stops and not cut_stops:
            lines.append("found: the full copy learned to stop; the truncated copy's answers run on, as in lesson 10")
        elif not full_stops and not cut_stops:
            lines.append(f"found: neither copy stops within {len(full)} epochs here: try more epochs to see the difference")
        elif cut_stops:
            lines.append("found: the truncated copy stopped too on this model (from the eos in its prompts' turns, not its answers)")
    return "\n".join(lines)
