"""`causallm-inspect batch --run DIR`: a recorded step, shown as `batch` shows a simulated one; with
`--config FILE`, whether the simulation equals the record.

The same text and the same `--json` fields as a simulated step; what a recording does not hold is null
or empty, and said. With `--config`, TRL's SFTTrainer simulated from that config with the recording's
world size is compared with every recorded step (or `--step`), rank by rank (exit code 1 where it
differs), and the first difference is shown.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from inspector.cli.options import dump, load, status
from inspector.core.errors import InspectorError


def _refuse_simulation_options(args: argparse.Namespace) -> None:
    """Options that shape a simulation: with --run alone there is none, so they would be dropped silently."""
    from inspector.core.batches.setup import SFT_FLAGS

    if args.check_attention:
        raise InspectorError("--check-attention runs the model on a simulated step, not on a recording", "leave out --run or --check-attention")
    if args.data:
        raise InspectorError("--data gives the simulation its rows; a recording holds its own batches", "leave out --data (with --config, the config's dataset is used)")
    if args.config:
        return
    given = [f"--{n.replace('_', '-')}" for n in (*SFT_FLAGS, "attn_implementation") if getattr(args, n, None) is not None]
    given += ["--no-shuffle"] if args.no_shuffle else []
    if given:
        raise InspectorError(
            f"{', '.join(given)} set{'s' if len(given) == 1 else ''} the simulation, and --run alone simulates nothing "
            "(the recording holds the run's own settings)",
            "add --config FILE to compare a simulation with the record, or leave them out",
        )


def run_recording(args: argparse.Namespace) -> int:
    from inspector.core.batches.setup import offline
    from inspector.core.recorder.record_files import open_recording, version_differences
    from inspector.core.recorder.step_view import first_step, recorded_step, tokenizer_name

    _refuse_simulation_options(args)
    offline()
    rec = open_recording(args.recording)
    if args.world_size is not None and args.world_size != rec.world_size:
        raise InspectorError(
            f"--world-size {args.world_size}: {args.recording} was recorded on {rec.world_size} process"
            f"{'es' if rec.world_size != 1 else ''}, and a recording is shown as it ran",
            "leave out --world-size (with --config the simulation takes the recording's)",
        )
    if args.rank is not None and not 0 <= args.rank < rec.world_size:
        raise InspectorError(f"--rank {args.rank} is not in {args.recording} (its run had {rec.world_size})", _ranks(rec.world_size))
    differ = version_differences(rec.run)
    if differ:
        status(f"note: {args.recording} was recorded with other library versions: {', '.join(differ)}; shown as it was written")
    if args.config:
        return _compare(args, rec)
    step = args.step if args.step is not None else first_step(rec)
    rec.micro_batches(step, 0)  # a step that was not recorded fails before the tokenizer loads
    from inspector.core.models import load_model

    name = tokenizer_name(rec, args.model)
    tokenizer = load_model(name, tokenizer_only=True, device="cpu", trust_remote_code=args.trust_remote_code, progress=status)
    view = recorded_step(rec, step, tokenizer.tokenizer, rank=args.rank, tokenizer_label=tokenizer.name)
    if args.json:
        dump({"model": tokenizer.name, **view.to_dict()})
        return 0
    from inspector.core.batches.report import format_view

    print(f"model: {tokenizer.name}")
    print(format_view(view))
    return 0


def _ranks(world: int) -> str:
    return "pass --rank 0 (its only rank)" if world == 1 else f"pass --rank 0 to {world - 1}"


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    from inspector.core.batches.setup import SFT_FLAGS, check_values

    flags = {name: getattr(args, name) for name in SFT_FLAGS}
    if args.no_shuffle:
        flags["train_sampling_strategy"] = "sequential"
    if args.attn_implementation:
        flags["attn_implementation"] = args.attn_implementation
    check_values(flags)
    return flags


def _compare(args: argparse.Namespace, rec: Any) -> int:
    """Each recorded step (or --step) against the simulation of --config with the recording's world size."""
    from inspector.core.batches import setup as batch_setup
    from inspector.core.batches.provenance import Provenance
    from inspector.core.batches.steps import check_world_size, inspect_step
    from inspector.core.batches.trainer import sft_trainer
    from inspector.core.models import pick_device
    from inspector.core.recorder.compare import Comparison, RankResult, compare_step
    from inspector.core.recorder.step_view import first_step, recorded_step

    steps = [args.step] if args.step is not None else rec.steps
    first_step(rec)
    for step in steps:
        rec.micro_batches(step, 0)  # a step that was not recorded (or not whole) fails before the model loads
    flags = _flags(args)
    if not batch_setup.has_dataset(args.config):
        raise InspectorError(
            f"{args.config} names no dataset, and the simulation needs the run's data",
            "add its datasets: list (local data_files) or dataset_name, as `trl sft --config` takes it",
        )
    device = pick_device(args.device)
    results: list[RankResult] = []
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-batch-") as tmp:
        _script, _sft, model_args, _mixture = batch_setup.parse(args.config, flags, output_dir=tmp, device=device)
        if not args.model:  # --model, else the config's, else the run's own
            args.model = model_args.model_name_or_path or rec.run.get("model") or rec.run.get("tokenizer")
        status(f"loading the dataset of {Path(args.config).name}")
        template_text = None
        if args.chat_template:
            from inspector.core.data.conversations import read_chat_template

            template_text = read_chat_template(args.chat_template)
        setup = batch_setup.config_setup(args.config, flags, output_dir=tmp, device=device, chat_template=template_text)
        check_world_size(rec.world_size, len(setup.dataset))
        loaded, _markers = load(args)
        status(f"building TRL's SFTTrainer (no training) for {rec.world_size} simulated rank{'s' if rec.world_size != 1 else ''}")
        with sft_trainer(loaded.model, loaded.tokenizer, setup) as trainer:
            provenance = Provenance(trainer, setup)
            epoch = None
            for step in steps:
                recorded = recorded_step(rec, step, loaded.tokenizer, rank=args.rank, tokenizer_label=loaded.name)
                if epoch is not None and step > epoch:
                    why = f"the simulation covers the first epoch, {epoch} steps"
                    results += [RankResult(step, r, 0, skipped=why) for r in dict.fromkeys(mb.rank for mb in recorded.micro_batches)]
                    continue
                simulated = inspect_step(trainer, setup, step=step, world_size=rec.world_size, provenance=provenance)
                epoch = simulated.steps_per_epoch
                results += compare_step(recorded, simulated)
    comparison = Comparison(results)
    if args.json:
        dump({"model": loaded.name, "recording": str(rec.folder), "config": args.config, "world_size": rec.world_size,
              **comparison.to_dict()})
    else:
        processes = f"{rec.world_size} process{'es' if rec.world_size != 1 else ''}"
        print(f"model: {loaded.name}")
        print(f"recording {rec.folder} ({processes}) against TRL's SFTTrainer simulated from {args.config}:")
        print("\n".join(comparison.lines()))
    return 0 if comparison.equal else 1
