"""One rank's counts for the audit, from the micro-batches its model received: plain values that
`cross_rank.gather` sends to every rank and `audit` judges.

A sequence is a run of one example inside a batch row: where position_ids are sent, a new one
starts wherever the next position is not the last plus one (transformers' own rule,
`find_packed_sequence_indices`); without them, each batch row is one. What a token can attend to
is judged from what the model really got, as the attention code reads it:

- a 4D mask: as it is (its first allowed key per query, recorded);
- a 2D mask: it hides padding only, so sequences in one row see each other;
- no mask, a flash-attention implementation: kept apart by `cu_seq_lens` (or by position_ids when
  the batch is one row), else plain causal;
- no mask, a cache in use (`use_cache` on, or `past_key_values` given): transformers reads no packed
  sequences from position_ids, so plain causal;
- no mask, no cache: the batch view's own judgment (`batches.layout.attention_starts`): the
  block-causal mask transformers builds from position_ids.
"""

from __future__ import annotations

from typing import Any

from inspector.core.recorder.capture import MicroRecord

KEEP = 20  # examples of each finding kept, for the table and audit.json


def sequences(rec: MicroRecord) -> list[list[tuple[int, int]]]:
    """Per batch row, the [start, end) of each sequence in it that holds a real token."""
    import numpy as np

    ids = rec.arrays["input_ids"]
    real = rec.real()
    positions = rec.arrays.get("position_ids")
    out = []
    for b in range(ids.shape[0]):
        if positions is not None and positions.shape[1] == ids.shape[1]:
            p = positions[min(b, positions.shape[0] - 1)]
            starts = [0, *(int(t) for t in np.nonzero(np.diff(p) != 1)[0] + 1)]
        else:
            starts = [0]
        ends = [*starts[1:], ids.shape[1]]
        out.append([(s, e) for s, e in zip(starts, ends) if real[b, s:e].any()])
    return out


def _cu_starts(cu: Any, length: int) -> list[int]:
    starts = [0] * length
    bounds = [int(x) for x in cu]
    for s, e in zip(bounds, bounds[1:]):
        for t in range(max(s, 0), min(e, length)):
            starts[t] = s
    return starts


def attention_window(rec: MicroRecord, implementation: str | None, config_use_cache: bool | None) -> tuple[list[list[int]], str]:
    """Per batch row, per token, the first position it can attend to; and how that was judged."""
    a = rec.arrays
    ids = a["input_ids"]
    rows, length = ids.shape
    plain = [[0] * length for _ in range(rows)]
    if a.get("attends_from") is not None:
        return [[int(x) for x in row] for row in a["attends_from"]], "a 4D attention mask, as sent"
    if a.get("attention_mask") is not None:
        return plain, "a 2D attention mask (it hides padding, not one sequence from another)"
    positions = a.get("position_ids")
    if "flash" in (implementation or ""):
        if a.get("cu_seq_lens_q") is not None and rows == 1:
            return [_cu_starts(a["cu_seq_lens_q"], length)], f"{implementation} with cu_seq_lens"
        if positions is not None and rows == 1:
            return _starts_from_positions(ids, positions), f"{implementation}: sequences found from position_ids"
        return plain, f"{implementation} with no mask and no cu_seq_lens: plain causal"
    other = rec.other_inputs
    use_cache = other.get("use_cache") if isinstance(other.get("use_cache"), bool) else config_use_cache
    if other.get("past_key_values") not in (None, "NoneType") or use_cache:
        return plain, "no mask and a cache in use (use_cache on): transformers reads no sequences from position_ids"
    if positions is None:
        return plain, "no mask, no position_ids: plain causal"
    return _starts_from_positions(ids, positions), "no mask, no cache: the block-causal mask transformers builds from position_ids"


def _starts_from_positions(ids: Any, positions: Any) -> list[list[int]]:
    import torch

    from inspector.core.batches.layout import attention_starts

    batch = {"input_ids": torch.as_tensor(ids), "position_ids": torch.as_tensor(positions)}
    return [[0 if s is None else int(s) for s in row] for row in attention_starts(batch)]


def micro_stats(rec: MicroRecord, *, shifts: bool, implementation: str | None, config_use_cache: bool | None) -> dict[str, Any]:
    """One micro-batch's counts: tokens, trained tokens, sequences with none, sequences that see others."""
    trained = rec.trained(shifts)
    real = rec.real()
    seqs = sequences(rec)
    window, how = attention_window(rec, implementation, config_use_cache)
    untrained, crossing, packed_rows = [], [], 0
    for b, row in enumerate(seqs):
        packed_rows += len(row) > 1
        for k, (s, e) in enumerate(row):
            n = int(trained[b, s:e].sum())
            if n == 0:
                untrained.append([b, s, e])
            elif k > 0 and any(0 <= window[b][t] < s for t in range(s, e) if real[b, t]):  # -1: attends to nothing
                crossing.append([b, s, e])
    return {
        "micro_step": rec.micro_step,
        "rows": int(trained.shape[0]),
        "tokens": int(real.sum()),
        "trained": int(trained.sum()),
        "sequences": sum(len(r) for r in seqs),
        "untrained_count": len(untrained),
        "untrained": untrained[:KEEP],
        "packed_rows": packed_rows,
        "crossing_count": len(crossing),
        "crossing": crossing[:KEEP],
        "attention": how,
        "num_items_in_batch": rec.num_items_in_batch,
        "num_items_source": rec.num_items_source,
        "loss": rec.loss,
        "ce_sum": rec.ce_sum,
        "forward_calls": rec.forward_calls,
    }


def stop_counts(records: list[MicroRecord], stop_ids: list[int], shifts: bool) -> dict[str, list[int]]:
    """Per stop token: [times it is a real token past the first position, times it is a trained target]."""
    out = {}
    for tid in stop_ids:
        seen = trained_n = 0
        for rec in records:
            is_it = rec.arrays["input_ids"] == tid
            is_it[:, 0] = False
            seen += int((is_it & rec.real()).sum())
            trained_n += int((is_it & rec.trained(shifts)).sum())
        out[str(tid)] = [seen, trained_n]
    return out


def rank_stats(
    records: list[MicroRecord],
    *,
    rank: int,
    stop_ids: list[int],
    shifts: bool,
    implementation: str | None,
    config_use_cache: bool | None,
    epoch: tuple[list[list[int]] | None, str],
) -> dict[str, Any]:
    """Everything this rank contributes to the audit of its first step."""
    return {
        "rank": rank,
        "micro_batches": [
            micro_stats(r, shifts=shifts, implementation=implementation, config_use_cache=config_use_cache) for r in records
        ],
        "stop_tokens": stop_counts(records, stop_ids, shifts),
        "epoch_batches": epoch[0],
        "epoch_how": epoch[1],
    }
