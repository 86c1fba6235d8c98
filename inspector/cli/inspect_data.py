"""`causallm-inspect inspect-data`: a report over a whole dataset, and the rows that train nothing."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from inspector.cli.options import (
    at_least_one,
    comma_list,
    common,
    dump,
    label_function,
    labels_from_option,
    load,
    sft_config_flags,
    status,
)
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import ALL_STRATEGIES, CUSTOM


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect-data", help="a report over a whole dataset: trained tokens and the rows that train nothing")
    common(p, data_default="none: give FILE or --data FILE")  # --data FILE as every command takes it, and how it is read
    p.add_argument(
        "file", metavar="FILE", nargs="?", default=None,
        help="JSONL, JSON, CSV/TSV (each may be .gz, .bz2, .xz or .zst), Parquet or a saved datasets folder "
        "(or --data FILE)",
    )
    p.add_argument(
        "--num-proc",
        type=at_least_one,
        metavar="N",
        help="processes that tokenize and check the rows (default: every core; the report is the same)",
    )
    p.add_argument(
        "--strategy",
        default=None,
        metavar="LIST",
        help="comma-separated: copy, mask, trl, custom (trl loads the model; default copy,mask, and custom with --labels-from)",
    )
    labels_from_option(p)
    p.add_argument(
        "--max-length",
        type=int,
        metavar="N",
        help="report rows whose answers a cut at N tokens would lose; also SFTConfig's max_length: the run's "
        "settings are checked on the dataset TRL's SFTTrainer prepares (loads the model)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="the YAML `trl sft --config FILE` takes: check the dataset TRL's SFTTrainer prepares with its settings "
        "(truncation, packing, batch sizes; the flags below override it) and each row's share of its step's weight",
    )
    sft_config_flags(p, max_length=False)
    p.add_argument(
        "--fail-on",
        default="",
        metavar="KINDS",
        help="exit 1 if any of these problems is found (comma-separated, or 'any'): "
        "bad-row, mixed-format, template-not-found, template-not-for-this-model, no-trained-tokens, eos-not-trained, "
        "truncated-answer, pad-equals-eos, empty-answer, stop-token-not-trained, tool-call-dropped, "
        "mask-methods-disagree, reasoning-context-differs, reasoning-not-trained, empty-reasoning-trained, "
        "reasoning-prefilled, tool-result-trained, message-flags-ignored; with --config or SFTConfig flags also answer-loses-stop-token, "
        "dropped-by-truncation, prompt-only-chunk, packing-crosses-examples",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inspector.core.data.conversations import read_chat_template
    from inspector.core.data.readers import detect_format, parse_columns
    from inspector.core.reports.data_report import PROBLEMS, cores, format_report, inspect_data

    default = "copy,mask,custom" if args.labels_from else "copy,mask"
    strategies = comma_list(args.strategy or default, ALL_STRATEGIES, "--strategy")
    custom = label_function(args, strategies) if CUSTOM in strategies or args.labels_from else None
    fail_on = {x.strip() for x in args.fail_on.split(",") if x.strip()}
    if fail_on == {"any"}:
        fail_on = set(PROBLEMS)
    unknown = fail_on - set(PROBLEMS)
    if unknown:
        raise InspectorError(f"--fail-on has unknown problems: {', '.join(sorted(unknown))}", f"choose from {', '.join(PROBLEMS)}")
    if args.max_length is not None and args.max_length < 1:
        raise InspectorError(f"--max-length must be at least 1, not {args.max_length}", "pass a positive number")
    from pathlib import Path

    given = data_file(args)
    path = Path(given).expanduser()
    if not path.exists():
        raise InspectorError(f"the data file {given} does not exist", "check the path")
    detect_format(path)  # a wrong kind of file fails before the model loads
    columns = parse_columns(args.columns)
    chat_template = read_chat_template(args.chat_template) if args.chat_template else None
    from inspector.core.batches.setup import SFT_FLAGS, check_values

    flags = {name: getattr(args, name) for name in SFT_FLAGS}
    with_run = bool(args.config) or any(v is not None for v in flags.values())
    if with_run:
        check_values(flags)  # a bad value fails before the model loads
        sft = _run_config(args, flags)
        if sft.packing and sft.packing_strategy != "bfd" and args.max_length is not None:
            # bfd_split and wrapped cut long rows into chunks: no answer token is lost, so no truncated-answer
            status(f"packing_strategy {sft.packing_strategy} splits long rows: --max-length is the chunk length, not a cut")
            args.max_length = None
    loaded, template = load(args, tokenizer_only="trl" not in strategies and not with_run)
    tty = sys.stderr.isatty()

    def progress(rows: int) -> None:
        if tty:
            print(f"\r… {rows} rows", end="", file=sys.stderr, flush=True)

    report = inspect_data(
        path,
        loaded,
        strategies=strategies,
        template=template,
        chat_template=chat_template,
        max_length=args.max_length,
        split=args.split,
        limit=args.limit,
        columns=columns,
        row_format=args.row_format,
        num_proc=args.num_proc or cores(),
        progress=progress,
        custom=custom,
        # --turn-policy and --inference-template are the shared options' (cli.options)
        turn_policy=getattr(args, "turn_policy", None) or "all",
        inference_template=getattr(args, "inference_template", None),
    )
    if tty:
        print("\r", end="", file=sys.stderr)
    if with_run:
        _check_run(args, path, flags, loaded, template, report)
    if args.json:
        dump(report.to_dict())
    else:
        print(format_report(report))
    found = fail_on & set(report.counts)
    return 1 if found else 0


def data_file(args: argparse.Namespace) -> str:
    """The file to inspect: FILE or --data FILE, given once."""
    if args.file is None and not args.data:
        raise InspectorError("inspect-data needs a data file", "give it as FILE or --data FILE")
    if args.file is not None and args.data and args.file != args.data:
        raise InspectorError(f"two data files: {args.data} (--data) and {args.file}", "give one, as FILE or --data FILE")
    return args.file or args.data


def _check_run(args: argparse.Namespace, path: Any, flags: dict, loaded: Any, template: Any, report: Any) -> None:
    """The run's settings on the dataset TRL's SFTTrainer prepares from the file's rows (bad rows left out)."""
    import tempfile

    from inspector.cli.options import data_options
    from inspector.core.batches.setup import examples_setup, offline
    from inspector.core.data.examples import format_examples, read_examples
    from inspector.core.reports.data_report import add_run
    from inspector.core.reports.run_checks import run_checks

    offline()
    options = data_options(args)
    options["limit"] = args.limit if args.limit is not None else sys.maxsize
    examples = read_examples(path, template, **options).examples
    if not examples:
        return  # no row is an example: the report's bad-row problems say why
    status("building TRL's SFTTrainer (no training) with the run's settings")
    formatted = format_examples(examples, loaded.tokenizer, template, loaded.name)
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-data-") as tmp:
        setup = examples_setup(
            formatted, [ex.row for ex in examples], path.name, flags, output_dir=tmp, device=loaded.device, config_file=args.config
        )
        add_run(report, run_checks(loaded.model, loaded.tokenizer, setup))


def _run_config(args: argparse.Namespace, flags: dict) -> Any:
    """The run's SFTConfig. A bad config fails before the model loads; its model_name_or_path is the model
    unless --model is given."""
    import tempfile

    from inspector.core.batches.setup import parse

    with tempfile.TemporaryDirectory(prefix="causallm-inspect-data-") as tmp:
        _script, sft, model_args, _mixture = parse(args.config, flags, output_dir=tmp)
    if not args.model and model_args.model_name_or_path:
        args.model = model_args.model_name_or_path
    return sft
