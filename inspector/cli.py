"""Command line: `causallm-inspect` opens the app; its subcommands run headless.

Only argparse is imported at start-up, so `--help` is instant; torch and transformers load
inside the command that needs them. A problem the user can fix ends in one line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from inspector import __version__
from inspector.core.errors import InspectorError

STRATEGY_CHOICES = ("copy", "mask", "trl")


def _common(parser: argparse.ArgumentParser, *, json_flag: bool = True, data: bool = True) -> None:
    g = parser.add_argument_group("model and data")
    g.add_argument(
        "--model",
        metavar="M",
        help="Hugging Face id (from the local cache), model folder or .gguf file; default: the embedded Gemma 3 270M",
    )
    g.add_argument("--device", metavar="D", default="auto", help="auto (CUDA, then MPS, then CPU), cuda, mps or cpu")
    g.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a model's own Python code to run (off unless given; read that code first)",
    )
    if data:
        g.add_argument(
            "--data",
            metavar="FILE",
            help="JSONL, JSON, CSV, Parquet or a saved datasets folder; rows of text (### Human:/### Assistant: format), "
            "prompt/completion or conversational messages; default: the article's five examples",
        )
    if data:
        g.add_argument("--split", metavar="NAME", help="split of a JSON object or dataset folder (default train)")
        g.add_argument("--limit", type=int, metavar="N", help="read only the first N rows")
        g.add_argument(
            "--columns", metavar="MAP", help="column names where yours differ: text=body,prompt=question,messages=chat"
        )
        g.add_argument(
            "--chat-template", metavar="FILE", help="Jinja chat template for conversational rows (default: the model's)"
        )
    g.add_argument("--bos-token", metavar="TOK", help="token to insert after each assistant marker, if not the tokenizer's bos")
    g.add_argument("--eos-token", metavar="TOK", help="token that ends each answer, if not the tokenizer's eos")
    g.add_argument("--human-marker", metavar="TEXT", default=None, help='marker of a human turn (default "\\n\\n### Human:")')
    g.add_argument(
        "--assistant-marker", metavar="TEXT", default=None, help='marker of an assistant turn (default "\\n\\n### Assistant:")'
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def _burst_options(parser: argparse.ArgumentParser, *, required_strategy: bool) -> None:
    from inspector.core.training import (
        DEFAULT_EPOCHS,
        DEFAULT_HOLDOUT,
        DEFAULT_LEARNING_RATE,
        DEFAULT_LORA_LEARNING_RATE,
        DEFAULT_SEED,
    )

    parser.add_argument(
        "--strategy",
        choices=STRATEGY_CHOICES,
        required=required_strategy,
        help="copy: labels = input_ids; mask: human part -100; trl: TRL SFTTrainer, completion-only loss",
    )
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs to train (default {DEFAULT_EPOCHS})")
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"learning rate (default {DEFAULT_LEARNING_RATE:g}, or {DEFAULT_LORA_LEARNING_RATE:g} with --lora)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    g = parser.add_argument_group("speed options (causallm-inspect bench measures them)")
    g.add_argument("--lora", action="store_true", help="train LoRA adapters (peft) instead of every weight")
    g.add_argument("--freeze-embeddings", action="store_true", help="freeze the (tied) embedding matrix")
    g.add_argument(
        "--head-trained-only",
        action="store_true",
        help="compute the LM head only where the next label is trained (same loss; trl always does this)",
    )
    g.add_argument("--batching", choices=("single", "padded"), default="single", help="one example per step, or all in one padded step")
    g.add_argument("--optimizer", choices=("fused", "foreach"), default="fused", help="AdamW implementation (default fused)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads during the burst")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--holdout",
        metavar="TEXT",
        default=DEFAULT_HOLDOUT,
        help='held-out prompt answered after each epoch: one word is asked the article\'s question (default "good"), '
        "other text is the human's message",
    )


def _at_least_one(text: str) -> int:
    """argparse type of a count: a whole number of 1 or more, or a message saying so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number: pass 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _train_rows_option(parser: argparse.ArgumentParser) -> None:
    from inspector.core.data import TRAIN_ROWS

    parser.add_argument(
        "--train-rows",
        type=_at_least_one,
        metavar="N",
        default=TRAIN_ROWS,
        help=f"with --data: the bursts train on the first N examples that can be used (default {TRAIN_ROWS})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="causallm-inspect",
        description="See which tokens a causal LM is trained on when you fine-tune it on chat data, "
        "and what it learns. Without a command, opens the interactive app.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser, json_flag=False)
    talk = parser.add_argument_group("prepared runs (causallm-inspect prepare stores them)")
    talk.add_argument(
        "--replay-speed",
        choices=("1", "2", "5", "instant"),
        default=None,
        help="replay prepared bursts as fast as recorded (1), faster, or at once (default 1, where runs are prepared)",
    )
    talk.add_argument("--live", action="store_true", help="never replay prepared runs: every burst trains now")
    _train_rows_option(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("labels", help="input_ids and labels of every example under one strategy")
    _common(p)
    p.add_argument("--strategy", choices=STRATEGY_CHOICES, default="mask", help="label strategy (default mask)")

    p = sub.add_parser("train", help="a training burst: loss and held-out answer per epoch")
    _common(p)
    _burst_options(p, required_strategy=True)

    p = sub.add_parser("predict", help="teacher-forced predictions, untrained or after a burst")
    _common(p)
    _burst_options(p, required_strategy=False)
    p.add_argument(
        "--text",
        metavar="TEXT",
        help='text to predict on (default: the held-out example with its answer, or the first --data row)',
    )
    p.add_argument("--example", type=int, default=1, metavar="N", help="with --data: which example to predict on (default 1)")
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="candidates kept per position (default 5)")

    p = sub.add_parser(
        "bench",
        help="where a training step's time goes: forward/backward/optimizer, tokens/s, GFLOP/s vs the matmul peak",
    )
    _common(p)
    p.add_argument("--strategies", default="copy,mask,trl", metavar="LIST", help="comma-separated (default all three)")
    p.add_argument(
        "--options",
        default="all",
        metavar="LIST",
        help="comma-separated speed options, or all: default, foreach-adamw, frozen-embedding, lora, "
        "head-trained-only, padded-batch, threads-1, compile",
    )
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3; the first step is a warm-up)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the bursts' default)")
    p.add_argument(
        "--data-rows",
        type=int,
        metavar="N",
        help="instead: time inspect-data on a generated N-row conversational JSONL (rows/s, peak memory)",
    )
    p.add_argument(
        "--memory",
        action="store_true",
        help="instead: resident memory idle, during and after each strategy's burst (as the app's a), "
        "after a continued burst and after a reset (x), against the memory targets",
    )

    p = sub.add_parser("lesson", help="a lesson headless: its prose and its computed views as text")
    _common(p)
    p.add_argument("number", metavar="N", help="lesson number (1, 2, ...) or id")
    p.add_argument("--plain", action="store_true", help="plain text, no colours (the default when not a terminal)")

    p = sub.add_parser("export", help="a lesson's code as a standalone script that runs on its own")
    _common(p, json_flag=False)
    p.add_argument("number", metavar="N", help="lesson number (1, 2, ...) or id")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write it (default: print it)")
    p.add_argument("--notebook", action="store_true", help="write a Jupyter notebook (.ipynb) instead of a script")

    p = sub.add_parser(
        "prepare", help="run every burst and lesson demo once and store it, for the app to replay in a talk"
    )
    _common(p)
    p.add_argument("--strategies", default="copy,mask,trl", metavar="LIST", help="comma-separated (default all three)")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs to store (default: five bursts of the longest lesson burst)"
    )
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the bursts' default)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the bursts' default)")
    p.add_argument("--no-demos", action="store_true", help="store the bursts only, not the lesson demos that train")
    _train_rows_option(p)

    p = sub.add_parser("inspect-data", help="a report over a whole dataset: trained tokens and the rows that train nothing")
    _common(p, data=False)
    p.add_argument("file", metavar="FILE", help="JSONL, JSON, CSV, Parquet or a saved datasets folder")
    p.add_argument("--split", metavar="NAME", help="split of a JSON object or dataset folder (default train)")
    p.add_argument("--limit", type=int, metavar="N", help="read only the first N rows")
    p.add_argument("--columns", metavar="MAP", help="column names where yours differ: text=body,prompt=question")
    p.add_argument("--chat-template", metavar="FILE", help="Jinja chat template for conversational rows")
    p.add_argument(
        "--strategy", default="copy,mask", metavar="LIST", help="comma-separated: copy, mask, trl (trl loads the model; default copy,mask)"
    )
    p.add_argument("--max-length", type=int, metavar="N", help="report rows whose answers a cut at N tokens would lose")
    p.add_argument(
        "--fail-on",
        default="",
        metavar="KINDS",
        help="exit 1 if any of these problems is found (comma-separated, or 'any'): "
        "bad-row, mixed-format, template-not-found, no-trained-tokens, eos-not-trained, truncated-answer, pad-equals-eos",
    )

    p = sub.add_parser("models", help="the embedded model, the cache and its state")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return _run_app(args)
        commands = {
            "labels": cmd_labels,
            "train": cmd_train,
            "predict": cmd_predict,
            "models": cmd_models,
            "bench": cmd_bench,
            "prepare": cmd_prepare,
            "inspect-data": cmd_inspect_data,
            "lesson": _lesson_command("cmd_lesson"),
            "export": _lesson_command("cmd_export"),
        }
        return commands[args.command](args)
    except InspectorError as exc:
        print(f"causallm-inspect: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("causallm-inspect: interrupted", file=sys.stderr)
        return 130


def _lesson_command(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        from inspector import lesson_commands

        return getattr(lesson_commands, name)(args)

    return run


# --- shared steps ---------------------------------------------------------------------------


def _template(args: argparse.Namespace) -> Any:
    from inspector.core.chat import ChatTemplate

    def unescape(s: str | None, default: str) -> str:
        # Shells make typing a newline awkward, so \n and \t are understood; nothing else is touched.
        if s is None:
            return default
        return s.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\0", "\\")

    t = ChatTemplate()
    return ChatTemplate(unescape(args.human_marker, t.human), unescape(args.assistant_marker, t.assistant))


def _status(msg: str) -> None:
    print(f"… {msg}", file=sys.stderr, flush=True)


def _load(args: argparse.Namespace, *, tokenizer_only: bool = False) -> Any:
    from inspector.core.models import load_model

    template = _template(args)  # check the options before the slow load
    loaded = load_model(
        args.model,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        progress=_status,
        bos_token=args.bos_token,
        eos_token=args.eos_token,
        tokenizer_only=tokenizer_only,
    )
    if loaded.trust_remote_code:
        _status("trust_remote_code is ON: this model's own code was allowed to run")
    return loaded, template


def _examples(args: argparse.Namespace, template: Any) -> list:
    from inspector.core.data import article_examples, load_examples

    if not getattr(args, "data", None):
        return article_examples()
    return load_examples(args.data, template, **data_options(args))


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """How to read --data: split, limit, column mapping and chat template, from the options."""
    from inspector.core.conversations import read_chat_template
    from inspector.core.datasource import parse_columns

    return {
        "split": args.split,
        "limit": args.limit,
        "columns": parse_columns(args.columns),
        "chat_template": read_chat_template(args.chat_template) if args.chat_template else None,
    }


def _check_data_early(args: argparse.Namespace) -> list:
    """Read the data before loading the model, so a bad file fails in a second, not a minute."""
    return _examples(args, _template(args))


def _dump(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=1))


# --- commands --------------------------------------------------------------------------------


def cmd_labels(args: argparse.Namespace) -> int:
    examples = _check_data_early(args)
    loaded, template = _load(args)
    from inspector.core.data import format_examples
    from inspector.core.labels import label_examples

    formatted = format_examples(examples, loaded.tokenizer, template, loaded.name)
    labeled = label_examples(args.strategy, formatted, loaded.tokenizer, loaded.model, max_length=loaded.max_length)
    if args.json:
        _dump(
            {
                "model": loaded.name,
                "strategy": args.strategy,
                "examples": [dict(row=ex.row, **lab.to_dict()) for ex, lab in zip(examples, labeled)],
            }
        )
        return 0
    from inspector.core.report import labels_table

    for ex, lab in zip(examples, labeled):
        print(labels_table(lab, title=f"example {ex.row}"))
        print()
    return 0


class _StopFlag:
    """Ctrl-C during a burst stops it between steps; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.stop = False

    def __enter__(self) -> _StopFlag:
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("\n… stopping after this step (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._old)


def _settings(args: argparse.Namespace) -> Any:
    from inspector.core.training import BurstSettings

    return BurstSettings(
        epochs=args.epochs,
        learning_rate=args.lr,
        seed=args.seed,
        holdout=args.holdout,
        lora=args.lora,
        train_embeddings=not args.freeze_embeddings,
        head_trained_only=args.head_trained_only,
        batching=args.batching,
        optimizer=args.optimizer,
        threads=args.threads,
        compile=args.compile,
    )


def _run_burst(args: argparse.Namespace, loaded: Any, template: Any, examples: list, *, verbose: bool) -> Any:
    from inspector.core.data import format_examples
    from inspector.core.training import TrainingSession

    settings = _settings(args)
    formatted = format_examples(examples, loaded.tokenizer, template, loaded.name)
    total = args.epochs * len(formatted)

    def on_step(log: Any) -> None:
        if sys.stderr.isatty():
            print(f"\r… {args.strategy}: step {log.step}/{total}  loss {log.loss:.4f}", end="", file=sys.stderr, flush=True)

    def on_epoch(log: Any) -> None:
        if sys.stderr.isatty():
            print("\r", end="", file=sys.stderr)
        if verbose:
            print(f"epoch {log.epoch:>3}  loss {log.loss:8.4f}  held-out: {log.holdout!r}", flush=True)

    session = TrainingSession(
        loaded.model, loaded.tokenizer, formatted, args.strategy, settings,
        device=loaded.device, template=template, max_length=loaded.max_length,
    )
    with session, _StopFlag() as flag:
        if verbose:
            print(f"held-out prompt: {session.prompt.text!r}")
            print(f"untrained answer: {session.holdout_answer()!r}")
        result = session.run(on_step=on_step, on_epoch=on_epoch, should_stop=lambda: flag.stop)
    return session, result


def _per_step(result: Any) -> str:
    """` (median 1.04 s per step, 1.02–1.09)`, or nothing when no step was timed."""
    from inspector.core.step_times import StepSpread, seconds

    spread = StepSpread.of_steps(result.steps)
    if spread is None:
        return ""
    return f" (median {seconds(spread.median)} s per step, {seconds(spread.min)}–{seconds(spread.max)})"


def cmd_train(args: argparse.Namespace) -> int:
    examples = _check_data_early(args)
    loaded, template = _load(args)
    _session, result = _run_burst(args, loaded, template, examples, verbose=not args.json)
    if args.json:
        from dataclasses import asdict

        _dump({"model": loaded.name, "device": loaded.device, "settings": asdict(_session.settings), **result.to_dict()})
        return 0
    if result.stopped:
        print(f"stopped on request after step {result.steps[-1].step if result.steps else 0}")
    print(
        f"{args.strategy}: {len(result.steps)} steps in {result.train_runtime:.1f} s{_per_step(result)}, "
        f"{result.tokens_per_second:.0f} tokens/s, {result.trained_tokens} of {result.input_tokens} tokens trained"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from inspector.core.chat import HOLDOUT_ANSWER, HOLDOUT_WORD, article_text

    examples = _check_data_early(args)
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
        text = article_text(HOLDOUT_WORD, HOLDOUT_ANSWER, _template(args))
    loaded, template = _load(args)
    from inspector.core.chat import add_special_tokens
    from inspector.core.labels import encode
    from inspector.core.predictions import accuracy, teacher_forced

    fe = add_special_tokens(text, loaded.tokenizer.bos_token, loaded.tokenizer.eos_token, template, model_name=loaded.name)
    ids, _ = encode(fe, loaded.tokenizer)
    result = None
    if args.strategy:
        _session, result = _run_burst(args, loaded, template, examples, verbose=False)
    rows = teacher_forced(loaded.model, loaded.tokenizer, ids, top_k=args.top_k)
    state = f"after {args.strategy}, {result.epochs_done:g} epochs" if result else "untrained"
    if args.json:
        _dump(
            {
                "model": loaded.name,
                "state": state,
                "text": fe.text,
                "accuracy": accuracy(rows),
                "holdout": result.epochs[-1].holdout if result and result.epochs else None,
                "positions": [r.to_dict() for r in rows],
            }
        )
        return 0
    from inspector.core.report import predictions_table

    print(predictions_table(rows, title=f"teacher-forced predictions, {state}"))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from inspector.core.bench import OPTIONS, STRATEGIES

    if args.data_rows is not None:
        return _bench_data(args)

    strategies = [x.strip() for x in args.strategies.split(",") if x.strip()]
    options = list(OPTIONS) if args.options == "all" else [x.strip() for x in args.options.split(",") if x.strip()]
    for name, known, flag in ((strategies, STRATEGIES, "--strategies"), (options, tuple(OPTIONS), "--options")):
        bad = [x for x in name if x not in known]
        if bad or not name:
            raise InspectorError(f"{flag} has unknown entries: {', '.join(bad) or '(none given)'}", f"choose from {', '.join(known)}")
    examples = _check_data_early(args)
    loaded, template = _load(args)
    if args.memory:
        return _bench_memory(args, loaded, template, examples, strategies)
    from inspector.core.bench import format_report, run_bench
    from inspector.core.data import format_examples
    from inspector.core.models import load_model
    from inspector.core.training import DEFAULT_LORA_LEARNING_RATE, BurstSettings

    def warm_load() -> float:
        # The first load above may have converted the model; this one reads the cache.
        again = load_model(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
        seconds = again.load_seconds
        del again
        return seconds

    settings = BurstSettings(epochs=args.epochs, **({"learning_rate": args.lr} if args.lr else {}))
    formatted = format_examples(examples, loaded.tokenizer, template, loaded.name)
    _status(f"benchmarking {len(strategies)} strategies x {len(options)} options, {args.epochs} epochs each")

    def progress(r: Any) -> None:
        _status(f"{r.strategy}/{r.option}: {r.step_s.median:.3f} s per step, {r.gflops:.1f} GFLOP/s")

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
        _dump(report.to_dict())
    else:
        print(format_report(report))
    return 0


PREPARED_BURSTS = 5  # prepare stores this many of the longest lesson burst: the speaker may press + four times


def cmd_prepare(args: argparse.Namespace) -> int:
    from inspector.core.labels import STRATEGIES

    strategies = [x.strip() for x in args.strategies.split(",") if x.strip()]
    bad = [x for x in strategies if x not in STRATEGIES]
    if bad or not strategies:
        raise InspectorError(f"--strategies has unknown entries: {', '.join(bad) or '(none given)'}", f"choose from {', '.join(STRATEGIES)}")
    from inspector.core.data import article_examples, read_examples

    template = _template(args)
    if args.data:  # the rows the app trains on: the first --train-rows examples that can be used
        examples = read_examples(args.data, template, **data_options(args)).examples
    else:
        examples = article_examples()
    from inspector.core.lessons import load_lessons
    from inspector.core.training import DEFAULT_EPOCHS, DEFAULT_SEED, BurstSettings

    lessons = load_lessons()
    longest = max([DEFAULT_EPOCHS] + [lesson.epochs or 0 for lesson in lessons])
    epochs = args.epochs or PREPARED_BURSTS * longest
    seed = args.seed if args.seed is not None else DEFAULT_SEED
    settings = BurstSettings(epochs=epochs, learning_rate=args.lr, seed=seed)
    from inspector.core import replay
    from inspector.core.models import writable_folder

    writable_folder(replay.store_dir())  # before minutes of training, not after
    loaded, template = _load(args)
    from inspector.core.data import format_leniently
    from inspector.core.predictions import prediction_input

    pairs, _ = format_leniently(examples, loaded.tokenizer, template, loaded.name)
    if not pairs:
        raise InspectorError(f"no row of {args.data} can be formatted for training", "check it with inspect-data")
    pairs = pairs[: args.train_rows] if args.data else pairs
    examples, formatted = [ex for ex, _ in pairs], [fe for _, fe in pairs]
    predict_text, predict_ids = replay_prediction_target(loaded, template)
    texts = {ex.text: prediction_input(fe, loaded.tokenizer, loaded.max_length)[0] for ex, fe in zip(examples, formatted)}
    runs = replay.prepare(
        loaded, formatted, strategies, settings, predict_ids, predict_text, texts=texts, progress=_status
    )
    demos = [] if args.no_demos else _prepare_demos(loaded, template, formatted, lessons, args.lr, seed)
    if args.json:
        _dump(
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


def _prepare_demos(loaded: Any, template: Any, formatted: list, lessons: list, lr: float | None, seed: int) -> list:
    """Run every lesson demo that trains, with the settings the app will show for its lesson."""
    from inspector.core import replay
    from inspector.core.chat import add_special_tokens
    from inspector.core.demos import DEMOS, DemoContext
    from inspector.core.training import DEFAULT_EPOCHS

    out = []
    tok = loaded.tokenizer
    for lesson in lessons:
        if lesson.demo is None or not DEMOS[lesson.demo].on_demand or not formatted:
            continue
        example = (
            add_special_tokens(lesson.example, tok.bos_token, tok.eos_token, template, model_name=loaded.name)
            if lesson.example
            else formatted[0]
        )
        ctx = DemoContext(
            loaded.model,
            tok,
            list(formatted),
            example,
            device=loaded.device,
            template=template,
            strategy=lesson.strategy,
            epochs=lesson.epochs or DEFAULT_EPOCHS,
            learning_rate=lr,
            seed=seed,
            progress=_status,
            again="close other programs and run causallm-inspect prepare again",
        )
        _status(f"lesson demo {lesson.demo}: running it once")
        out.append(replay.prepare_demo(loaded, ctx, lesson.demo))
    return out


def replay_prediction_target(loaded: Any, template: Any) -> tuple[str, list[int]]:
    """The text whose predictions a prepared run stores: the held-out example with its answer."""
    from inspector.core.chat import HOLDOUT_ANSWER, HOLDOUT_WORD, add_special_tokens, article_text
    from inspector.core.labels import encode

    text = article_text(HOLDOUT_WORD, HOLDOUT_ANSWER, template)
    fe = add_special_tokens(text, loaded.tokenizer.bos_token, loaded.tokenizer.eos_token, template, model_name=loaded.name)
    return text, encode(fe, loaded.tokenizer)[0]


def cmd_inspect_data(args: argparse.Namespace) -> int:
    from inspector.core.conversations import read_chat_template
    from inspector.core.datasource import detect_format, parse_columns
    from inspector.core.inspect_data import PROBLEMS, format_report, inspect_data
    from inspector.core.labels import STRATEGIES

    strategies = [x.strip() for x in args.strategy.split(",") if x.strip()]
    bad = [x for x in strategies if x not in STRATEGIES]
    if bad or not strategies:
        raise InspectorError(f"--strategy has unknown entries: {', '.join(bad) or '(none given)'}", f"choose from {', '.join(STRATEGIES)}")
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
    loaded, template = _load(args, tokenizer_only="trl" not in strategies)
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
        progress=progress,
    )
    if tty:
        print("\r", end="", file=sys.stderr)
    if args.json:
        _dump(report.to_dict())
    else:
        print(format_report(report))
    found = fail_on & set(report.counts)
    return 1 if found else 0


def _bench_memory(args: argparse.Namespace, loaded: Any, template: Any, examples: Any, strategies: list[str]) -> int:
    from inspector.core.bench import format_memory_report, memory_bench
    from inspector.core.data import format_examples
    from inspector.core.training import BurstSettings

    settings = BurstSettings(epochs=args.epochs, **({"learning_rate": args.lr} if args.lr else {}))
    formatted = format_examples(examples, loaded.tokenizer, template, loaded.name)
    _status(f"memory: {', '.join(strategies)} in turn, {args.epochs} epochs each, then {strategies[0]} again, then a reset")
    report = memory_bench(
        loaded,
        formatted,
        strategies=strategies,
        settings=settings,
        on_stage=lambda name, mb: _status(f"{name}: {mb:.0f} MB"),
    )
    if args.json:
        _dump(report.to_dict())
    else:
        print(format_memory_report(report))
    return 0


def _bench_data(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from inspector.core.bench import data_scale_bench

    if args.data_rows < 10:
        raise InspectorError(f"--data-rows {args.data_rows} is too few to measure", "pass 10 or more, e.g. 100000")
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-bench-") as tmp:
        result = data_scale_bench(args.data_rows, args.model, Path(tmp))
    if args.json:
        _dump(result)
        return 0
    for n, r in result.items():
        if n == "rows":
            continue
        print(f"{int(n):>9} rows: {r['seconds']:6.1f} s, {r['rows_per_s']:8.0f} rows/s, peak {r['peak_rss_mb']:6.0f} MB, problems {r['problems']}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from inspector.core.models import cache_report

    report = cache_report()
    if args.json:
        _dump(report)
        return 0
    e = report["embedded"]
    print(f"embedded model: {e['title']}")
    print(f"  from the PyPI package {e['package']}")
    print(f"  fp32 cache: {e['cache_path']} ({'converted' if e['converted'] else 'not converted yet: the first run converts it'})")
    print(f"cache folder: {report['cache_dir']} (set {report['cache_env']} to move it)")
    for entry in report["entries"]:
        state = "complete" if entry["complete"] else "INCOMPLETE (ignored, rebuilt on next use)"
        print(f"  {entry['name']}: {entry['bytes'] / 1e6:.0f} MB, {state}")
    if not report["entries"]:
        print("  (empty)")
    print("other models: pass --model with a local folder, a .gguf file, or a Hugging Face id already in the local cache")
    return 0


def _run_app(args: argparse.Namespace) -> int:
    # Bad options and a data file with no usable row fail here, before the screen opens;
    # rows that cannot be used are listed in the app (run_app reads the data leniently).
    from inspector.app import run_app

    return run_app(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
