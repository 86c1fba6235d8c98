"""One optimizer step of TRL's own SFTTrainer, read off its data loader: `inspect_step`, and
`build_step`, which makes the trainer for it from formatted examples.

The parts, each in its module: `trainer` builds the SFTTrainer (no training, nothing written);
`ranks` takes a step's micro-batches from its `get_train_dataloader()` on each simulated rank;
`provenance` knows each prepared token's source row; `layout` places the rows in a collated
micro-batch; `token_weights` weighs each trained token. The result types are in `step_types`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspector.core.batches.layout import Layout, lay_out
from inspector.core.batches.provenance import Provenance
from inspector.core.batches.ranks import rank_loader, take_step
from inspector.core.batches.setup import BatchSetup
from inspector.core.batches.step_types import MicroBatch, StepView
from inspector.core.batches.token_weights import example_weights, step_weights
from inspector.core.batches.trainer import sft_trainer
from inspector.core.errors import InspectorError


def keep_end_note(args: Any) -> str | None:
    """One line where the config sets `truncation_mode: keep_end`, which TRL deprecated (to be removed in
    v2.0): still accepted (TRL's FutureWarning is left out: `core.quiet`), and simulated as TRL runs it."""
    if args.truncation_mode != "keep_end":
        return None
    import trl

    return (
        f"truncation_mode keep_end is deprecated by TRL (to be removed in v2.0); TRL {trl.__version__} still runs it "
        "and so does this view (long rows lose their start): a max_length that fits the rows lasts"
    )


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


def check_world_size(world_size: int, rows: int) -> None:
    """A simulated world no larger than the data: past it, most ranks would get only rows repeated
    from the start (accelerate's even_batches), and simulating each of them takes a while."""
    if world_size > rows > 0:
        raise InspectorError(
            f"--world-size {world_size} is more than the {rows} row{'s' if rows != 1 else ''} of the data: most ranks "
            "would get only rows repeated from the start of the data (accelerate's even_batches)",
            f"pass --world-size {rows} or less, or give more rows",
        )


def inspect_step(
    trainer: Any, setup: BatchSetup, *, step: int = 1, world_size: int = 1, provenance: Provenance | None = None
) -> StepView:
    """Optimizer step `step` (1-based, within the first epoch) of the trainer `sft_trainer` made for
    `setup`, on each of `world_size` ranks.

    `provenance`: one made before for this trainer, so that reading many steps prepares the rows once."""
    check_step(step, world_size)
    check_world_size(world_size, len(setup.dataset))
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
    laid: list[list[tuple[list[int], dict[str, Any], Layout]]] = []
    for loader in loaders:
        taken = take_step(loader, step, accumulation, steps_per_epoch)
        laid.append(
            [(samples, batch, lay_out(samples, batch, m, prov, padding_free, shifts, mask_reason)) for m, (samples, batch) in enumerate(taken)]
        )
    weights = step_weights(trainer, world_size, [[(batch, lay) for _, batch, lay in mine] for mine in laid])
    per_rank = [
        [
            MicroBatch(
                step=step,
                micro_step=m,
                rank=rank,
                samples=samples,
                batch=batch,
                texts=lay.texts,
                segments=lay.segments,
                token_segment=lay.token_segment,
                reasons=lay.reasons,
                attends_from=lay.attends_from,
                dropped=lay.dropped,
                weights=weights.per_rank[rank][m],
            )
            for m, (samples, batch, lay) in enumerate(mine)
        ]
        for rank, mine in enumerate(laid)
    ]
    micro_batches: list[MicroBatch] = []
    for m in range(max(len(r) for r in per_rank)):  # micro-step by micro-step, rank by rank
        micro_batches += [r[m] for r in per_rank if m < len(r)]
    dropped_rows, summary = prov.dropped_rows()
    notes = [*setup.notes, *([note] if (note := keep_end_note(trainer.args)) else [])]
    lowered = setup.lowered_batch_size
    if lowered:
        notes.append(
            f"per_device_train_batch_size {size}: the default {lowered} is more than the {prepared} "
            f"sequence{'s' if prepared != 1 else ''} TRL prepared (give --per-device-train-batch-size to choose)"
        )
    return StepView(
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
        items_per_rank=weights.items_per_rank,
        num_items_in_batch=weights.num_items_in_batch,
        normalisation=weights.normalisation,
        examples=example_weights([mb for mine in per_rank for mb in mine]),  # rank by rank, as the sums were always added
        dropped_rows=dropped_rows,
        dropped_summary=summary,
        notes=notes,
    )


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
            return inspect_step(trainer, setup, step=step, world_size=world_size)
