"""`causallm-inspect labels`: input_ids and labels of every example under one strategy.

With `--labels-from` (the `custom` strategy, the default then) it also says where your
labels differ from a reference strategy (`--reference`, default mask).
"""

from __future__ import annotations

import argparse

from inspector.cli.options import check_data_early, common, dump, label_function, labels_from_option, load
from inspector.core.labels.strategies import ALL_STRATEGIES, CUSTOM, STRATEGIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("labels", help="input_ids and labels of every example under one strategy")
    common(p)
    p.add_argument(
        "--strategy", choices=ALL_STRATEGIES, default=None, help="label strategy (default mask, or custom with --labels-from)"
    )
    labels_from_option(p)
    p.add_argument(
        "--reference",
        choices=STRATEGIES,
        default="mask",
        help="with the custom strategy: the strategy its labels are compared with (default mask)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    strategy = args.strategy or (CUSTOM if args.labels_from else "mask")
    custom = label_function(args, [strategy])
    examples = check_data_early(args)
    loaded, template = load(args)
    from inspector.core.data.examples import format_examples
    from inspector.core.labels.strategies import display_name, label_examples

    tok, lm = loaded.tokenizer, loaded.model
    formatted = format_examples(examples, tok, template, loaded.name)
    problems = _template_problems(formatted, tok)
    labeled = label_examples(strategy, formatted, tok, lm, max_length=loaded.max_length, custom=custom)
    diffs = None
    if strategy == CUSTOM:
        from inspector.core.labels.strategies import diff_labels

        reference = label_examples(args.reference, formatted, tok, lm, max_length=loaded.max_length)
        diffs = [diff_labels(c, r) for c, r in zip(labeled, reference)]
    if args.json:
        out = []
        for i, (ex, lab) in enumerate(zip(examples, labeled)):
            row = dict(row=ex.row, **lab.to_dict())
            if diffs is not None:
                row["differs_from"] = diffs[i].to_dict()
            out.append(row)
        head: dict = {"model": loaded.name, "strategy": strategy, "problems": problems}
        if custom is not None and strategy == CUSTOM:
            head.update(function=custom.name, file=custom.file, fingerprint=custom.fingerprint)
        dump({**head, "examples": out})
        return 0
    from inspector.core.reports.tables import labels_table

    for i, (ex, lab) in enumerate(zip(examples, labeled)):
        print(labels_table(lab, title=f"example {ex.row}", name=display_name(strategy, custom)))
        if diffs is not None:
            d = diffs[i]
            where = f": positions {', '.join(map(str, d.positions))}" if d.count else ""
            print(f"differs from {d.reference} at {d.count} position{'s' if d.count != 1 else ''}{where}")
        print()
    return 0


def _template_problems(formatted: list, tokenizer: object) -> list[dict[str, str]]:
    """inspect-data's template-not-for-this-model, for the examples shown: said on stderr
    (before the tables, whatever the output) and listed in the JSON."""
    import sys

    from inspector.core.data.template_fit import FIX, KIND, problems_of

    out = [{"kind": KIND, "detail": detail, "fix": FIX} for detail in problems_of(formatted, tokenizer)]
    for p in out:
        print(f"causallm-inspect: {p['kind']}: {p['detail']}. Fix: {p['fix']}", file=sys.stderr)
    return out
