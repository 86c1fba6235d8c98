"""`causallm-inspect labels`: input_ids and labels of every example under one strategy."""

from __future__ import annotations

import argparse

from inspector.cli.options import check_data_early, common, dump, load
from inspector.core.labels.strategies import STRATEGIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("labels", help="input_ids and labels of every example under one strategy")
    common(p)
    p.add_argument("--strategy", choices=STRATEGIES, default="mask", help="label strategy (default mask)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    examples = check_data_early(args)
    loaded, template = load(args)
    from inspector.core.data.examples import format_examples
    from inspector.core.labels.strategies import label_examples

    formatted = format_examples(examples, loaded.tokenizer, template, loaded.name)
    labeled = label_examples(args.strategy, formatted, loaded.tokenizer, loaded.model, max_length=loaded.max_length)
    if args.json:
        dump(
            {
                "model": loaded.name,
                "strategy": args.strategy,
                "examples": [dict(row=ex.row, **lab.to_dict()) for ex, lab in zip(examples, labeled)],
            }
        )
        return 0
    from inspector.core.reports.tables import labels_table

    for ex, lab in zip(examples, labeled):
        print(labels_table(lab, title=f"example {ex.row}"))
        print()
    return 0
