"""What the commands share: the one parser of the command line (`CommandLine`), the model and
data options, the burst options, and the steps every command takes (read the markers, read the
data, load the model, print JSON).

Only argparse and light core modules are imported here; torch and transformers load inside
the helpers that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import ALL_STRATEGIES, CUSTOM

if TYPE_CHECKING:
    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.data.examples import Example
    from inspector.core.exercises.registry import FoundExercise
    from inspector.core.labels.process.parent import LabelFunction
    from inspector.core.labels.process.protocol import FunctionKind
    from inspector.core.models import LoadedModel


class CommandLine(argparse.ArgumentParser):
    """The top-level parser, and the one place a command line is read.

    A program option (one the top-level --help lists: --model, --data, --config...) means the
    same typed before the command as after it; typed in both places, the one after the command
    wins. Typed before a command that does not take it, it is refused with one line that says
    where it goes, never dropped. To know what was typed, the parsers of a program option hold
    no default (argparse's SUPPRESS): the defaults are filled in once the line is read.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}
        self.program: dict[str, argparse.Action] = {}  # the program's options, by dest
        self.defaults: dict[str, Any] = {}  # and their defaults

    def add_commands(self, commands: Sequence[Any]) -> None:
        """The subcommands, each module's `register(subparsers)`, after the program's own options."""
        sub = self.add_subparsers(dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser)
        for command in commands:
            command.register(sub)
        self.commands = dict(sub.choices)
        for choice in sub._choices_actions:  # `COMMAND --help` opens with what the command does, as `--help` lists it
            if self.commands[choice.dest].description is None:
                self.commands[choice.dest].description = choice.help + "."
        self.program = {a.dest: a for a in self._actions if a.option_strings and a.dest not in ("help", "version")}
        self.defaults = {dest: action.default for dest, action in self.program.items()}
        for action in self.program.values():
            action.default = argparse.SUPPRESS
        for name, parser in self.commands.items():
            for action in parser._actions:
                if action.dest in self.program:
                    if action.default != self.defaults[action.dest]:  # one meaning: a bug of ours, not the user's
                        raise ValueError(f"{name}'s {action.option_strings[0]} has another default than the program's")
                    action.default = argparse.SUPPRESS

    def takes(self, command: str) -> set[str]:
        """The program options (their dests) `command` takes."""
        return {a.dest for a in self.commands[command]._actions if a.dest in self.program}

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        command = getattr(parsed, "command", None)
        if command is not None:
            for dest in sorted(set(self.program) - self.takes(command)):
                if hasattr(parsed, dest):  # typed before a command that does not take it
                    raise InspectorError(*self._where(dest, command))
        for dest, default in self.defaults.items():
            if not hasattr(parsed, dest):
                setattr(parsed, dest, default)
        return parsed, rest

    def _where(self, dest: str, command: str) -> tuple[str, str]:
        flag = max(self.program[dest].option_strings, key=len)
        others = [name for name in self.commands if dest in self.takes(name)]
        if not others:
            action = self.program[dest]
            typed = flag if action.nargs == 0 else f"{flag} {action.metavar or '…'}"
            return f"{flag} is not an option of {command}", f"only the app takes it: causallm-inspect {typed}, with no command"
        return f"{flag} is not an option of {command}", f"the commands that take it: {', '.join(others)}; with no command, the app"


def common(
    parser: argparse.ArgumentParser,
    *,
    json_flag: bool = True,
    data: bool = True,
    data_default: str = "the article's five examples",
) -> None:
    """The model, data and chat-marker options every command has (and --json where it prints data)."""
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
            help="JSONL, JSON, CSV (also .gz/.bz2/.xz/.zst), Parquet or a saved datasets folder; rows of text "
            "(### Human:/### Assistant: format), prompt/completion, conversational messages (OpenAI format, tool "
            f"calls included), ShareGPT or Alpaca; default: {data_default}",
        )
        _data_file_options(g)
    _common_rest(g, parser, json_flag)


def _data_file_options(g: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """How the file of --data is read: split, limit, columns, row format, chat template."""
    from inspector.core.data.row_formats import ROW_FORMATS

    g.add_argument("--split", metavar="NAME", help="split of a JSON object or dataset folder (default train)")
    g.add_argument("--limit", type=int, metavar="N", help="read only the first N rows")
    g.add_argument("--columns", metavar="MAP", help="column names where yours differ: text=body,prompt=question,messages=chat")
    g.add_argument(
        "--format",
        dest="row_format",
        choices=ROW_FORMATS,
        default="auto",
        help="row format: sharegpt (conversations of from/value), alpaca (instruction/input/output), openai "
        "(messages), trl (text, prompt/completion); default auto: found from each row's columns",
    )
    g.add_argument(
        "--chat-template",
        metavar="FILE|NAME",
        help="Jinja chat template for conversational rows (default: the model's): a .jinja file, or the name of one "
        "TRL ships (llama3, qwen2_5, qwen3, gemma3...; its _training variant with generation markers where there is one; "
        "`causallm-inspect templates` lists them)",
    )
    from inspector.cli.turns import turn_options

    turn_options(g)


def _common_rest(g: argparse._ArgumentGroup, parser: argparse.ArgumentParser, json_flag: bool) -> None:
    g.add_argument("--bos-token", metavar="TOK", help="token to insert after each assistant marker, if not the tokenizer's bos")
    g.add_argument("--eos-token", metavar="TOK", help="token that ends each answer, if not the tokenizer's eos")
    g.add_argument("--human-marker", metavar="TEXT", default=None, help='marker of a human turn (default "\\n\\n### Human:")')
    g.add_argument(
        "--assistant-marker", metavar="TEXT", default=None, help='marker of an assistant turn (default "\\n\\n### Assistant:")'
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def burst_options(parser: argparse.ArgumentParser, *, required_strategy: bool) -> None:
    """The options of a training burst: strategy, epochs, rate, seed, the speed options, the held-out prompt."""
    from inspector.core.training.burst import (
        DEFAULT_EPOCHS,
        DEFAULT_HOLDOUT,
        DEFAULT_LEARNING_RATE,
        DEFAULT_LORA_LEARNING_RATE,
        DEFAULT_SEED,
    )

    parser.add_argument(
        "--strategy",
        choices=ALL_STRATEGIES,
        required=required_strategy,
        help="copy: labels = input_ids; mask: human part -100; trl: TRL SFTTrainer, completion-only loss; "
        "custom: your function of --labels-from",
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
    g.add_argument(
        "--stock",
        action="store_true",
        help="the plain Trainer/SFTTrainer as the article runs them, without the fast path (same losses, slower)",
    )
    parser.add_argument(
        "--holdout",
        metavar="TEXT",
        default=DEFAULT_HOLDOUT,
        help='held-out prompt answered after each epoch: one word is asked the article\'s question (default "good"), '
        "other text is the human's message",
    )


LABELS_FROM_HELP = (
    "your own label function, the 'custom' strategy: FUNCTION(example, tokenizer) in a Python file "
    "(FUNCTION defaults to make_labels) returning the labels, or the example with example['labels'] set. "
    "The file runs in a separate process, with your permissions, stopped after --labels-timeout seconds per "
    "example; a file is loaded only when named here"
)
LABELS_TIMEOUT_HELP = "seconds your label function may take per example (and its file to run) before it is stopped (default {})"

_loaded_functions: list[LabelFunction] = []  # what the command loaded: their output is reported at its end


def seconds(text: str) -> float:
    """argparse type of a time limit: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: give a number of seconds above 0, e.g. 5")
    return value


def labels_timeout_option(parser: argparse.ArgumentParser | Any) -> None:
    from inspector.core.labels.process.protocol import DEFAULT_TIMEOUT

    # The default is written into the help: a program option's parsers hold no default (`CommandLine`).
    parser.add_argument(
        "--labels-timeout", metavar="S", type=seconds, default=DEFAULT_TIMEOUT, help=LABELS_TIMEOUT_HELP.format(DEFAULT_TIMEOUT)
    )


def labels_from_option(parser: argparse.ArgumentParser) -> None:
    """--labels-from FILE[:FUNCTION]: the user's label function (the `custom` strategy)."""
    parser.add_argument("--labels-from", metavar="FILE[:FUNCTION]", default=None, help=LABELS_FROM_HELP)
    labels_timeout_option(parser)


def load_function(spec: Any, args: argparse.Namespace, kind: FunctionKind | None = None) -> LabelFunction:
    """Load a label function for a command, with its time limit; its output is reported at the end.
    `kind`: what kind of function it is, where not a label strategy's (an exercise's own)."""
    from inspector.core.labels.process.parent import load_label_function
    from inspector.core.labels.process.protocol import DEFAULT_TIMEOUT, FunctionKind
    from inspector.core.labels.process.sandbox import set_timeout

    set_timeout(getattr(args, "labels_timeout", None) or DEFAULT_TIMEOUT)
    fn = load_label_function(spec, kind=kind or FunctionKind.LABELS)
    _loaded_functions.append(fn)
    return fn


def report_printed(stream: Any) -> None:
    """What the label functions the command ran printed, on `stream` (stderr): never on stdout,
    where the command's own output (JSON, tables) goes."""
    for fn in _loaded_functions:
        printed = fn.printed_in_all
        if printed is not None:
            print(f"causallm-inspect: {fn.name} printed {printed.bytes:,} bytes:", file=stream)
            print(printed.text(), file=stream)
    _loaded_functions.clear()


def label_function(args: argparse.Namespace, strategies: Sequence[str] = ()) -> LabelFunction | None:
    """The function of --labels-from, loaded now (a broken file fails before the model loads);
    None without the option. A `custom` among `strategies` without the option is an error."""
    spec = getattr(args, "labels_from", None)
    if spec is None:
        if CUSTOM in strategies:
            raise InspectorError(
                "--strategy custom needs your label function", "pass --labels-from FILE[:FUNCTION] (default make_labels)"
            )
        return None
    refuse_checked_exercise(spec)
    return load_function(spec, args)


def refuse_checked_exercise(spec: str) -> None:
    """A starter file of exercise 11 or 13 given as a label function to a command: its function is
    not one (it is checked, not trained); say what to run instead."""
    found = exercise_of(spec)
    if found is not None and not found.exercise.strategy:
        number, exercise = found.number, found.exercise
        raise InspectorError(
            f"{spec} is exercise {number}'s file: {exercise.function}({', '.join(exercise.params)}) is checked, "
            "it is not a label function to train or show",
            f"check it with: causallm-inspect exercise {number} --check {spec}, or watch its check in the app: "
            f"causallm-inspect --labels-from {spec}",
        )


def exercise_of(spec: str) -> FoundExercise | None:
    """The exercise whose starter file FILE[:FUNCTION] names (`exercises.registry.find_exercise`),
    or None: the command line finds a file's exercise here and nowhere else."""
    from inspector.core.exercises.registry import find_exercise
    from inspector.core.labels.process.protocol import LabelSource
    from inspector.core.lessons.model import load_lessons

    return find_exercise(LabelSource.parse(spec).path, load_lessons())


def at_least_one(text: str) -> int:
    """argparse type of a count: a whole number of 1 or more, or a message saying so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number: pass 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def train_rows_option(parser: argparse.ArgumentParser) -> None:
    """--train-rows: how many examples of --data the bursts train on."""
    from inspector.core.data.examples import TRAIN_ROWS

    parser.add_argument(
        "--train-rows",
        type=at_least_one,
        metavar="N",
        default=TRAIN_ROWS,
        help=f"with --data: the bursts train on the first N examples that can be used (default {TRAIN_ROWS})",
    )


def comma_list(text: str, known: Sequence[str], flag: str) -> list[str]:
    """The entries of a comma-separated option, each one of `known`, or one error naming the bad ones."""
    entries = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in entries if x not in known]
    if bad or not entries:
        raise InspectorError(f"{flag} has unknown entries: {', '.join(bad) or '(none given)'}", f"choose from {', '.join(known)}")
    return entries


# --- shared steps ---------------------------------------------------------------------------


def template(args: argparse.Namespace) -> TurnMarkers:
    """The chat markers of --human-marker and --assistant-marker (\\n and \\t understood)."""
    from inspector.core.data.chat_format import TurnMarkers

    def unescape(s: str | None, default: str) -> str:
        # Shells make typing a newline awkward, so \n and \t are understood; nothing else is touched.
        if s is None:
            return default
        return s.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\0", "\\")

    t = TurnMarkers()
    return TurnMarkers(unescape(args.human_marker, t.human), unescape(args.assistant_marker, t.assistant))


def status(msg: str) -> None:
    """A progress line on stderr."""
    print(f"… {msg}", file=sys.stderr, flush=True)


def load(args: argparse.Namespace, *, tokenizer_only: bool = False) -> tuple[LoadedModel, TurnMarkers]:
    """The model of --model (after checking the markers, which is quick) and the chat markers."""
    from inspector.core.models import load_model

    markers = template(args)  # check the options before the slow load
    loaded = load_model(
        args.model,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        progress=status,
        bos_token=args.bos_token,
        eos_token=args.eos_token,
        tokenizer_only=tokenizer_only,
    )
    if loaded.trust_remote_code:
        status("trust_remote_code is ON: this model's own code was allowed to run")
    return loaded, markers


def examples(args: argparse.Namespace, markers: TurnMarkers) -> list[Example]:
    """The examples of --data, or the article's five."""
    from inspector.core.data.examples import article_examples, load_examples

    if not getattr(args, "data", None):
        if getattr(args, "chat_template", None):  # a wrong name is said even where no conversation uses it
            from inspector.core.data.conversations import read_chat_template

            read_chat_template(args.chat_template)
        return article_examples(markers)
    return load_examples(args.data, markers, **data_options(args))


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """How to read --data: split, limit, column mapping and chat template, from the options."""
    from inspector.core.data.conversations import read_chat_template
    from inspector.core.data.readers import parse_columns

    return {
        "split": args.split,
        "limit": args.limit,
        "columns": parse_columns(args.columns),
        "chat_template": read_chat_template(args.chat_template) if args.chat_template else None,
        "row_format": getattr(args, "row_format", "auto"),
    }


def check_data_early(args: argparse.Namespace) -> list[Example]:
    """Read the data before loading the model, so a bad file (or --inference-template) fails in a second, not a minute."""
    from inspector.cli.turns import check_turn_options

    check_turn_options(args)
    return examples(args, template(args))


def check_batch_config(args: argparse.Namespace) -> str | None:
    """--config of the app and `lesson N` (the batch view's `trl sft --config` YAML), checked before
    the model loads: one TRL's parser refuses, or with a key no field matches, fails in a second."""
    config = getattr(args, "config", None)
    if config:
        import tempfile

        from inspector.core.batches.setup import parse

        with tempfile.TemporaryDirectory(prefix="causallm-inspect-config-") as tmp:
            parse(config, {}, output_dir=tmp, device="cpu")
    return config


def dump(obj: Any) -> None:
    """Print as indented JSON."""
    print(json.dumps(obj, ensure_ascii=False, indent=1))


def per_step(result: Any) -> str:
    """` (median 1.04 s per step, 1.02–1.09)`, or nothing when no step was timed."""
    from inspector.core.training.step_times import StepSpread, seconds

    spread = StepSpread.of_steps(result.steps)
    if spread is None:
        return ""
    return f" (median {seconds(spread.median)} s per step, {seconds(spread.min)}–{seconds(spread.max)})"


def sft_config_flags(p: argparse.ArgumentParser, max_length: bool = True) -> None:
    """Flags with SFTConfig's names (`batch`, and `inspect-data`, which has its own --max-length)."""
    g = p.add_argument_group("SFTConfig values (default: SFTConfig's, or the config's)")
    on_off = argparse.BooleanOptionalAction
    g.add_argument("--packing", action=on_off, default=None, help="pack rows into sequences of max_length")
    g.add_argument("--packing-strategy", metavar="S", default=None, help="bfd (TRL's default), bfd_split or wrapped")
    g.add_argument("--padding-free", action=on_off, default=None, help="flatten each micro-batch into one row (bfd turns it on)")
    if max_length:
        g.add_argument("--max-length", type=int, metavar="N", default=None, help="truncate, or pack, to N tokens (SFTConfig's default 1024)")
    g.add_argument(
        "--per-device-train-batch-size",
        type=int,
        metavar="N",
        default=None,
        help="sequences per micro-batch (default 2 with flags alone, lowered to what a small dataset holds)",
    )
    g.add_argument("--gradient-accumulation-steps", type=int, metavar="N", default=None, help="micro-batches per optimizer step")
    g.add_argument("--assistant-only-loss", action=on_off, default=None, help="train only the assistant turns (conversations)")
    g.add_argument(
        "--completion-only-loss", action=on_off, default=None, help="train only the completion (default on for prompt/completion rows)"
    )
    g.add_argument("--seed", type=int, metavar="N", default=None, help="the Trainer's seed, which orders the sampler (SFTConfig's 42)")
