"""Where each token of the trainer's prepared sequences comes from: which source row, which offset.

A row-index column (`setup.ROW_COLUMN`) is added to the dataset before TRL prepares it. TRL keeps
it through tokenizing and truncating; packing keeps only `input_ids` and `labels`, so the unpacked
rows (TRL's own `_prepare_dataset` without truncation) are packed again by TRL's own `pack_dataset`
with two extra list columns (each token's row and its offset in the row), and every packed sequence
used is checked to equal the trainer's, token for token. Also what never reaches a batch: the
tokens truncation or bfd's overflow cut, and the rows TRL drops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspector.core.batches.setup import ROW_COLUMN, BatchSetup
from inspector.core.batches.step_types import Dropped, Piece

_ROWS = "causallm_inspect_rows"  # packing-provenance columns: each token's dataset index...
_POS = "causallm_inspect_pos"  # ... and its offset among that row's own tokens


class _Unchanged:
    """The trainer's own arguments with a few values replaced, for one more call of its preparation."""

    def __init__(self, args: Any, **replaced: Any) -> None:
        self._args, self._replaced = args, replaced

    def __getattr__(self, name: str) -> Any:
        return self._replaced[name] if name in self._replaced else getattr(self._args, name)


class Provenance:
    """Where the tokens of the trainer's prepared sequences come from."""

    def __init__(self, trainer: Any, setup: BatchSetup) -> None:
        self.trainer = trainer
        self.setup = setup
        args = trainer.args
        self.packing = bool(args.packing)
        self.strategy = args.packing_strategy if self.packing else None
        self.max_length = args.max_length
        self.keep_end = args.truncation_mode == "keep_end"
        self.prepared = trainer.train_dataset
        # TRL's own preparation once more, without truncation or shuffling: every row whole, in order.
        self.unpacked = trainer._prepare_dataset(
            setup.dataset,
            trainer.processing_class,
            _Unchanged(args, max_length=None, shuffle_dataset=False),
            False,
            None,
            "train",
        )
        self.packed = self._repack() if self.packing else None
        self._rows: dict[int, dict[str, list[int]]] = {}
        self._pieces: dict[int, list[Piece]] = {}
        self._checked: set[int] = set()

    def _repack(self) -> Any:
        """TRL's packing of the unpacked rows, as `_prepare_dataset` does it, carrying two more list columns."""
        from trl.data_utils import pack_dataset

        args = self.trainer.args

        def provenance(batch: dict[str, list]) -> dict[str, list]:
            rows = [[i] * len(ids) for i, ids in zip(batch[ROW_COLUMN], batch["input_ids"])]
            return {_ROWS: rows, _POS: [list(range(len(ids))) for ids in batch["input_ids"]]}

        ds = self.unpacked.map(provenance, batched=True, num_proc=args.dataset_num_proc)
        ds = ds.select_columns(["input_ids", "labels", _ROWS, _POS])
        if args.shuffle_dataset:
            ds = ds.shuffle(seed=args.seed)
        ds = pack_dataset(ds, args.max_length, args.packing_strategy, {"num_proc": args.dataset_num_proc})
        if args.shuffle_dataset:
            ds = ds.shuffle(seed=args.seed)
        return ds

    def row(self, index: int) -> dict[str, list[int]]:
        """A row of the dataset, whole, as TRL tokenized and labelled it."""
        if index not in self._rows:
            item = self.unpacked[index]
            self._rows[index] = {"input_ids": list(item["input_ids"]), "labels": list(item["labels"])}
        return self._rows[index]

    def pieces(self, sample: int) -> list[Piece]:
        """The runs of source rows in prepared sequence `sample`, checked against the trainer's."""
        if sample in self._pieces:
            return self._pieces[sample]
        prepared = self.prepared[sample]
        if self.packed is None:
            index = int(prepared[ROW_COLUMN])
            n = len(prepared["input_ids"])
            full = len(self.row(index)["input_ids"])
            start = full - n if self.keep_end else 0
            pieces = [Piece(index, 0, n, start)]
        else:
            mine = self.packed[sample]
            for name in ("input_ids", "labels"):
                if list(mine[name]) != list(prepared[name]):
                    raise RuntimeError(f"packing sequence {sample} again did not give the trainer's {name}")
            rows, pos = mine[_ROWS], mine[_POS]
            bounds = _boundaries(mine.get("seq_lengths"), rows, pos)
            pieces = [Piece(int(rows[s]), s, e - s, int(pos[s])) for s, e in bounds]
        self._pieces[sample] = pieces
        return pieces

    def mask_reason(self) -> str:
        columns = set(self.setup.dataset.column_names)
        reasons = []
        if "labels" in columns:
            reasons.append("dataset labels")
        if getattr(self.trainer, "completion_only_loss", False) and "prompt" in columns:
            reasons.append("prompt")
        if self.trainer.args.assistant_only_loss:
            reasons.append("not assistant")
        return " / ".join(reasons) or "masked"

    def dropped_of(self, index: int) -> Dropped | None:
        """The tokens of row `index` that truncation or bfd's overflow cut off, if any."""
        ids = self.row(index)["input_ids"]
        n, cap = len(ids), self.max_length
        if cap is None or n <= cap or (self.packing and self.strategy != "bfd"):
            return None
        if self.packing:
            start, end, reason = cap, n, f"bfd packing truncates a row longer than max_length {cap}"
        elif self.keep_end:
            start, end, reason = 0, n - cap, f"truncation (keep_end) to max_length {cap}"
        else:
            start, end, reason = cap, n, f"truncation to max_length {cap}"
        return Dropped(self.setup.row_number(index), index, start, end, ids[start:end], reason)

    def dropped_rows(self, limit: int = 1000) -> tuple[list[Dropped], dict[str, int]]:
        """Rows no batch holds (the first `limit` of them, whole), and the epoch's totals of what is cut."""
        import numpy as np
        import pyarrow.compute as pc

        lengths = pc.list_value_length(self.unpacked.data.column("input_ids")).to_numpy(zero_copy_only=False)
        cap = self.max_length
        truncates = cap is not None and not (self.packing and self.strategy != "bfd")
        gone = np.zeros(len(lengths), dtype=bool)
        if not self.packing and cap is not None:
            kept = np.zeros(len(lengths), dtype=bool)
            kept[np.asarray(list(self.prepared[ROW_COLUMN]), dtype=np.int64)] = True
            gone = ~kept
            reason = "truncation left no trained token, so TRL drops the row"
        else:
            gone = lengths == 0
            reason = "the row has no tokens"
        cut = (lengths > cap) & ~gone if truncates else np.zeros(len(lengths), dtype=bool)
        summary = {
            "rows_truncated": int(cut.sum()),
            "tokens_truncated": int((lengths[cut] - cap).sum()) if truncates else 0,
            "rows_dropped": int(gone.sum()),
            "tokens_in_dropped_rows": int(lengths[gone].sum()),
        }
        rows = []
        for i in np.flatnonzero(gone)[:limit].tolist():
            ids = self.row(i)["input_ids"]
            rows.append(Dropped(self.setup.row_number(i), i, 0, len(ids), list(ids), reason))
        return rows, summary


def _boundaries(seq_lengths: Sequence[int] | None, rows: Sequence[int], pos: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each segment: TRL's seq_lengths (bfd), else each run of one row's consecutive tokens."""
    if seq_lengths is not None:
        out, at = [], 0
        for n in seq_lengths:
            out.append((at, at + int(n)))
            at += int(n)
        return out
    out, start = [], 0
    for t in range(1, len(rows) + 1):
        if t == len(rows) or rows[t] != rows[t - 1] or pos[t] != pos[t - 1] + 1:
            out.append((start, t))
            start = t
    return out
