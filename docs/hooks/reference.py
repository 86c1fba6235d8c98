"""The command reference (docs/reference/commands.md), written at build time from the argparse parsers.

An mkdocs hook (mkdocs.yml's `hooks:`): where the page holds MARKER, `on_page_markdown` puts
`reference()` in its place: the app's options, then each command of `inspector.cli.COMMANDS` with
what it does, its usage and a table of its options (flags, value, default, help), group by group,
as `causallm-inspect --help` and `causallm-inspect COMMAND --help` have them. tests/test_docs.py
calls the same `reference()`, so a flag added to a parser is on the page at the next build.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the parsers of this checkout, installed or not
    sys.path.insert(0, str(ROOT))

PAGE = "reference/commands.md"
MARKER = "<!-- the commands' options: written here at build time by docs/hooks/reference.py -->"
USAGE_WIDTH = 88


def _text(s: str) -> str:
    """Help text as Markdown: its `code spans` kept, the rest escaped so it reads as typed."""
    parts = re.split(r"(`[^`]*`)", " ".join(s.split()))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part)
        else:
            part = html.escape(part, quote=False)
            out.append(re.sub(r"([\\*_\[\]|])", r"\\\1", part))
    return "".join(out)


def _code(s: str) -> str:
    return f"`` {s} ``" if "`" in s else f"`{s}`"


def _default(action: argparse.Action, defaults: dict[str, Any]) -> str:
    if action.required:
        return "required"
    value = defaults.get(action.dest, action.default) if action.default is argparse.SUPPRESS else action.default
    if value is None or value is False or value is argparse.SUPPRESS or action.nargs == 0:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_code(str(v)) for v in value)
    return _code(str(value))


def _row(action: argparse.Action, formatter: argparse.HelpFormatter, defaults: dict[str, Any]) -> str:
    if action.option_strings:
        flags = ", ".join(_code(f) for f in action.option_strings)
        value = formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
    else:
        flags = _code(formatter._metavar_formatter(action, action.dest)(1)[0])
        value = ""
    value = _code(value) if value else ""
    help_text = _text(formatter._expand_help(action)) if action.help else ""
    return f"| {flags} | {value} | {_default(action, defaults)} | {help_text} |"


def _options(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> list[str]:
    formatter = parser._get_formatter()
    lines = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._SubParsersAction)]
        if not actions:
            continue
        lines += ["", f"**{_text(group.title or 'options')}**", "", "| Option | Value | Default | What it does |",
                  "| --- | --- | --- | --- |"]
        lines += [_row(a, formatter, defaults) for a in actions]
    return lines


def _usage(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return ["", "```text", formatter.format_help().strip(), "```"]


def commands() -> tuple[Any, dict[str, argparse.ArgumentParser], dict[str, str]]:
    """The program's parser, its commands' parsers by name (in `--help`'s order), and each command's help line."""
    from inspector.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    return parser, parser.commands, helps


def reference() -> str:
    """The page's generated part: the app, then every command."""
    parser, parsers, helps = commands()
    lines = ["## causallm-inspect, the app { #app }", "", _text(parser.description or "")]
    lines += _usage(parser)
    lines += ["", "| Command | What it does |", "| --- | --- |"]
    lines += [f"| [{name}](#{name}) | {_text(helps[name])} |" for name in parsers]
    lines += _options(parser, parser.defaults)
    for name, command in parsers.items():
        lines += ["", f"## causallm-inspect {name} {{ #{name} }}", "", _text(helps[name])]
        if command.description and command.description.rstrip(".") != helps[name].rstrip("."):
            lines += ["", _text(command.description)]  # more than the one line `--help` lists
        lines += _usage(command)
        lines += _options(command, parser.defaults)
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if markdown.count(MARKER) != 1:
        raise ValueError(f"docs/{PAGE} must hold this line once, where the reference goes: {MARKER}")
    return markdown.replace(MARKER, reference())
