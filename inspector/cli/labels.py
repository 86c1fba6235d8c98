"""`causallm-inspect labels`: input_ids and labels of every example under one strategy and
turn policy (`--turn-policy`); with `--turns`, each assistant turn's training context beside
the inference prompt (`cli.turn_report`).

With `--labels-from` (the `custom` strategy, the default then) it also says where your
labels differ from a reference strategy (`--reference`, default mask).
"""

from __future__ import annotations

import argparse

from inspector.cli.options import check_data_early, common, dump, label_function, labels_from_option, load
from inspector.cli.turn_report import labeled_json, turns_section
from inspector.cli.turns import policy_rows, say_flags_ignored
from inspector.core.labels.strategies import ALL_STRATEGIES, CUSTOM, STRATEGIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("labels", help="input_ids and labels of every example under one strategy")
    common(p)
    p.add_argument(
        "--strategy", choices=ALL_STRATEGIES, default=None, help="label strategy (default mask, or custom with --labels-from)"
    )
    labels_from_option(p)
    p.add_argument(
        "--turns",
        action="store_true",
        help="after each example: per assistant turn its tokens, what is trained (reasoning, tool calls), and its "
        "training context beside the inference prompt, the tokens where they differ marked; with --json, \"turns\"",
    )
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
    say_flags_ignored(examples, [strategy])
    examples, formatted, inference = policy_rows(args, examples, formatted, tok, flags=strategy != "trl")
    labeled = label_examples(strategy, formatted, tok, lm, max_length=loaded.max_length, custom=custom)
    diffs = None
    if strategy == CUSTOM:
        from inspector.core.labels.strategies import diff_labels

        reference = label_examples(args.reference, formatted, tok, lm, max_length=loaded.max_length)
        diffs = [diff_labels(c, r) for c, r in zip(labeled, reference)]
    if args.json:
        out = []
        for i, (ex, lab, fe) in enumerate(zip(examples, labeled, formatted)):
            row = dict(row=ex.row, **labeled_json(lab, fe, tok, inference, args.turns))
            if diffs is not None:
                row["differs_from"] = diffs[i].to_dict()
            out.append(row)
        head: dict = {
            "model": loaded.name,
            "strategy": strategy,
            "turn_policy": args.turn_policy,
            "inference_template": inference.name if inference else None,
            "problems": problems,
        }
        if custom is not None and strategy == CUSTOM:
            head.update(function=custom.name, file=custom.file, fingerprint=custom.fingerprint)
        dump({**head, "examples": out})
        return 0
    from inspector.core.reports.tables import labels_table

    for i, (ex, lab, fe) in enumerate(zip(examples, labeled, formatted)):
        part = f" (part {fe.part[0]} of {fe.part[1]}: {args.turn_policy})" if fe.part else ""
        print(labels_table(lab, title=f"example {ex.row}{part}", name=display_name(strategy, custom)))
        if diffs is not None:
            d = diffs[i]
            where = f": positions {', '.join(map(str, d.positions))}" if d.count else ""
            print(f"differs from {d.reference} at {d.count} position{'s' if d.count != 1 else ''}{where}")
        if args.turns:
            print(turns_section(lab, fe, tok, inference))
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
