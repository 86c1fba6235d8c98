"""`causallm-inspect batch`: the micro-batches of one optimizer step, exactly as TRL's SFTTrainer makes them.

From `trl sft`'s own YAML (`--config FILE`) or from flags with SFTConfig's names, on the
article's examples or `--data`. `--world-size W` shows what each of W simulated ranks
receives; `--check-attention` measures whether packed segments see each other. `--run DIR` shows a
recorded step instead (`batch_run`).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from inspector.cli.options import common, dump, load, sft_config_flags, status
from inspector.core.errors import InspectorError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="the micro-batches of one optimizer step as TRL's SFTTrainer builds them: tokens, labels, "
        "position_ids, source rows, packed segments, dropped tokens, each token's weight",
    )
    common(p)
    p.add_argument(
        "--config",
        metavar="FILE",
        help="the YAML `trl sft --config FILE` takes (ScriptArguments, SFTConfig, ModelConfig, a datasets: list "
        "with local data_files); the flags below override its values; keys that match no field are refused",
    )
    p.add_argument(
        "--step",
        type=int,
        default=None,
        metavar="N",
        help="the optimizer step to show, from 1 (default 1; with --run the first recorded, with --run --config every recorded step)",
    )
    p.add_argument(
        "--world-size",
        type=int,
        default=None,
        metavar="W",
        help="simulate W data-parallel processes: what each rank receives, as accelerate shards it (default 1)",
    )
    r = p.add_argument_group("a recording (`causallm-inspect record`, or RecorderCallback in your own run)")
    r.add_argument(
        "--run",
        dest="recording",  # `run` is each command's function
        metavar="DIR",
        default=None,
        help="show a recorded step: what the run's model received on every rank (the tokenizer: the run's, or --model); "
        "with --config, whether the simulation of that config equals the record, step by step and rank by rank "
        "(exit code 1 where it does not), and the first difference",
    )
    r.add_argument("--rank", type=int, default=None, metavar="R", help="with --run: only rank R's micro-batches (default every rank)")
    p.add_argument("--no-shuffle", action="store_true", help="the sequential sampler (train_sampling_strategy=sequential)")
    sft_config_flags(p)
    a = p.add_argument_group("attention")
    a.add_argument(
        "--check-attention",
        action="store_true",
        help="run each packed segment alone and inside its micro-batch and report the largest difference of p(next token)",
    )
    a.add_argument("--attn-implementation", metavar="NAME", default=None, help="sdpa or eager (default: the config's, or the model's)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inspector.core.batches.setup import SFT_FLAGS, check_values, offline
    from inspector.core.batches.steps import check_step
    from inspector.core.errors import InspectorError

    if args.recording:
        from inspector.cli.batch_run import run_recording

        return run_recording(args)
    if args.rank is not None:
        raise InspectorError("--rank picks a rank of a recording", "add --run DIR, or simulate ranks with --world-size W")
    args.step = 1 if args.step is None else args.step
    args.world_size = 1 if args.world_size is None else args.world_size
    offline()
    check_step(args.step, args.world_size)
    flags = {name: getattr(args, name) for name in SFT_FLAGS}
    if args.no_shuffle:
        flags["train_sampling_strategy"] = "sequential"
    if args.attn_implementation:
        flags["attn_implementation"] = args.attn_implementation
    check_values(flags)  # a bad value fails before the model loads
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-batch-") as tmp:
        view, name = _build(args, flags, tmp)
    if args.json:
        dump({"model": name, **view.to_dict()})
        return 0
    from inspector.core.batches.report import format_view

    print(f"model: {name}")
    print(format_view(view))
    return 0


def _build(args: argparse.Namespace, flags: dict, tmp: str) -> tuple:
    from inspector.core.batches import setup as batch_setup
    from inspector.core.batches.steps import check_world_size
    from inspector.core.models import pick_device

    device = pick_device(args.device)
    from_config = None
    if args.config:
        _script, _sft, model_args, _mixture = batch_setup.parse(args.config, flags, output_dir=tmp, device=device)
        if not args.model and model_args.model_name_or_path:
            args.model = model_args.model_name_or_path
        if not args.data and batch_setup.has_dataset(args.config):
            status(f"loading the dataset of {Path(args.config).name}")
            from inspector.core.data.conversations import read_chat_template

            template_text = read_chat_template(args.chat_template) if args.chat_template else None
            from_config = batch_setup.config_setup(
                args.config, flags, output_dir=tmp, device=device, chat_template=template_text
            )
            check_world_size(args.world_size, len(from_config.dataset))  # before the model loads
    if from_config is not None and args.turn_policy != "all":
        raise InspectorError(
            f"--turn-policy {args.turn_policy} applies to the rows of --data, not to the dataset of {Path(args.config).name}",
            "pass the rows with --data FILE, or leave --turn-policy out",
        )
    if from_config is None:
        from inspector.cli.options import check_data_early

        examples = check_data_early(args)  # a bad file fails before the model loads
        check_world_size(args.world_size, len(examples))
    loaded, markers = load(args)
    if from_config is not None:
        setup = from_config
    else:
        from inspector.cli.turns import policy_rows, say_flags_ignored
        from inspector.core.data.examples import format_examples

        formatted = format_examples(examples, loaded.tokenizer, markers, loaded.name)
        say_flags_ignored(examples, ["trl"])  # the batch is TRL's SFTTrainer's
        read = len(examples)
        examples, formatted, _ = policy_rows(args, examples, formatted, loaded.tokenizer, flags=False)
        source = f"{Path(args.data).name} ({read} rows)" if args.data else f"the article's {read} examples"
        if len(formatted) != read:
            source += f", {len(formatted)} after --turn-policy {args.turn_policy}"
        setup = batch_setup.examples_setup(
            formatted, [ex.row for ex in examples], source, flags, output_dir=tmp, device=loaded.device, config_file=args.config
        )
    from inspector.core.batches.attention import check_attention
    from inspector.core.batches.steps import inspect_step
    from inspector.core.batches.trainer import sft_trainer

    status("building TRL's SFTTrainer (no training) and its data loader")
    with sft_trainer(loaded.model, loaded.tokenizer, setup) as trainer:
        view = inspect_step(trainer, setup, step=args.step, world_size=args.world_size)
        if args.check_attention:
            status("running each segment alone and in its micro-batch")
            report = check_attention(trainer, view, setup.attn_implementation, model_use_cache=setup.model_use_cache)
            view = dataclasses.replace(view, attention=report)
    return view, loaded.name
