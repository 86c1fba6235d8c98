"""`causallm-inspect prepare`: run every burst and lesson demo once and store it, for the app to replay in a talk."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from inspector.cli.options import comma_list, common, data_options, dump, load, status, template, train_rows_option
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import STRATEGIES

if TYPE_CHECKING:
    from inspector.core.data.chat_format import ChatTemplate, FormattedExample
    from inspector.core.lessons.model import Lesson
    from inspector.core.models import LoadedModel

PREPARED_BURSTS = 5  # prepare stores this many of the longest lesson burst: the speaker may press + four times


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", help="run every burst and lesson demo once and store it, for the app to replay in a talk"
    )
    common(p)
    p.add_argument("--strategies", default=",".join(STRATEGIES), metavar="LIST", help="comma-separated (default all three)")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs to store (default: five bursts of the longest lesson burst)"
    )
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the bursts' default)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the bursts' default)")
    p.add_argument("--no-demos", action="store_true", help="store the bursts only, not the lesson demos that train")
    train_rows_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    strategies = comma_list(args.strategies, STRATEGIES, "--strategies")
    from inspector.core.data.examples import article_examples, read_examples

    markers = template(args)
    if args.data:  # the rows the app trains on: the first --train-rows examples that can be used
        examples = read_examples(args.data, markers, **data_options(args)).examples
    else:
        examples = article_examples()
    from inspector.core.lessons.model import load_lessons
    from inspector.core.training.burst import DEFAULT_EPOCHS, DEFAULT_SEED, BurstSettings

    lessons = load_lessons()
    longest = max([DEFAULT_EPOCHS] + [lesson.epochs or 0 for lesson in lessons])
    epochs = args.epochs or PREPARED_BURSTS * longest
    seed = args.seed if args.seed is not None else DEFAULT_SEED
    settings = BurstSettings(epochs=epochs, learning_rate=args.lr, seed=seed)
    from inspector.core.models import writable_folder
    from inspector.core.runs import store as replay

    writable_folder(replay.store_dir())  # before minutes of training, not after
    loaded, markers = load(args)
    from inspector.core.lab import Lab
    from inspector.core.training.predictions import prediction_input

    # The training slice as the app takes it: the first --train-rows examples that can be formatted.
    lab = Lab(args.model, examples=examples, template=markers, train_rows=args.train_rows if args.data else None)
    if lab.use(loaded).data_error:
        raise InspectorError(f"no row of {args.data} can be formatted for training", "check it with inspect-data")
    examples, formatted = lab.train_examples, lab.formatted
    predict_text, predict_ids = replay_prediction_target(loaded, markers)
    texts = {ex.text: prediction_input(fe, loaded.tokenizer, loaded.max_length)[0] for ex, fe in zip(examples, formatted)}
    runs = replay.prepare(
        loaded, formatted, strategies, settings, predict_ids, predict_text, texts=texts, template=markers,
        progress=status,
    )
    demos = [] if args.no_demos else _prepare_demos(loaded, markers, formatted, lessons, args.lr, seed)
    if args.json:
        dump(
            {
                "runs": [
                    {
                        "strategy": run.strategy,
                        "key": run.key,
                        "epochs": run.epochs,
                        "train_runtime": run.result["train_runtime"],
                        "holdouts": [e["holdout"] for e in run.result["epochs"]],
                    }
                    for run in runs
                ],
                "demos": [{"name": d.name, "key": d.key, "seconds": d.seconds} for d in demos],
                "store": str(replay.store_dir()),
            }
        )
        return 0
    for run in runs:
        last = run.result["epochs"][-1] if run.result["epochs"] else {}
        print(
            f"{run.strategy}: {run.epochs} epochs stored ({run.result['train_runtime']:.1f} s of training), "
            f"held-out {last.get('holdout')!r}"
        )
    for demo in demos:
        print(f"lesson demo {demo.name}: stored ({demo.seconds:.1f} s)")
    print(f"stored in {replay.store_dir()}, keyed by model, examples, strategy, settings and library versions")
    print("causallm-inspect (with the same --model and --data) replays them: see 'runs' in the Training view")
    return 0


def _prepare_demos(
    loaded: LoadedModel,
    template: ChatTemplate,
    formatted: list[FormattedExample],
    lessons: list[Lesson],
    lr: float | None,
    seed: int,
) -> list:
    """Run every lesson demo that trains, with the settings the app will show for its lesson."""
    from inspector.core.lab.context import demo_context
    from inspector.core.lessons.demos import DEMOS
    from inspector.core.runs import store as replay

    out = []
    for lesson in lessons:
        if lesson.demo is None or not DEMOS[lesson.demo].on_demand or not formatted:
            continue
        # The context the app builds for this lesson, so that the app finds what is stored.
        ctx = demo_context(
            lesson,
            loaded,
            template,
            formatted,
            learning_rate=lr,
            seed=seed,
            progress=status,
            again="close other programs and run causallm-inspect prepare again",
        )
        status(f"lesson demo {lesson.demo}: running it once")
        out.append(replay.prepare_demo(loaded, ctx, lesson.demo))
    return out


def replay_prediction_target(loaded: LoadedModel, template: ChatTemplate) -> tuple[str, list[int]]:
    """The text whose predictions a prepared run stores: the held-out example with its answer."""
    from inspector.core.lab.context import predicted_example, predicted_text
    from inspector.core.labels.strategies import encode

    return predicted_text(template), encode(predicted_example(loaded, template), loaded.tokenizer)[0]
