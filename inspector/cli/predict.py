"""`causallm-inspect predict`: teacher-forced predictions, untrained or after a burst."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inspector.cli.options import (
    burst_options,
    check_data_early,
    common,
    dump,
    label_function,
    labels_from_option,
    load,
)
from inspector.cli.train import run_burst
from inspector.core.errors import InspectorError

if TYPE_CHECKING:
    from inspector.core.lab import Lab


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="teacher-forced predictions, untrained or after a burst")
    common(p)
    burst_options(p, required_strategy=False)
    labels_from_option(p)
    p.add_argument(
        "--text",
        metavar="TEXT",
        help='text to predict on (default: the held-out example with its answer, or the first --data row)',
    )
    p.add_argument("--example", type=int, default=1, metavar="N", help="with --data: which example to predict on (default 1)")
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="candidates kept per position (default 5)")
    p.add_argument(
        "--every-epoch",
        action="store_true",
        help="with --strategy: the predictions after every epoch (epoch 0: untrained), as a heat map of p(true)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    custom = label_function(args, [args.strategy] if args.strategy else [])
    examples = check_data_early(args)
    if args.top_k < 1:
        raise InspectorError(f"--top-k must be at least 1, not {args.top_k}", "pass a positive number")
    if args.data and args.text is None and not 1 <= args.example <= len(examples):
        raise InspectorError(
            f"--example {args.example} is out of range", f"the data has {len(examples)} examples: pass 1 to {len(examples)}"
        )
    if args.every_epoch and not args.strategy:
        raise InspectorError("--every-epoch needs a burst to watch", "pass --strategy S (and --epochs N)")
    loaded, markers = load(args)
    from inspector.core.labels.strategies import display_name
    from inspector.core.training.predictions import accuracy

    def text_of(lab: Lab) -> str:
        """--text, the --data row asked for, or the held-out example with its answer (the app's)."""
        if args.text is not None:
            return args.text
        return examples[args.example - 1].text if args.data else lab.predicted_text()

    if args.every_epoch:
        return _every_epoch(args, loaded, markers, examples, custom, text_of)
    result = None
    if args.strategy:
        lab, result = run_burst(args, loaded, markers, examples, verbose=False, custom=custom)
    else:
        from inspector.core.lab import Lab

        lab = Lab.around(loaded, examples, markers, train_rows=0, in_place=True)
    with lab:
        text = text_of(lab)
        predictions = lab.predictions(text, top_k=args.top_k)
        rows = predictions.rows[args.strategy or "untrained"]
        fe_text = lab.formatted_for(text).text
    assert rows is not None
    state = f"after {display_name(args.strategy, custom)}, {result.epochs_done:g} epochs" if result else "untrained"
    if args.json:
        dump(
            {
                "model": loaded.name,
                "state": state,
                "text": fe_text,
                "accuracy": accuracy(rows),
                "holdout": result.epochs[-1].holdout if result and result.epochs else None,
                "positions": _positions(rows, predictions.answer),
            }
        )
        return 0
    from inspector.core.reports.tables import predictions_table

    print(predictions_table(rows, title=f"teacher-forced predictions, {state}"))
    return 0


def _positions(rows: list[Any], answer: frozenset[int]) -> list[dict[str, Any]]:
    """The rows as JSON, each with `answer`: whether its true next token belongs to an answer."""
    return [{**r.to_dict(), "answer": r.position in answer} for r in rows]


def _every_epoch(
    args: argparse.Namespace,
    loaded: Any,
    markers: Any,
    examples: list[Any],
    custom: Any,
    text_of: Callable[[Lab], str],
) -> int:
    """`predict --every-epoch`: the rows before the burst (epoch 0) and after each of its epochs,
    as the Lab records them for the learning view."""
    from inspector.core.training.learning import heat_map_lines
    from inspector.core.training.predictions import accuracy

    text = ""

    def watch(lab: Lab) -> None:  # on the untrained model: epoch 0, and the text watched from the start
        nonlocal text
        text = text_of(lab)
        lab.learning(text)

    lab, _result = run_burst(args, loaded, markers, examples, verbose=False, custom=custom, before=watch)
    with lab:
        learning = lab.learning(text)
        fe_text = lab.formatted_for(text).text
    curve = learning.curves[args.strategy]
    answer = learning.answer
    if args.json:
        dump(
            {
                "model": loaded.name,
                "strategy": args.strategy,
                "text": fe_text,
                "summary": curve.summary(answer),
                "epochs": [
                    {
                        "epoch": epoch,
                        "loss": dict(curve.losses).get(epoch),
                        "accuracy": accuracy(rows),
                        "positions": _positions(rows, answer),
                    }
                    for epoch, rows in curve.epochs.items()
                ],
            }
        )
        return 0
    print(f"p(true next token) per position, {curve.name}, epoch by epoch (darker: likelier; shades ' ░▒▓█' by fifths)")
    print("\n".join(heat_map_lines(curve.epochs, answer)))
    print(curve.summary(answer))
    return 0
