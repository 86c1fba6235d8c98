"""Lesson 11's demo: the held-out example alone, inside a packed row, and through a plain call.

Everything goes through the batch core (`inspector.core.batches`): TRL's SFTTrainer packs the
lesson's examples with the held-out one among them, its own data loader gives the micro-batch,
and `check_attention` compares p(next token) of every segment alone and inside its micro-batch,
as SFTTrainer's compute_loss runs it (use_cache=False) and through a plain `model(**batch)` call
with the model's own cache setting. The loss of the packed micro-batch is computed both ways too,
in eval and in train mode.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from inspector.core.batches.setup import BatchSetup
from inspector.core.data.chat_format import FormattedExample


@dataclass
class PackedHeldOut:
    """The held-out example's segment in one packing strategy's micro-batch."""

    strategy: str
    max_length: int
    found: bool  # the held-out row has a segment of two or more tokens in some micro-batch
    first_in_row: bool = False  # nothing is packed before it
    max_diff: float = 0.0  # trainer's forward vs alone
    max_diff_plain_call: float = 0.0
    depends_on: list[int] = field(default_factory=list)
    depends_on_plain_call: list[int] = field(default_factory=list)
    at_plain_call: int | None = None
    sends_attention_mask: bool = False
    keys: list[str] = field(default_factory=list)  # what the collator sent, in its order
    restarts_positions: bool = False
    boundary_labels: list[int] = field(default_factory=list)  # the label at each segment's first token
    loss_trainer: dict[str, float] = field(default_factory=dict)  # "eval"/"train" -> loss
    loss_plain_call: dict[str, float] = field(default_factory=dict)


@dataclass
class PaddingCount:
    """Tokens the model runs per micro-batch over an epoch: real ones and those sent in all."""

    micro_batches: int
    real: int
    sent: int

    @property
    def per_micro_batch(self) -> float:
        return self.sent / self.micro_batches if self.micro_batches else 0.0


@dataclass
class PackingView:
    held_out_row: int
    held_out_tokens: int
    examples: int
    plain_use_cache: bool | None
    strategies: dict[str, PackedHeldOut] = field(default_factory=dict)
    packed: PaddingCount | None = None
    unpacked: PaddingCount | None = None
    batch_size: int = 1
    padding_examples: int = 0  # how many examples the padding count ran on


def _flags(strategy: str | None, max_length: int | None, batch_size: int) -> dict[str, Any]:
    flags: dict[str, Any] = {"per_device_train_batch_size": batch_size, "gradient_accumulation_steps": 1}
    if strategy is None:
        flags.update(packing=False, max_length=max_length)
    else:
        flags.update(packing=True, packing_strategy=strategy, max_length=max_length)
    return flags


def _padding_count(trainer: Any) -> PaddingCount:
    from transformers import set_seed

    set_seed(trainer.args.seed)
    mbs = real = sent = 0
    for batch in trainer.get_train_dataloader():
        ids = batch["input_ids"]
        mbs += 1
        sent += int(ids.numel())
        real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else int(ids.numel())
    return PaddingCount(mbs, real, sent)


def micro_batch_losses(trainer: Any, batch: dict[str, Any], use_cache: bool | None) -> tuple[dict[str, float], dict[str, float]]:
    """The micro-batch's mean loss as SFTTrainer's compute_loss computes it, and from a plain
    `model(**batch)` call with the model's own `config.use_cache`, in eval and train mode."""
    import torch

    model = trainer.model
    device = next(model.parameters()).device
    inputs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in batch.items()}
    trainer_loss: dict[str, float] = {}
    plain_loss: dict[str, float] = {}
    was_training = model.training
    config = model.config
    during = config.use_cache
    try:
        for mode in ("eval", "train"):
            model.train(mode == "train")
            with torch.no_grad():
                trainer_loss[mode] = float(trainer.compute_loss(model, dict(inputs)))
                if use_cache is not None:
                    config.use_cache = use_cache
                try:
                    plain_loss[mode] = float(model(**inputs).loss)
                finally:
                    config.use_cache = during
    finally:
        model.train(was_training)
    return trainer_loss, plain_loss


def _held_out_in(trainer: Any, setup: BatchSetup, index: int, strategy: str, max_length: int) -> tuple[PackedHeldOut, bool | None]:
    """The held-out example's last piece of two tokens or more (the one holding its end, where
    packing cut it), in whichever micro-batch of the epoch it fell: measured there."""
    from inspector.core.batches.attention import check_attention
    from inspector.core.batches.provenance import Provenance
    from inspector.core.batches.steps import inspect_step

    result = PackedHeldOut(strategy, max_length, found=False)
    prov = Provenance(trainer, setup)
    use_cache = setup.model_use_cache
    first = inspect_step(trainer, setup, step=1, provenance=prov)
    best: tuple[Any, Any, int, int] | None = None  # (view, micro-batch, batch row, segment)
    for step in range(1, first.steps_per_epoch + 1):
        view = first if step == 1 else inspect_step(trainer, setup, step=step, provenance=prov)
        for mb in view.micro_batches:
            for b, segments in enumerate(mb.segments):
                for k, s in enumerate(segments):
                    if s.index == index and s.end - s.start >= 2 and (
                        best is None or s.row_start > best[1].segments[best[2]][best[3]].row_start
                    ):
                        best = (view, mb, b, k)
    if best is None:
        return result, use_cache
    view, mb, b, k = best
    segments = mb.segments[b]
    seg = segments[k]
    report = check_attention(trainer, replace(view, micro_batches=[mb]), model_use_cache=use_cache)
    check = next(c for c in report.segments if c.batch_row == b and c.start == seg.start)
    labels = mb.batch["labels"][b].tolist()
    positions = mb.rows_of("position_ids")
    result.found = True
    result.first_in_row = k == 0
    result.max_diff = check.max_diff
    result.max_diff_plain_call = check.max_diff_plain_call
    result.depends_on = check.depends_on
    result.depends_on_plain_call = check.depends_on_plain_call
    result.at_plain_call = check.at_plain_call
    result.sends_attention_mask = "attention_mask" in mb.batch
    result.keys = list(mb.batch)
    result.restarts_positions = positions is not None and all(positions[b][s.start] == 0 for s in segments)
    result.boundary_labels = [labels[s.start] for s in segments[1:]]
    if strategy == "bfd":
        result.loss_trainer, result.loss_plain_call = micro_batch_losses(trainer, mb.batch, use_cache)
    return result, use_cache


def packing_view(
    model: Any,
    tokenizer: Any,
    examples: Sequence[FormattedExample],
    held_out: FormattedExample,
    *,
    batch_size: int = 1,
    device: str = "cpu",
    padding_examples: Sequence[FormattedExample] | None = None,
) -> PackingView:
    """Pack the examples and the held-out one (bfd, then wrapped) and measure the held-out segment.

    max_length is the sum of every example's length, so that bfd puts them all in one row (longest
    first: the held-out example is inside unless it is the longest); wrapped cuts blocks of half that."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.trainer import sft_trainer

    formatted = [*examples, held_out]
    rows = list(range(1, len(formatted) + 1))
    lengths = [len(tokenizer(fe.text)["input_ids"]) for fe in formatted]
    total = sum(lengths) + len(lengths)  # a token of slack each: TRL tokenizes prompt and completion apart
    index = len(formatted) - 1
    view = PackingView(rows[-1], lengths[-1], len(examples), None, batch_size=batch_size)
    source = f"the lesson's {len(examples)} examples and the held-out one"
    for strategy, cap in (("bfd", total), ("wrapped", max(2, total // 2))):
        with tempfile.TemporaryDirectory(prefix="causallm-inspect-lesson-") as tmp:
            setup = examples_setup(formatted, rows, source, _flags(strategy, cap, 1), output_dir=tmp, device=device)
            with sft_trainer(model, tokenizer, setup) as trainer:
                found, use_cache = _held_out_in(trainer, setup, index, strategy, cap)
                view.strategies[strategy] = found
                view.plain_use_cache = use_cache
    # Padding: `padding_examples` (default: the examples), packed by bfd to the longest pair vs unpacked.
    padded = list(padding_examples if padding_examples is not None else examples)
    view.padding_examples = len(padded)
    longest = sorted((len(tokenizer(fe.text)["input_ids"]) + 1 for fe in padded), reverse=True)
    cap = sum(longest[:2]) if len(longest) > 1 else longest[0]
    for name, strategy, size in (("packed", "bfd", 1), ("unpacked", None, batch_size)):
        with tempfile.TemporaryDirectory(prefix="causallm-inspect-lesson-") as tmp:
            flags = _flags(strategy, cap if strategy else None, min(size, len(padded)))
            where = f"{len(padded)} examples"
            setup = examples_setup(padded, list(range(1, len(padded) + 1)), where, flags, output_dir=tmp, device=device)
            with sft_trainer(model, tokenizer, setup) as trainer:
                setattr(view, name, _padding_count(trainer))
    return view


def _rows(rows: Sequence[int]) -> str:
    return ", ".join(str(r) for r in rows) if rows else "none"


def packing_text(v: PackingView, tolerance: float = 1e-4) -> str:
    """Lesson 11's demo panel as text: every number from `packing_view`."""
    lines = [
        f"the held-out example (row {v.held_out_row}, {v.held_out_tokens} tokens) packed with the "
        f"{v.examples} training examples; p(next token) teacher-forced, compared with the example alone",
    ]
    bfd, wrapped = v.strategies.get("bfd"), v.strategies.get("wrapped")
    for s in (bfd, wrapped):
        if s is None or not s.found:
            lines.append(f"{s.strategy if s else '?'}: the held-out example has no segment of two tokens or more")
            continue
        where = "first in its row (nothing packed before it)" if s.first_in_row else "after other examples in its row"
        sent = "an attention_mask" if s.sends_attention_mask else "no attention_mask"
        pos = ", position_ids restart at 0 at every segment" if s.restarts_positions else ""
        lines.append(f"{s.strategy} (max_length {s.max_length}): the held-out segment is {where}; the collator sends {sent}{pos}")
        lines.append(f"   the keys it sent: {', '.join(s.keys)}")
        if "cu_seq_lens_q" in s.keys:
            lines.append(
                "   (cu_seq_lens_q/k and max_length_q/k: where each segment starts and the longest, for FlashAttention's"
                " varlen kernels; seq_idx: each token's segment, for linear-attention layers)"
            )
        if s.boundary_labels:
            all_masked = all(x == -100 for x in s.boundary_labels)
            lines.append(
                f"   labels at the {len(s.boundary_labels)} segment boundaries: "
                + ("all -100 (no example is trained to predict the next one's first token)" if all_masked
                   else f"{s.boundary_labels} (not all -100)")
            )
        lines.append(
            f"   max |dp| vs alone: {s.max_diff:.2e} as SFTTrainer's forward runs it (use_cache=False), "
            f"{s.max_diff_plain_call:.2e} through a plain model(**batch) call"
        )
        lines.append(
            f"   the trainer's forward looked at earlier rows: {_rows(s.depends_on)}; "
            f"the plain call: {_rows(s.depends_on_plain_call)}"
        )
    if bfd is not None and bfd.found:
        cache = "its default" if v.plain_use_cache is None else f"use_cache={v.plain_use_cache}"
        if bfd.max_diff <= tolerance < bfd.max_diff_plain_call:
            lines.append(
                f"found: inside the bfd pack the trainer's forward equals the example alone (within {tolerance:g}); "
                f"the plain call ({cache}) differs: the block-causal mask is built from position_ids only without a cache"
            )
        elif bfd.max_diff_plain_call <= tolerance:
            lines.append(
                f"found: on this model the plain call ({cache}) also stays within {tolerance:g} of the example alone: "
                "its attention keeps the segments apart either way"
            )
        else:
            lines.append(f"found: the trainer's forward differs from the example alone by more than {tolerance:g} too")
        for mode in ("eval", "train"):
            if mode in bfd.loss_trainer:
                a, b = bfd.loss_trainer[mode], bfd.loss_plain_call[mode]
                lines.append(
                    f"packed micro-batch loss ({mode} mode): {a:.4f} through the trainer's forward, "
                    f"{b:.4f} through the plain call ({'the same' if a == b else f'differs by {abs(a - b):.2e}'})"
                )
        lines.append(
            "advice: let the trainer make the call (SFTTrainer passes use_cache=False), or pass use_cache=False "
            "yourself in a hand-written loop over padding-free batches"
        )
    if wrapped is not None and wrapped.found:
        lines.append(
            "wrapped: " + (
                f"the held-out tokens attend to rows {_rows(wrapped.depends_on)} even in the trainer's forward"
                if wrapped.depends_on else "the held-out tokens attended to no earlier row here"
            )
        )
    if v.packed and v.unpacked:
        p, u = v.packed, v.unpacked
        lines.append(
            f"padding over an epoch of {v.padding_examples} examples: packed (bfd) {p.micro_batches} micro-batches, {p.sent} tokens sent, "
            f"{p.sent - p.real} of them padding; unpacked (batch size {v.batch_size}) {u.micro_batches} micro-batches, "
            f"{u.sent} tokens sent, {u.sent - u.real} of them padding"
        )
        saved = u.sent - p.sent
        lines.append(
            f"packing saves {saved} padding tokens here ({saved / u.sent:.0%} of the unpacked run's tokens)" if saved > 0
            else "packing saves no padding here: these examples are the same length, unpacked batches need none"
            if u.sent == u.real else f"packing sends {-saved} more tokens here"
        )
    return "\n".join(lines)
