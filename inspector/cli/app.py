"""`causallm-inspect` without a command: the app's own options, and starting it."""

from __future__ import annotations

import argparse
from typing import Any

from inspector.cli.options import (
    LABELS_FROM_HELP,
    check_batch_config,
    data_options,
    exercise_of,
    labels_timeout_option,
    template,
    train_rows_option,
)


def register(parser: argparse.ArgumentParser) -> None:
    """The options only the app has, on the top-level parser."""
    talk = parser.add_argument_group("prepared runs (causallm-inspect prepare stores them)")
    talk.add_argument(
        "--replay-speed",
        choices=("1", "2", "5", "instant"),
        default=None,
        help="replay prepared bursts as fast as recorded (1), faster, or at once (default 1, where runs are prepared)",
    )
    talk.add_argument("--live", action="store_true", help="never replay prepared runs: every burst trains now")
    train_rows_option(parser)
    live = parser.add_argument_group("live coding")
    live.add_argument(
        "--labels-from",
        metavar="FILE[:FUNCTION]",
        default=None,
        help=LABELS_FROM_HELP + ". In the app it is the strategy 'yours' (keys 4 and u), reloaded whenever you save the file.",
    )
    labels_timeout_option(live)
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="a `trl sft --config` YAML: the batch view (F6) builds its steps with its settings (its fields start "
        "from the config's packing, max length, batch size and accumulation)",
    )
    parser.add_argument(
        "--run",
        dest="recording",  # `run` is each command's function
        metavar="DIR",
        default=None,
        help="a recording (`causallm-inspect record`, or RecorderCallback in your run): the app opens on the batch view "
        "(F6) showing its recorded steps, every rank ([ ] to move); the tokens are read with the run's tokenizer, or --model's",
    )


def _given(value: Any) -> str | None:
    return None if value is None else str(value)


def run(args: argparse.Namespace) -> int:
    """Build the app from the command line's options, run it, and return its exit code.

    Bad options and a data file with no usable row fail here, before the screen opens;
    rows that cannot be used are listed in the app (the data is read leniently).
    """
    from inspector.app import InspectorApp
    from inspector.core.data.examples import TRAIN_ROWS, Example, read_examples
    from inspector.running import run_until_quit

    markers = template(args)
    data = getattr(args, "data", None)
    examples: list[Example] | None = None
    problems: list[Any] = []
    options = None
    train_rows = getattr(args, "train_rows", TRAIN_ROWS)  # at least 1: the parser checks it
    if data:
        options = data_options(args)
        read = read_examples(data, markers, **options)
        examples, problems = read.examples, read.problems
        # The data report reads as far as the user asked (--limit; the whole file by default).
        options.update(path=data, more=read.more)
    config = check_batch_config(args)  # a config TRL's parser refuses fails before the screen opens
    turn_policy = getattr(args, "turn_policy", None) or "all"
    inference_template = getattr(args, "inference_template", None)
    if inference_template:  # a name TRL does not ship, or no such file, fails before the screen opens
        from inspector.core.labels.turn_policy import inference_template_for

        inference_template_for(None, None, inference_template)
    recording = recording_source(args)  # a folder that is not a recording fails before the screen opens
    reloader = None
    if getattr(args, "labels_from", None):
        from inspector.core.labels.process.sandbox import set_timeout
        from inspector.core.labels.reload import LabelReloader

        set_timeout(args.labels_timeout)
        reloader = exercise_reloader(args.labels_from) or LabelReloader(args.labels_from)
        reloader.load()  # a file that does not load fails here, with its file, line and frames
    app = InspectorApp(
        model=args.model,
        device=args.device or "auto",
        examples=examples,
        template=markers,
        trust_remote_code=bool(args.trust_remote_code),
        data_name=data,
        bos_token=getattr(args, "bos_token", None),
        eos_token=getattr(args, "eos_token", None),
        runs="live" if getattr(args, "live", False) else _given(getattr(args, "replay_speed", None)),
        data_problems=problems,
        data_options=options,
        train_rows=train_rows,
        labels_from=reloader,
        batch_config=config,
        turn_policy=turn_policy,
        inference_template=inference_template,
        recording=recording,
    )
    return run_until_quit(app)


def recording_source(args: argparse.Namespace) -> Any:
    """--run DIR, checked before the screen opens: a recording, and a tokenizer to read it with (the
    run's, or --model's). A step that cannot be read is said later, in the app."""
    folder = getattr(args, "recording", None)
    if not folder:
        return None
    from inspector.core.errors import InspectorError
    from inspector.core.lab.recorded import RecordingSource
    from inspector.core.recorder.record_files import open_recording
    from inspector.core.recorder.step_view import tokenizer_name

    if getattr(args, "config", None):
        raise InspectorError(
            "--run and --config both give the batch view its steps: a recording's, or a simulation's",
            f"pass one; to compare them: causallm-inspect batch --run {folder} --config {args.config}",
        )
    rec = open_recording(folder)
    return RecordingSource(folder, tokenizer_name(rec, args.model), trust_remote_code=bool(args.trust_remote_code))


def exercise_reloader(spec: str) -> Any:
    """The reloader of an exercise's starter file, with that exercise's function and parameters
    (`packed_labels`, `token_weights(micro_batches)`: checked on every save, not a label strategy);
    None for any other file, or where FILE:FUNCTION names another function."""
    from inspector.core.labels.process.protocol import LabelSource
    from inspector.core.labels.reload import LabelReloader

    source = LabelSource.parse(spec)
    found = exercise_of(spec)
    if found is None:
        return None
    exercise = found.exercise
    named = spec.strip().endswith(f":{source.function}")
    if named and source.function != exercise.function:
        return None
    return LabelReloader(LabelSource(source.path, exercise.function), kind=exercise.function_kind,
                         strategy=exercise.strategy)
