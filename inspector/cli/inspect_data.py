"""`causallm-inspect inspect-data`: a report over a whole dataset, and the rows that train nothing."""

from __future__ import annotations

import argparse
import sys

from inspector.cli.options import (
    at_least_one,
    comma_list,
    common,
    data_file_options,
    dump,
    label_function,
    labels_from_option,
    load,
)
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import ALL_STRATEGIES, CUSTOM


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect-data", help="a report over a whole dataset: trained tokens and the rows that train nothing")
    common(p, data=False)
    p.add_argument(
        "file", metavar="FILE",
        help="JSONL, JSON, CSV/TSV (each may be .gz, .bz2, .xz or .zst), Parquet or a saved datasets folder",
    )
    data_file_options(p)
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
    p.add_argument("--max-length", type=int, metavar="N", help="report rows whose answers a cut at N tokens would lose")
    p.add_argument(
        "--fail-on",
        default="",
        metavar="KINDS",
        help="exit 1 if any of these problems is found (comma-separated, or 'any'): "
        "bad-row, mixed-format, template-not-found, template-not-for-this-model, no-trained-tokens, eos-not-trained, "
        "truncated-answer, pad-equals-eos, empty-answer, stop-token-not-trained, tool-call-dropped, "
        "mask-methods-disagree",
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

    path = Path(args.file).expanduser()
    if not path.exists():
        raise InspectorError(f"the data file {args.file} does not exist", "check the path")
    detect_format(path)  # a wrong kind of file fails before the model loads
    columns = parse_columns(args.columns)
    chat_template = read_chat_template(args.chat_template) if args.chat_template else None
    loaded, template = load(args, tokenizer_only="trl" not in strategies)
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
    )
    if tty:
        print("\r", end="", file=sys.stderr)
    if args.json:
        dump(report.to_dict())
    else:
        print(format_report(report))
    found = fail_on & set(report.counts)
    return 1 if found else 0
