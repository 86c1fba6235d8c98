"""`causallm-inspect prepare`: run every burst and the slow lesson demos once and store them, for the app to replay in a talk;
`--lessons 1,3,10` records only what those lessons train."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from inspector.cli.options import comma_list, common, data_options, dump, load, status, template, train_rows_option
from inspector.cli.turns import check_turn_options, say_flags_ignored, use_policy_rows
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import STRATEGIES

if TYPE_CHECKING:
    from inspector.core.lessons.model import Lesson

PREPARED_BURSTS = 5  # prepare stores this many of the longest lesson burst: the speaker may press + four times


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="run every burst and the lesson demos that train or build TRL trainers once and store them, "
        "for the app to replay in a talk",
    )
    common(p)
    p.add_argument("--strategies", default=None, metavar="LIST", help="comma-separated (default all three)")
    p.add_argument(
        "--lessons",
        default=None,
        metavar="LIST",
        help="comma-separated lesson numbers or ids: record only what they train (their view's bursts, "
        "their slow demos), e.g. --lessons 1,3,4,5,10",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs to store (default: five bursts of the longest lesson burst)"
    )
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the bursts' default)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the bursts' default)")
    p.add_argument("--no-demos", action="store_true", help="store the bursts only, not the lesson demos")
    train_rows_option(p)
    p.set_defaults(run=run)


def chosen_lessons(text: str, lessons: list[Lesson]) -> list[tuple[int, Lesson]]:
    """The lessons of --lessons (numbers or ids, comma-separated), in the order given, each once."""
    from inspector.cli.lesson import pick_lesson

    entries = [x.strip() for x in text.split(",") if x.strip()]
    if not entries:
        raise InspectorError("--lessons names no lesson", f"give numbers from 1 to {len(lessons)} or ids, e.g. --lessons 1,3,10")
    chosen: dict[int, Lesson] = {}
    for entry in entries:
        try:
            number, lesson = pick_lesson(lessons, entry)
        except InspectorError as exc:
            raise InspectorError(f"--lessons: {exc.problem}", exc.fix) from None
        chosen.setdefault(number, lesson)
    return list(chosen.items())


def lesson_plan(chosen: list[tuple[int, Lesson]]) -> tuple[list[str], list[Lesson], str]:
    """What the chosen lessons need recorded: the strategies their views train (in the usual order),
    the lessons whose demo prepare stores, and one line naming the lessons with nothing to record."""
    from inspector.core.lessons.facts import lesson_bursts, prepared_demo

    wanted = {s for _, lesson in chosen for s in lesson_bursts(lesson)}
    demos = [lesson for _, lesson in chosen if prepared_demo(lesson) is not None]
    idle = [f"{n} ({lesson.id})" for n, lesson in chosen if not lesson_bursts(lesson) and prepared_demo(lesson) is None]
    many = len(idle) > 1
    line = (
        f"nothing to prepare for lesson{'s' * many} {', '.join(idle)}: {'they train' if many else 'it trains'} "
        "nothing, and what they show is computed when they open" if idle else ""
    )
    return [s for s in STRATEGIES if s in wanted], demos, line


def run(args: argparse.Namespace) -> int:
    from inspector.core.lessons.model import load_lessons

    lessons = load_lessons()
    if args.lessons is not None and args.strategies is not None:
        raise InspectorError("--lessons and --strategies both choose what to record", "give one of them")
    idle = ""
    if args.lessons is not None:
        strategies, demo_lessons, idle = lesson_plan(chosen_lessons(args.lessons, lessons))
        if args.no_demos:
            demo_lessons = []
    else:
        strategies = comma_list(args.strategies or ",".join(STRATEGIES), STRATEGIES, "--strategies")
        demo_lessons = [] if args.no_demos else lessons
    from inspector.core.data.examples import article_examples, read_examples

    markers = template(args)
    check_turn_options(args)  # a bad --inference-template fails before the model loads
    if args.data:  # the rows the app trains on: the first --train-rows examples that can be used
        examples = read_examples(args.data, markers, **data_options(args)).examples
    else:
        examples = article_examples(markers)
    from inspector.core.training.burst import DEFAULT_EPOCHS, DEFAULT_SEED, BurstSettings

    longest = max([DEFAULT_EPOCHS] + [lesson.epochs or 0 for lesson in lessons])
    epochs = args.epochs or PREPARED_BURSTS * longest
    seed = args.seed if args.seed is not None else DEFAULT_SEED
    settings = BurstSettings(epochs=epochs, learning_rate=args.lr, seed=seed)
    from inspector.core.recording import ready_store

    folder = ready_store()  # checked writable before minutes of training, not after
    if not strategies and not demo_lessons:  # before the model loads
        if args.json:
            dump({"runs": [], "demos": [], "store": str(folder), "nothing_to_prepare": idle})
        else:
            print(idle or "nothing to prepare: --no-demos leaves nothing these lessons record")
        return 0
    loaded, markers = load(args)
    from inspector.core.lab import Lab
    from inspector.core.recording import prepare_demos, prepare_runs

    # The training slice as the app takes it: the first --train-rows examples that can be formatted.
    lab = Lab(args.model, examples=examples, template=markers, train_rows=args.train_rows if args.data else None)
    if lab.use(loaded).data_error:
        raise InspectorError(f"no row of {args.data} can be formatted for training", "check it with inspect-data")
    say_flags_ignored(lab.train_examples, strategies)
    use_policy_rows(lab, args)  # the rows --turn-policy trains
    with lab:
        texts = [ex.text for ex in lab.train_examples]
        runs = prepare_runs(lab, strategies, settings, texts=texts, progress=status)
        demos = prepare_demos(lab, demo_lessons, learning_rate=args.lr, seed=seed, progress=status)
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
                "store": str(folder),
                "nothing_to_prepare": idle,
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
    if idle:
        print(idle)
    print(f"stored in {folder}, keyed by model, examples, strategy, settings and library versions")
    print("causallm-inspect (with the same --model and --data) replays them: see 'runs' in the Training view; "
          "the lesson demos stored replay when their lesson opens or on g")
    return 0
