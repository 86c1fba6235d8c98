"""Laying out a collated micro-batch: each token's segment, source row, reason for -100 and
attention window, checked token by token against the row TRL prepared.

`lay_out` returns a `Layout` (plain values); `steps.inspect_step` builds the `MicroBatch` from it
once the step's weights are known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inspector.core.batches.provenance import Provenance
from inspector.core.batches.step_types import COLLATOR, FIRST, PACK_BOUNDARY, PADDING, Dropped, Segment
from inspector.core.data.tokens import IGNORE_INDEX


@dataclass(frozen=True)
class Layout:
    """Where each token of a micro-batch comes from and whether it trains (the `MicroBatch` fields
    of the same names, which it becomes)."""

    texts: list[list[str]]
    segments: list[list[Segment]]
    token_segment: list[list[int | None]]
    reasons: list[list[str | None]]
    attends_from: list[list[int | None]]
    dropped: list[Dropped]

    @property
    def trained(self) -> list[list[bool]]:
        """Whether each token's label trains."""
        return [[r is None for r in row] for row in self.reasons]


def lay_out(
    samples: list[int],
    batch: dict[str, Any],
    micro_step: int,
    prov: Provenance,
    padding_free: bool,
    shifts: bool,
    mask_reason: str,
) -> Layout:
    """Each token's segment, row, reason and attention window, checked against the row's own tokens.

    `samples`: the prepared sequences the batch sampler gave for micro-batch `micro_step`; `batch`: the
    collator's tensors made of them."""
    ids = batch["input_ids"].tolist()
    labels = batch["labels"].tolist()
    positions = batch["position_ids"].tolist() if batch.get("position_ids") is not None else None
    starts = attention_starts(batch)
    n_rows, length = len(ids), len(ids[0]) if ids else 0
    expected_rows = 1 if padding_free else len(samples)
    if n_rows != expected_rows:
        raise RuntimeError(f"the collator gave {n_rows} rows for {len(samples)} sequences")
    segments: list[list[Segment]] = [[] for _ in range(n_rows)]
    token_segment: list[list[int | None]] = [[None] * length for _ in range(n_rows)]
    reasons: list[list[str | None]] = [[PADDING] * length for _ in range(n_rows)]
    attends_from: list[list[int | None]] = [[None] * length for _ in range(n_rows)]
    offset = 0
    seen: dict[int, None] = {}
    for k, sample in enumerate(samples):
        b = 0 if padding_free else k
        base = offset if padding_free else 0
        size = 0
        for piece in prov.pieces(sample):
            source = prov.row(piece.index)
            start = base + piece.start
            seg = Segment(prov.setup.row_number(piece.index), piece.index, b, start, start + piece.length, piece.row_start, 0)
            seg.attends_from = starts[b][start] if starts[b][start] is not None else start
            segments[b].append(seg)
            seen.setdefault(piece.index)
            for j in range(piece.length):
                t, src = start + j, piece.row_start + j
                if ids[b][t] != source["input_ids"][src]:
                    raise RuntimeError(f"token {t} of micro-batch {micro_step} is not row {seg.row}'s token {src}")
                token_segment[b][t] = len(segments[b]) - 1
                attends_from[b][t] = starts[b][t]
                label = labels[b][t]
                if label == IGNORE_INDEX:
                    if source["labels"][src] == IGNORE_INDEX:
                        reason: str | None = mask_reason
                    elif positions is not None and positions[b][t] == 0:
                        reason = PACK_BOUNDARY
                    else:
                        reason = COLLATOR
                elif shifts and t == 0:
                    reason = FIRST
                else:
                    reason = None
                    seg.trained += 1
                reasons[b][t] = reason
            size = max(size, piece.start + piece.length)
        offset += size
    return Layout(
        texts=token_texts(prov.trainer.processing_class, ids),
        segments=segments,
        token_segment=token_segment,
        reasons=reasons,
        attends_from=attends_from,
        dropped=[d for d in (prov.dropped_of(i) for i in seen) if d is not None],
    )


def attention_starts(batch: dict[str, Any]) -> list[list[int | None]]:
    """The first position each token can attend to in the trainer's forward (compute_loss passes
    use_cache=False): with an attention mask, every earlier unmasked token; without one, transformers
    builds the block-causal mask from position_ids (`find_packed_sequence_indices`); else plain causal.
    The recorder judges a real run's micro-batches with it too (`recorder.rank_stats`)."""
    ids = batch["input_ids"]
    rows, length = ids.shape
    if "attention_mask" in batch:
        mask = batch["attention_mask"].tolist()
        return [[0 if m else None for m in row] for row in mask]
    if "position_ids" in batch:
        from transformers.masking_utils import find_packed_sequence_indices

        seq = find_packed_sequence_indices(batch["position_ids"])
        if seq is None:
            return [[0] * length for _ in range(rows)]
        out = []
        for row in seq.tolist():
            starts, first = [], {}
            for t, s in enumerate(row):
                first.setdefault(s, t)
                starts.append(first[s])
            out.append(starts)
        return out
    return [[0] * length for _ in range(rows)]


def token_texts(tokenizer: Any, rows: list[list[int]]) -> list[list[str]]:
    """Each token's text, whitespace made visible; special tokens by their name (a recording's too)."""
    from inspector.core.data.tokens import special_token_ids, visible

    special = special_token_ids(tokenizer)
    cache: dict[int, str] = {}

    def text(tid: int) -> str:
        if tid not in cache:
            if tid in special:
                cache[tid] = visible(str(tokenizer.convert_ids_to_tokens(tid)))
            else:
                cache[tid] = visible(tokenizer.decode([tid]))
        return cache[tid]

    return [[text(t) for t in row] for row in rows]
