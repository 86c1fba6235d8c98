"""Command line: `causallm-inspect` opens the app; its subcommands run headless.

One module per command, each with `register(subparsers)` (its options) and `run(args)`;
`options` holds what they share, and `CommandLine`, the one parser: an option of the
program means the same typed before the command as after it. Only argparse and light core
modules are imported at start-up, so `--help` is instant; torch and transformers load inside the command that needs
them. A problem the user can fix ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from inspector import __version__
from inspector.cli import (
    app,
    batch,
    bench,
    exercise,
    glossary,
    inspect_data,
    labels,
    lesson,
    models,
    predict,
    prepare,
    record,
    templates,
    train,
)
from inspector.cli.options import CommandLine, common, report_printed
from inspector.core.errors import InspectorError

# In the order `--help` lists them.
COMMANDS = (labels, train, predict, batch, record, bench, lesson, exercise, glossary, prepare, inspect_data, templates, models)


def build_parser() -> CommandLine:
    parser = CommandLine(
        prog="causallm-inspect",
        description="See which tokens a causal LM is trained on when you fine-tune it on chat data, "
        "and what it learns. Without a command, opens the interactive app.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common(parser, json_flag=False)
    app.register(parser)
    parser.add_commands(COMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # an option typed before a command that does not take it: one line
        try:
            if args.command is None:
                return app.run(args)
            return args.run(args)
        finally:
            report_printed(sys.stderr)  # what your label function printed: on stderr, never in the output
    except InspectorError as exc:  # one line; the user's own code's: where, and their frames of the traceback
        print(f"causallm-inspect: error: {exc.report()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("causallm-inspect: interrupted", file=sys.stderr)
        return 130
