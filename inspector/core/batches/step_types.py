"""What one optimizer step is made of, as the batch view shows it: the types every other module of
`core.batches` builds, and the report, the views and the exercises read.

A `StepView` holds the step's `MicroBatch`es (one per micro-step and simulated rank), each with its
collated tensors and, per token, its `Segment` (the run of a source row it belongs to), why its label
is -100 and what it can attend to. Both are frozen and built whole: `steps.inspect_step` computes every
value first (`layout.lay_out`, `token_weights.step_weights`), then constructs them. Plain data
only: nothing here imports torch, TRL or the rest of the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Why a label is -100 (or, for "first position", why a kept label trains nothing).
PADDING = "padding"
PACK_BOUNDARY = "pack boundary"
FIRST = "first position"
COLLATOR = "collator"

TOLERANCE = 1e-4  # a difference of p(next token) above this is a dependence, not rounding


@dataclass(frozen=True)
class Piece:
    """A run of one source row's tokens inside a prepared (maybe packed) sequence."""

    index: int  # the row's index in the dataset handed to SFTTrainer
    start: int  # where the run starts in the prepared sequence
    length: int
    row_start: int  # the offset of its first token among the row's own tokens


@dataclass
class Segment:
    """A piece placed in a collated micro-batch: positions [start, end) of batch row `batch_row`.

    `trained` is counted while the micro-batch is laid out (`layout.lay_out`), before it is built."""

    row: int | None  # the row's number in the data (None: a recording's, which holds no rows)
    index: int | None  # the row's index in the dataset handed to SFTTrainer
    batch_row: int
    start: int
    end: int
    row_start: int | None  # the offset of its first token among the row's own tokens
    attends_from: int  # the first position its tokens can attend to in the trainer's forward
    trained: int = 0  # its tokens whose label trains

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


@dataclass(frozen=True)
class Dropped:
    """Tokens of a row that never reach a batch: truncation, bfd's overflow, or the whole row."""

    row: int  # the row's number in the data
    index: int  # its index in the dataset handed to SFTTrainer
    start: int  # [start, end) among the row's own tokens
    end: int
    tokens: list[int]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "tokens": self.tokens, "start": self.start, "end": self.end, "reason": self.reason}


@dataclass(frozen=True)
class ExampleWeight:
    """One source row's share of the step: its trained tokens and their total weight."""

    row: int
    trained_tokens: int
    weights: dict[str, float]  # per scheme (`token_weights.SCHEMES`)

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "trained_tokens": self.trained_tokens, "weights": self.weights}


@dataclass(frozen=True)
class SegmentCheck:
    """One segment's p(next token) alone against inside its micro-batch (`attention.check_attention`)."""

    rank: int
    micro_step: int
    batch_row: int
    row: int
    start: int
    end: int
    max_diff: float  # the trainer's forward against the segment alone
    at: int | None  # the position (in the batch row) of the predicted token where it is largest
    token: str | None
    max_diff_plain_call: float
    at_plain_call: int | None
    depends_on: list[int] = field(default_factory=list)  # earlier rows its predictions depended on (trainer's forward)
    depends_on_plain_call: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "micro_step": self.micro_step,
            "batch_row": self.batch_row,
            "row": self.row,
            "start": self.start,
            "end": self.end,
            "max_diff": self.max_diff,
            "at": self.at,
            "token": self.token,
            "depends_on": self.depends_on,
            "max_diff_plain_call": self.max_diff_plain_call,
            "at_plain_call": self.at_plain_call,
            "depends_on_plain_call": self.depends_on_plain_call,
        }


@dataclass(frozen=True)
class AttentionReport:
    """Whether packed segments' predictions depend on the rows before them (`--check-attention`)."""

    implementation: str  # the attention implementation the model ran with
    segments: list[SegmentCheck]
    tolerance: float = TOLERANCE
    plain_use_cache: bool | None = None  # the model's own config.use_cache, which the plain call runs with

    @property
    def max_diff(self) -> float:
        return max((s.max_diff for s in self.segments), default=0.0)

    @property
    def max_diff_plain_call(self) -> float:
        return max((s.max_diff_plain_call for s in self.segments), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "implementation": self.implementation,
            "tolerance": self.tolerance,
            "plain_call_use_cache": self.plain_use_cache,
            "max_diff": self.max_diff,
            "max_diff_plain_call": self.max_diff_plain_call,
            "segments": [s.to_dict() for s in self.segments],
        }


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch of the step on one simulated rank, as the collator gave it to the model, with
    each token's source row, segment, reason for -100, attention window and weight.

    Per-token lists are indexed [batch row][position], like the batch's tensors."""

    step: int  # the optimizer step, from 1
    micro_step: int  # 0-based, within the step
    rank: int  # the simulated process it goes to
    samples: list[int]  # indices into the trainer's prepared dataset, as its batch sampler gave them
    batch: dict[str, Any]  # the collator's tensors, as the model gets them
    texts: list[list[str]]  # each token's text, whitespace made visible
    segments: list[list[Segment]]  # per batch row, the runs of source rows in it, in order
    token_segment: list[list[int | None]]  # index into segments[batch_row]; None: padding
    reasons: list[list[str | None]]  # why the label trains nothing (PADDING, the mask reason...); None: trained
    attends_from: list[list[int | None]]  # the first position the token can attend to; None: padding
    dropped: list[Dropped]  # what truncation or bfd's overflow cut from the rows this micro-batch holds
    weights: dict[str, list[list[float]]]  # per scheme (`token_weights.SCHEMES`), each token's weight in the step
    # A recorded micro-batch's own values (`recorder.step_view`): num_items_in_batch, loss, ce_sum, the
    # attention as judged, the other inputs. None: simulated.
    recorded: dict[str, Any] | None = None

    def rows_of(self, name: str) -> list[list[int]] | None:
        """The collator's tensor `name` as lists, None where the collator sent none."""
        value = self.batch.get(name)
        return None if value is None else value.tolist()

    @property
    def trained(self) -> list[list[bool]]:
        """Whether each token's label trains."""
        return [[r is None for r in row] for row in self.reasons]

    def row_of(self, batch_row: int, t: int) -> int | None:
        """The number in the data of the row token `t` of `batch_row` comes from (None: padding)."""
        k = self.token_segment[batch_row][t]
        return None if k is None else self.segments[batch_row][k].row

    def to_dict(self) -> dict[str, Any]:
        out = {
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
        if self.recorded is not None:
            out["recorded"] = self.recorded
        return out


@dataclass(frozen=True)
class StepView:
    """One optimizer step (within the first epoch) of TRL's SFTTrainer: its micro-batches on every
    simulated rank, the settings that made them, how the loss is normalised and each example's share.
    What `causallm-inspect batch` prints (`report.format_view`) and `--json` writes (`to_dict`)."""

    step: int  # from 1
    steps_per_epoch: int | None  # None: a recording's (it holds no epoch)
    micro_batches_per_epoch: int | None  # per rank
    world_size: int  # simulated ranks
    micro_batches: list[MicroBatch]  # micro-step by micro-step, rank by rank
    settings: dict[str, Any]  # the trainer's arguments that shape a batch, and the world size
    source: str  # what the rows are, for the header
    dataset_rows: int | None  # rows handed to SFTTrainer (None: a recording's)
    prepared_rows: int | None  # sequences TRL prepared from them (packed or not)
    mask_reason: str  # why the dataset's own masks are -100 ("prompt", "not assistant"...)
    items_per_rank: list[int]  # trained tokens per rank, as get_batch_samples counts
    num_items_in_batch: int | None  # what the loss is divided by (None: each micro-batch's own count)
    normalisation: str  # the loss's normalisation, in words
    examples: list[ExampleWeight]  # each source row's share of the step
    dropped_rows: list[Dropped]  # rows no batch of the epoch holds (the first 1000)
    dropped_summary: dict[str, int]  # the epoch's totals of what truncation and dropping cut
    notes: list[str] = field(default_factory=list)  # what was changed to make the step possible
    attention: AttentionReport | None = None  # with --check-attention
    # Read from a recording (`recorder.step_view`): its folder, run, versions, recorded steps. A recording
    # holds what the model received and nothing of where it came from: the fields about the data (rows,
    # segments' rows, samples, the epoch) are None or empty, never guessed. None: simulated.
    recording: dict[str, Any] | None = None

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
        if self.recording is not None:
            out["recording"] = self.recording
        return out
