"""The micro-batches of one optimizer step, taken from TRL's own SFTTrainer.

Nothing here re-implements TRL or the Trainer. The `SFTTrainer` is constructed (no
training, no optimizer, nothing written) and its own `get_train_dataloader()` gives the
micro-batches: TRL's prepared dataset (tokenized, labelled, truncated, packed) and TRL's
collator, in the order of the Trainer's own sampler. A step is the Trainer's: its
`gradient_accumulation_steps` micro-batches (fewer for the last step of an epoch), reached
with accelerate's `skip_first_batches`, as the Trainer does when it resumes. A simulated
rank r of W gets the loader accelerate's `prepare_data_loader` builds with
`num_processes=W, process_index=r` (no process is started).

Which source row each token comes from is known without guessing: a row-index column is
added to the dataset before TRL prepares it. TRL keeps it through tokenizing and
truncating; packing keeps only `input_ids` and `labels`, so the unpacked rows (TRL's own
`_prepare_dataset` without truncation) are packed again by TRL's own `pack_dataset` with two
extra list columns (each token's row and its offset in the row), and every packed sequence
used is checked to equal the trainer's, token for token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from inspector.core.batches.setup import ROW_COLUMN, BatchSetup
from inspector.core.batches.token_weights import ExampleWeight, apply_weights
from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.errors import InspectorError

_ROWS = "causallm_inspect_rows"  # packing-provenance columns: each token's dataset index...
_POS = "causallm_inspect_pos"  # ... and its offset among that row's own tokens

# Why a label is -100 (or, for "first position", why a kept label trains nothing).
PADDING = "padding"
PACK_BOUNDARY = "pack boundary"
FIRST = "first position"
COLLATOR = "collator"


@dataclass(frozen=True)
class Piece:
    """A run of one source row's tokens inside a prepared (maybe packed) sequence."""

    index: int  # the row's index in the dataset handed to SFTTrainer
    start: int  # where the run starts in the prepared sequence
    length: int
    row_start: int  # the offset of its first token among the row's own tokens


@dataclass
class Segment:
    """A piece placed in a collated micro-batch: positions [start, end) of batch row `batch_row`."""

    row: int  # the row's number in the data
    index: int
    batch_row: int
    start: int
    end: int
    row_start: int
    attends_from: int  # the first position its tokens can attend to in the trainer's forward
    trained: int = 0

    @property
    def crosses(self) -> bool:
        """Its tokens can attend to tokens of the segments before it."""
        return self.attends_from < self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "start": self.start,
            "end": self.end,
            "row_start": self.row_start,
            "attends_from": self.attends_from,
            "trained_tokens": self.trained,
        }


@dataclass
class Dropped:
    """Tokens of a row that never reach a batch: truncation, bfd's overflow, or the whole row."""

    row: int
    index: int
    start: int
    end: int
    tokens: list[int]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "tokens": self.tokens, "start": self.start, "end": self.end, "reason": self.reason}


@dataclass
class MicroBatch:
    step: int
    micro_step: int  # 0-based, within the step
    rank: int
    samples: list[int]  # indices into the trainer's prepared dataset
    batch: dict[str, Any]  # the collator's tensors, as the model gets them
    texts: list[list[str]] = field(default_factory=list)
    segments: list[list[Segment]] = field(default_factory=list)
    token_segment: list[list[int | None]] = field(default_factory=list)  # index into segments[batch_row]
    reasons: list[list[str | None]] = field(default_factory=list)  # None: trained
    attends_from: list[list[int | None]] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    weights: dict[str, list[list[float]]] = field(default_factory=dict)

    def rows_of(self, name: str) -> list[list[int]] | None:
        value = self.batch.get(name)
        return None if value is None else value.tolist()

    @property
    def trained(self) -> list[list[bool]]:
        return [[r is None for r in row] for row in self.reasons]

    def row_of(self, batch_row: int, t: int) -> int | None:
        k = self.token_segment[batch_row][t]
        return None if k is None else self.segments[batch_row][k].row

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "micro_step": self.micro_step,
            "rank": self.rank,
            "input_ids": self.rows_of("input_ids"),
            "labels": self.rows_of("labels"),
            "position_ids": self.rows_of("position_ids"),
            "attention_mask": self.rows_of("attention_mask"),
            "samples": self.samples,
            "segments": [[s.to_dict() for s in row] for row in self.segments],
            "weights": self.weights,
            "dropped": [d.to_dict() for d in self.dropped],
            "tokens": {
                "text": self.texts,
                "row": [[self.row_of(b, t) for t in range(len(r))] for b, r in enumerate(self.token_segment)],
                "segment": self.token_segment,
                "reason": self.reasons,
                "attends_from": self.attends_from,
            },
        }


@dataclass
class StepView:
    step: int
    steps_per_epoch: int
    micro_batches_per_epoch: int
    world_size: int
    micro_batches: list[MicroBatch]
    settings: dict[str, Any]
    source: str
    dataset_rows: int
    prepared_rows: int
    mask_reason: str
    items_per_rank: list[int] = field(default_factory=list)  # trained tokens per rank, as get_batch_samples counts
    num_items_in_batch: int | None = None  # what the loss is divided by (None: each micro-batch's own count)
    normalisation: str = ""
    examples: list[ExampleWeight] = field(default_factory=list)
    dropped_rows: list[Dropped] = field(default_factory=list)
    dropped_summary: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    attention: Any = None  # attention.AttentionReport, with --check-attention

    def to_dict(self) -> dict[str, Any]:
        out = {
            "step": self.step,
            "steps_per_epoch": self.steps_per_epoch,
            "micro_batches_per_epoch": self.micro_batches_per_epoch,
            "world_size": self.world_size,
            "settings": self.settings,
            "source": self.source,
            "dataset_rows": self.dataset_rows,
            "prepared_rows": self.prepared_rows,
            "num_items_in_batch": self.num_items_in_batch,
            "items_per_rank": self.items_per_rank,
            "normalisation": self.normalisation,
            "micro_batches": [mb.to_dict() for mb in self.micro_batches],
            "examples": [e.to_dict() for e in self.examples],
            "dropped_rows": [d.to_dict() for d in self.dropped_rows],
            "dropped_summary": self.dropped_summary,
            "notes": self.notes,
        }
        if self.attention is not None:
            out["attention"] = self.attention.to_dict()
        return out


class _Unchanged:
    """The trainer's own arguments with a few values replaced, for one more call of its preparation."""

    def __init__(self, args: Any, **replaced: Any) -> None:
        self._args, self._replaced = args, replaced

    def __getattr__(self, name: str) -> Any:
        return self._replaced[name] if name in self._replaced else getattr(self._args, name)


class _Recorded:
    """A batch sampler that notes the indices of every batch it hands out, in order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[Any]:
        for batch in self.inner:
            self.batches.append([int(i) for i in batch])
            yield batch

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextmanager
def lean_tokenizer_hashing(tokenizer: Any) -> Iterator[None]:
    """While inside, datasets fingerprints this tokenizer without its `_vocab` and `_merges`.

    TRL's tokenizing `map` passes the tokenizer in `fn_kwargs`, so datasets hashes it to find
    the cached result; transformers 5 keeps the vocabulary and merges in Python beside the
    backend tokenizer, and pickling them takes 6 s for Gemma's 262,144 tokens (1 s without:
    the backend tokenizer, which holds the same vocabulary and merges, is still hashed, as are
    every other attribute). The fingerprint still changes with any change of the tokenizer;
    it only differs from the one a plain TRL run computes, so the two do not share cache files.
    """
    from datasets.utils import _dill

    kind = type(tokenizer)
    had = kind in _dill.Pickler.dispatch
    before = _dill.Pickler.dispatch.get(kind)

    def lean(pickler: Any, obj: Any) -> None:
        held = {k: obj.__dict__.pop(k) for k in ("_vocab", "_merges") if k in obj.__dict__}
        try:
            _dill._save_transformersPreTrainedTokenizerBase(pickler, obj)
        finally:
            obj.__dict__.update(held)

    _dill.Pickler.dispatch[kind] = lean
    try:
        yield
    finally:
        if had:
            _dill.Pickler.dispatch[kind] = before
        else:
            _dill.Pickler.dispatch.pop(kind, None)


@contextmanager
def sft_trainer(model: Any, tokenizer: Any, setup: BatchSetup) -> Iterator[Any]:
    """TRL's SFTTrainer for the setup (its dataset carrying a row-index column), undone afterwards:
    the model's forward (TRL patches in its fused head), the tokenizer's chat template and
    accelerate's shared state are put back as they were."""
    from inspector.core.labels.trl_bridge import accelerate_state_kept
    from inspector.core.quiet import quiet_libraries

    quiet_libraries()
    patched_before = "forward" in vars(model)
    own_template = getattr(tokenizer, "chat_template", None)
    config = getattr(model, "config", None)
    own_use_cache = getattr(config, "use_cache", None)  # Trainer.__init__ sets it to args.use_cache (False)
    try:
        with accelerate_state_kept(), lean_tokenizer_hashing(tokenizer):
            trainer = _make(model, tokenizer, setup)
            size = setup.sft.per_device_train_batch_size
            if not setup.batch_size_given and 0 < len(trainer.train_dataset) < size:
                import dataclasses

                # The flags' default batch size, lowered to what a small dataset can fill (said in the notes).
                setup.sft = dataclasses.replace(setup.sft, per_device_train_batch_size=len(trainer.train_dataset))
                setup.lowered_batch_size = size
                if not patched_before:
                    vars(model).pop("forward", None)
                trainer = _make(model, tokenizer, setup)
        trainer.causallm_inspect_setup = setup
        trainer.causallm_inspect_use_cache = own_use_cache
        with lean_tokenizer_hashing(tokenizer):  # the provenance pass tokenizes once more
            yield trainer
    finally:
        if config is not None and own_use_cache is not None:
            config.use_cache = own_use_cache
        if not patched_before:
            vars(model).pop("forward", None)
        if hasattr(tokenizer, "chat_template"):
            tokenizer.chat_template = own_template


def _make(model: Any, tokenizer: Any, setup: BatchSetup) -> Any:
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    dataset = setup.dataset
    if ROW_COLUMN not in dataset.column_names:
        dataset = dataset.map(lambda _, i: {ROW_COLUMN: i}, with_indices=True)
        setup.dataset = dataset
    if len(dataset) == 0:
        raise InspectorError("the dataset has no rows", "give at least one example")
    try:
        trainer = SFTTrainer(model=model, args=setup.sft, train_dataset=dataset, processing_class=tokenizer)
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        text = str(exc).strip().splitlines()
        if "chat_template is not set" in str(exc):
            raise InspectorError(
                "the dataset is conversational and the model has no chat template (TRL's SFTTrainer needs one)",
                "pass --chat-template NAME (`causallm-inspect templates` lists them) or a .jinja file, or set "
                "chat_template_path in the config",
            ) from exc
        raise InspectorError(f"TRL's SFTTrainer refuses this setup: {text[0] if text else type(exc).__name__}", "change that setting") from exc
    trainer.remove_callback(PrinterCallback)
    return trainer


@contextmanager
def _as_rank(world_size: int, rank: int) -> Iterator[None]:
    """While inside, the Trainer's accelerator prepares its data loader as process `rank` of `world_size`."""
    if world_size == 1:
        yield
        return
    import accelerate.accelerator as module

    real = module.prepare_data_loader

    def sharded(*args: Any, **kwargs: Any) -> Any:
        kwargs.update(num_processes=world_size, process_index=rank)
        return real(*args, **kwargs)

    module.prepare_data_loader = sharded
    try:
        yield
    finally:
        module.prepare_data_loader = real


def rank_loader(trainer: Any, world_size: int, rank: int) -> Any:
    """The Trainer's own training data loader, as process `rank` of `world_size` would get it."""
    from transformers import set_seed

    set_seed(trainer.args.seed)  # as right after Trainer.__init__, which seeds the sampler
    with _as_rank(world_size, rank):
        return trainer.get_train_dataloader()


def take_step(loader: Any, step: int, accumulation: int, steps_per_epoch: int) -> list[tuple[list[int], dict[str, Any]]]:
    """The micro-batches of optimizer step `step` (1-based) from a Trainer's data loader, each with the
    dataset indices its batch sampler gave: the first (step-1)*accumulation batches are skipped by
    accelerate's `skip_first_batches` (indices only, nothing is collated)."""
    from accelerate.data_loader import SkipBatchSampler, skip_first_batches

    skip = (step - 1) * accumulation
    count = accumulation
    if step == steps_per_epoch:
        count = len(loader) - skip
    skipping = skip_first_batches(loader, skip)
    holder = skipping.batch_sampler if isinstance(skipping.batch_sampler, SkipBatchSampler) else skipping.sampler
    recorded = _Recorded(holder.batch_sampler)
    holder.batch_sampler = recorded
    out = []
    iterator = iter(skipping)
    for j in range(count):
        batch = next(iterator)
        out.append((recorded.batches[skip + j], batch))
    iterator.close()
    if hasattr(skipping, "end"):
        skipping.end()
    return out


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


def _attention_starts(batch: dict[str, Any]) -> list[list[int | None]]:
    """The first position each token can attend to in the trainer's forward (compute_loss passes
    use_cache=False): with an attention mask, every earlier unmasked token; without one, transformers
    builds the block-causal mask from position_ids (`find_packed_sequence_indices`); else plain causal."""
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


def _token_texts(tokenizer: Any, rows: list[list[int]]) -> list[list[str]]:
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


def lay_out(mb: MicroBatch, prov: Provenance, padding_free: bool, shifts: bool, mask_reason: str) -> None:
    """Each token's segment, row, reason and attention window, checked against the row's own tokens."""
    ids = mb.batch["input_ids"].tolist()
    labels = mb.batch["labels"].tolist()
    positions = mb.rows_of("position_ids")
    starts = _attention_starts(mb.batch)
    n_rows, length = len(ids), len(ids[0]) if ids else 0
    expected_rows = 1 if padding_free else len(mb.samples)
    if n_rows != expected_rows:
        raise RuntimeError(f"the collator gave {n_rows} rows for {len(mb.samples)} sequences")
    mb.segments = [[] for _ in range(n_rows)]
    mb.token_segment = [[None] * length for _ in range(n_rows)]
    mb.reasons = [[PADDING] * length for _ in range(n_rows)]
    mb.attends_from = [[None] * length for _ in range(n_rows)]
    offset = 0
    seen: dict[int, None] = {}
    for k, sample in enumerate(mb.samples):
        b = 0 if padding_free else k
        base = offset if padding_free else 0
        size = 0
        for piece in prov.pieces(sample):
            source = prov.row(piece.index)
            start = base + piece.start
            seg = Segment(prov.setup.row_number(piece.index), piece.index, b, start, start + piece.length, piece.row_start, 0)
            seg.attends_from = starts[b][start] if starts[b][start] is not None else start
            mb.segments[b].append(seg)
            seen.setdefault(piece.index)
            for j in range(piece.length):
                t, src = start + j, piece.row_start + j
                if ids[b][t] != source["input_ids"][src]:
                    raise RuntimeError(f"token {t} of micro-batch {mb.micro_step} is not row {seg.row}'s token {src}")
                mb.token_segment[b][t] = len(mb.segments[b]) - 1
                mb.attends_from[b][t] = starts[b][t]
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
                mb.reasons[b][t] = reason
            size = max(size, piece.start + piece.length)
        offset += size
    mb.texts = _token_texts(prov.trainer.processing_class, ids)
    mb.dropped = [d for d in (prov.dropped_of(i) for i in seen) if d is not None]


def _settings(trainer: Any, world_size: int) -> dict[str, Any]:
    args = trainer.args
    acc = args.accelerator_config
    return {
        "packing": args.packing,
        "packing_strategy": args.packing_strategy if args.packing else None,
        "padding_free": bool(getattr(trainer, "padding_free", args.padding_free)),
        "max_length": args.max_length,
        "truncation_mode": args.truncation_mode,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "completion_only_loss": bool(getattr(trainer, "completion_only_loss", False)),
        "assistant_only_loss": args.assistant_only_loss,
        "seed": args.seed,
        "data_seed": args.data_seed,
        "train_sampling_strategy": args.train_sampling_strategy,
        "shuffle_dataset": args.shuffle_dataset,
        "dataloader_drop_last": args.dataloader_drop_last,
        "average_tokens_across_devices": args.average_tokens_across_devices,
        "even_batches": acc.even_batches,
        "split_batches": acc.split_batches,
        "world_size": world_size,
    }


def check_step(step: int, world_size: int) -> None:
    """A step and a world size that can exist (whether the epoch has that step is known only later)."""
    if world_size < 1:
        raise InspectorError(f"--world-size {world_size} is not a number of processes", "pass 1 or more")
    if step < 1:
        raise InspectorError(f"--step {step} is not a step: steps are counted from 1", "pass --step 1 or more")


def inspect_step(trainer: Any, *, step: int = 1, world_size: int = 1, provenance: Provenance | None = None) -> StepView:
    """Optimizer step `step` (1-based, within the first epoch) of the trainer, on each of `world_size` ranks.

    `provenance`: one made before for this trainer, so that reading many steps prepares the rows once."""
    setup: BatchSetup = trainer.causallm_inspect_setup
    check_step(step, world_size)
    if world_size > 1 and trainer.args.accelerator_config.dispatch_batches:
        raise InspectorError(
            "dispatch_batches is on: rank 0 reads every batch and sends slices, which cannot be simulated here",
            "set accelerator_config's dispatch_batches to false, or --world-size 1",
        )
    prepared = len(trainer.train_dataset)
    size = trainer.args.per_device_train_batch_size
    if prepared == 0:
        raise InspectorError("TRL's preparation left no sequence to train on", "check max_length and the labels")
    if size > prepared:
        what = ("packed sequence" if trainer.args.packing else "row") + ("s" if prepared != 1 else "")
        raise InspectorError(
            f"per_device_train_batch_size {size} is larger than the dataset: TRL prepared {prepared} {what} "
            f"(from {len(setup.dataset)} rows), so no batch is full",
            f"lower it to {prepared} or less, or give more rows",
        )
    accumulation = trainer.args.gradient_accumulation_steps
    loaders = [rank_loader(trainer, world_size, r) for r in range(world_size)]
    per_epoch = len(loaders[0])
    steps_per_epoch = max(per_epoch // accumulation + int(per_epoch % accumulation > 0), 1)
    if step > steps_per_epoch:
        raise InspectorError(
            f"--step {step} is past the end of the epoch: it has {steps_per_epoch} optimizer "
            f"step{'s' if steps_per_epoch != 1 else ''} ({per_epoch} micro-batches per rank, "
            f"{accumulation} per step)",
            f"pass --step 1 to {steps_per_epoch}",
        )
    prov = provenance if provenance is not None else Provenance(trainer, setup)
    padding_free = bool(getattr(trainer.data_collator, "padding_free", False))
    shifts = bool(getattr(trainer, "_loss_shifts_labels", True))
    mask_reason = prov.mask_reason()
    micro_batches: list[MicroBatch] = []
    per_rank: list[list[MicroBatch]] = []
    for rank, loader in enumerate(loaders):
        taken = take_step(loader, step, accumulation, steps_per_epoch)
        mine = []
        for m, (samples, batch) in enumerate(taken):
            mb = MicroBatch(step, m, rank, samples, batch)
            lay_out(mb, prov, padding_free, shifts, mask_reason)
            mine.append(mb)
        per_rank.append(mine)
    for m in range(max(len(r) for r in per_rank)):  # micro-step by micro-step, rank by rank
        micro_batches += [r[m] for r in per_rank if m < len(r)]
    dropped_rows, summary = prov.dropped_rows()
    view = StepView(
        step=step,
        steps_per_epoch=steps_per_epoch,
        micro_batches_per_epoch=per_epoch,
        world_size=world_size,
        micro_batches=micro_batches,
        settings=_settings(trainer, world_size),
        source=setup.source,
        dataset_rows=len(setup.dataset),
        prepared_rows=prepared,
        mask_reason=mask_reason,
        dropped_rows=dropped_rows,
        dropped_summary=summary,
    )
    lowered = setup.lowered_batch_size
    if lowered:
        view.notes.append(
            f"per_device_train_batch_size {size}: the default {lowered} is more than the {prepared} "
            f"sequence{'s' if prepared != 1 else ''} TRL prepared (give --per-device-train-batch-size to choose)"
        )
    apply_weights(trainer, view, per_rank)
    return view



def build_step(
    loaded: Any,
    formatted: Sequence[Any],
    rows: Sequence[int],
    source: str,
    flags: dict[str, Any],
    *,
    step: int = 1,
    world_size: int = 1,
    config_file: str | None = None,
) -> StepView:
    """Optimizer step `step` of an SFTTrainer made with these SFTConfig flags (over `config_file`'s
    values, a `trl sft --config` YAML, where given) on formatted examples
    (the app's batch view; `batch` makes the same from its command line). Nothing is written but a
    temporary folder, removed before it returns."""
    import tempfile

    from inspector.core.batches.setup import check_values, examples_setup

    check_step(step, world_size)
    check_values(flags)
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-batch-") as tmp:
        setup = examples_setup(
            formatted, rows, source, flags, output_dir=tmp, device=loaded.device, config_file=config_file
        )
        with sft_trainer(loaded.model, loaded.tokenizer, setup) as trainer:
            return inspect_step(trainer, step=step, world_size=world_size)
