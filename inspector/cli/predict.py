"""`causallm-inspect predict`: teacher-forced predictions, untrained or after a burst."""

from __future__ import annotations

import argparse
from typing import Any

from inspector.cli.options import (
    burst_options,
    check_data_early,
    common,
    dump,
    label_function,
    labels_from_option,
    load,
    template,
)
from inspector.cli.train import run_burst
from inspector.core.errors import InspectorError


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
    from inspector.core.data.chat_format import HOLDOUT_ANSWER, HOLDOUT_WORD, article_text

    custom = label_function(args, [args.strategy] if args.strategy else [])
    examples = check_data_early(args)
    if args.top_k < 1:
        raise InspectorError(f"--top-k must be at least 1, not {args.top_k}", "pass a positive number")
    if args.text is not None:
        text = args.text
    elif args.data:
        if not 1 <= args.example <= len(examples):
            raise InspectorError(
                f"--example {args.example} is out of range", f"the data has {len(examples)} examples: pass 1 to {len(examples)}"
            )
        text = examples[args.example - 1].text
    else:
        text = article_text(HOLDOUT_WORD, HOLDOUT_ANSWER, template(args))
    if args.every_epoch and not args.strategy:
        raise InspectorError("--every-epoch needs a burst to watch", "pass --strategy S (and --epochs N)")
    loaded, markers = load(args)
    from inspector.core.data.chat_format import add_special_tokens
    from inspector.core.training.predictions import accuracy, prediction_input, teacher_forced

    fe = add_special_tokens(text, loaded.tokenizer.bos_token, loaded.tokenizer.eos_token, markers, model_name=loaded.name)
    ids, answer = prediction_input(fe, loaded.tokenizer, loaded.max_length)
    if args.every_epoch:
        return _every_epoch(args, loaded, markers, examples, custom, fe.text, ids, answer)
    result = None
    if args.strategy:
        _session, result = run_burst(args, loaded, markers, examples, verbose=False, custom=custom)
    rows = teacher_forced(loaded.model, loaded.tokenizer, ids, top_k=args.top_k)
    from inspector.core.labels.strategies import display_name

    state = f"after {display_name(args.strategy, custom)}, {result.epochs_done:g} epochs" if result else "untrained"
    if args.json:
        dump(
            {
                "model": loaded.name,
                "state": state,
                "text": fe.text,
                "accuracy": accuracy(rows),
                "holdout": result.epochs[-1].holdout if result and result.epochs else None,
                "positions": _positions(rows, answer),
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
    text: str,
    ids: list[int],
    answer: frozenset[int],
) -> int:
    """`predict --every-epoch`: the rows before the burst (epoch 0) and after each of its epochs."""
    from inspector.core.labels.strategies import display_name
    from inspector.core.training.learning import Curve, heat_map_lines
    from inspector.core.training.predictions import accuracy, teacher_forced

    untrained = teacher_forced(loaded.model, loaded.tokenizer, ids, top_k=args.top_k)
    session, result = run_burst(args, loaded, markers, examples, verbose=False, custom=custom, watch={text: ids})
    epochs = {0: untrained, **{e: rows[text] for e, rows in sorted(session.epoch_rows.items())}}
    name = display_name(args.strategy, custom)
    curve = Curve(args.strategy, name, epochs, [(log.epoch, log.loss) for log in result.epochs])
    if args.json:
        dump(
            {
                "model": loaded.name,
                "strategy": args.strategy,
                "text": text,
                "summary": curve.summary(answer),
                "epochs": [
                    {
                        "epoch": epoch,
                        "loss": dict(curve.losses).get(epoch),
                        "accuracy": accuracy(rows),
                        "positions": _positions(rows, answer),
                    }
                    for epoch, rows in epochs.items()
                ],
            }
        )
        return 0
    print(f"p(true next token) per position, {name}, epoch by epoch (darker: likelier; shades ' ░▒▓█' by fifths)")
    print("\n".join(heat_map_lines(epochs, answer)))
    print(curve.summary(answer))
    return 0
