"""`causallm-inspect bench`: where a training step's time goes, or how fast inspect-data reads a large file,
or what the recorder costs a step."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from inspector.cli.options import check_data_early, comma_list, common, dump, load, status
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import STRATEGIES

if TYPE_CHECKING:
    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.data.examples import Example
    from inspector.core.models import LoadedModel


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="where a training step's time goes: forward/backward/optimizer, tokens/s, GFLOP/s vs the matmul peak",
    )
    common(p)
    p.add_argument("--strategies", default=",".join(STRATEGIES), metavar="LIST", help="comma-separated (default all three)")
    p.add_argument(
        "--options",
        default="all",
        metavar="LIST",
        help="comma-separated speed options, or all: stock, default, foreach-adamw, frozen-embedding, lora, "
        "head-trained-only, padded-batch, threads-1, compile (stock: the plain Trainer/SFTTrainer, the others' peer)",
    )
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3; the first step is a warm-up)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the bursts' default)")
    p.add_argument(
        "--data-rows",
        type=int,
        metavar="N",
        help="instead: time inspect-data on a generated N-row conversational JSONL (rows/s with one process and with "
        "every core, peak memory)",
    )
    p.add_argument(
        "--batch-rows",
        type=int,
        metavar="N",
        help="instead: time the batch command on a generated N-row trl sft config (bfd packing): preparing once, "
        "then the first, middle and last step from datasets' cache (target under 5 s each beyond the model load)",
    )
    p.add_argument(
        "--memory",
        action="store_true",
        help="instead: resident memory idle, during and after each strategy's burst (as the app's a), "
        "after a continued burst and after a reset (x), against the memory targets",
    )
    p.add_argument(
        "--label-process",
        action="store_true",
        help="instead: the article's label function on the examples in the label process against in this process "
        "(the cost of running your code where it can be stopped; target at most 2x)",
    )
    p.add_argument(
        "--recorder",
        action="store_true",
        help="instead: seconds per optimizer step of TRL's SFTTrainer on the model with and without RecorderCallback "
        "recording every step, in alternating runs: the recorder's cost as a %% of a step (target under 3%%)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="instead: the top operators of one step (torch.profiler), stock and default, for each strategy",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inspector.core.training.bench import OPTIONS

    if args.data_rows is not None:
        return _bench_data(args)
    if args.batch_rows is not None:
        return _bench_batch(args)

    strategies = comma_list(args.strategies, STRATEGIES, "--strategies")
    options = list(OPTIONS) if args.options == "all" else comma_list(args.options, tuple(OPTIONS), "--options")
    examples = check_data_early(args)
    loaded, template = load(args)
    if args.label_process:
        return _bench_labels(args, loaded, template, examples)
    if args.memory:
        return _bench_memory(args, loaded, template, examples, strategies)
    if args.profile:
        return _bench_profile(args, loaded, template, examples, strategies)
    if args.recorder:
        return _bench_recorder(args, loaded, template, examples)
    from inspector.core.models import load_model
    from inspector.core.training.bench import format_report, run_bench
    from inspector.core.training.burst import DEFAULT_LORA_LEARNING_RATE, BurstSettings

    def warm_load() -> float:
        # The first load above may have converted the model; this one reads the cache.
        again = load_model(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
        seconds = again.load_seconds
        del again
        return seconds

    settings = BurstSettings(epochs=args.epochs, **({"learning_rate": args.lr} if args.lr else {}))
    formatted = _formatted(args, loaded, template, examples)
    status(f"benchmarking {len(strategies)} strategies x {len(options)} options, {args.epochs} epochs each")

    def progress(r: Any) -> None:
        status(f"{r.strategy}/{r.option}: {r.step_s.median:.3f} s per step, {r.gflops:.1f} GFLOP/s")

    report = run_bench(
        loaded,
        formatted,
        strategies=strategies,
        options=options,
        settings=settings,
        lora_learning_rate=args.lr or DEFAULT_LORA_LEARNING_RATE,  # LoRA's own default rate unless --lr
        warm_load=warm_load,
        on_result=progress,
    )
    if args.json:
        dump(report.to_dict())
    else:
        print(format_report(report))
    return 0


def _formatted(args: argparse.Namespace, loaded: LoadedModel, template: TurnMarkers, examples: list[Example]) -> list:
    """The examples formatted for the model, as the rows --turn-policy gives."""
    from inspector.cli.turns import policy_rows
    from inspector.core.data.examples import format_examples

    formatted = format_examples(examples, loaded.tokenizer, template, loaded.name)
    return policy_rows(args, examples, formatted, loaded.tokenizer)[1]


def _bench_labels(args: argparse.Namespace, loaded: LoadedModel, template: TurnMarkers, examples: list[Example]) -> int:
    from inspector.core.labels.bench import bench_labels, format_label_bench

    formatted = _formatted(args, loaded, template, examples)
    status(f"labels: the article's function on {len(formatted)} examples, in this process and in the label process")
    report = bench_labels(loaded.tokenizer, formatted)
    if args.json:
        dump(report.to_dict())
    else:
        print(format_label_bench(report))
    return 0


def _bench_memory(
    args: argparse.Namespace, loaded: LoadedModel, template: TurnMarkers, examples: list[Example], strategies: list[str]
) -> int:
    from inspector.core.training.bench_memory import format_memory_report, memory_bench
    from inspector.core.training.burst import BurstSettings

    settings = BurstSettings(epochs=args.epochs, **({"learning_rate": args.lr} if args.lr else {}))
    formatted = _formatted(args, loaded, template, examples)
    status(f"memory: {', '.join(strategies)} in turn, {args.epochs} epochs each, then {strategies[0]} again, then a reset")
    report = memory_bench(
        loaded,
        formatted,
        strategies=strategies,
        settings=settings,
        on_stage=lambda name, mb: status(f"{name}: {mb:.0f} MB"),
    )
    if args.json:
        dump(report.to_dict())
    else:
        print(format_memory_report(report))
    return 0


def _bench_recorder(args: argparse.Namespace, loaded: LoadedModel, template: TurnMarkers, examples: list[Example]) -> int:
    from inspector.core.batches.setup import offline
    from inspector.core.data.examples import format_examples
    from inspector.core.training.bench_recorder import RUNS, STEPS, format_recorder_cost, recorder_cost

    offline()
    formatted = format_examples(examples, loaded.tokenizer, template, loaded.name)
    status(f"the recorder's cost: {RUNS} runs of {STEPS} steps without it and {RUNS} with it, alternating")
    cost = recorder_cost(
        loaded, formatted, on_run=lambda kind, s: status(f"{kind} the recorder: {sorted(s[1:])[len(s[1:]) // 2]:.3f} s per step")
    )
    if args.json:
        dump(cost.to_dict())
    else:
        print(format_recorder_cost(cost))
    return 0


def _bench_profile(
    args: argparse.Namespace, loaded: LoadedModel, template: TurnMarkers, examples: list[Example], strategies: list[str]
) -> int:
    from dataclasses import asdict, replace

    from inspector.core.training.burst import BurstSettings
    from inspector.core.training.profile import format_profile, profile_step

    settings = BurstSettings(epochs=1, **({"learning_rate": args.lr} if args.lr else {}))
    formatted = _formatted(args, loaded, template, examples)
    profiles = []
    for strategy in strategies:
        for stock in (True, False):
            status(f"profiling step 2 of {strategy} ({'stock' if stock else 'default'})")
            p = profile_step(
                loaded.model, loaded.tokenizer, formatted, strategy, replace(settings, stock=stock), device=loaded.device
            )
            profiles.append(p)
    if args.json:
        dump({"model": loaded.name, "device": loaded.device, "profiles": [asdict(p) for p in profiles]})
    else:
        print("\n\n".join(format_profile(p) for p in profiles))
    return 0


def _bench_batch(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from inspector.core.batches.bench import batch_scale_bench, format_batch_bench
    from inspector.core.batches.setup import offline

    if args.batch_rows < 10:
        raise InspectorError(f"--batch-rows {args.batch_rows} is too few to measure", "pass 10 or more, e.g. 100000")
    offline()
    loaded, _template = load(args)
    status(f"writing {args.batch_rows:,} rows and timing the batch view")
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-bench-") as tmp:
        result = batch_scale_bench(args.batch_rows, loaded, Path(tmp), loaded.device)
    if args.json:
        dump({"model": loaded.name, **result})
    else:
        print(format_batch_bench(result, loaded.name))
    return 0


def _bench_data(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from inspector.core.training.bench import data_scale_bench

    if args.data_rows < 10:
        raise InspectorError(f"--data-rows {args.data_rows} is too few to measure", "pass 10 or more, e.g. 100000")
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-bench-") as tmp:
        result = data_scale_bench(args.data_rows, args.model, Path(tmp))
    if args.json:
        dump(result)
        return 0
    for n, r in result.items():
        if not n.isdigit():
            continue
        print(
            f"{int(n):>9} rows, 1 process: {r['seconds']:6.1f} s, {r['rows_per_s']:8.0f} rows/s, "
            f"peak {r['peak_rss_mb']:6.0f} MB, problems {r['problems']}"
        )
    many = result["all_cores"]
    print(
        f"{result['rows']:>9} rows, {many['processes']} processes (every core): {many['seconds']:6.1f} s, "
        f"{many['rows_per_s']:8.0f} rows/s ({many['speedup']:.1f}x), "
        f"{'the same report' if many['same_report'] else 'A DIFFERENT REPORT'}"
    )
    return 0
