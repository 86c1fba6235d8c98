"""`causallm-inspect glossary [TERM]`: the lessons' glossary, or the entries a term names."""

from __future__ import annotations

import argparse
import textwrap

from inspector.cli.options import dump
from inspector.core.errors import InspectorError

WIDTH = 96


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("glossary", help="every term the lessons define, or the entries of one term (the app: F7)")
    p.add_argument("term", nargs="?", metavar="TERM", help="a term or part of one (e.g. 'micro-batch', 'eos')")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inspector.core.lessons.glossary import lesson_heads, load_glossary

    lessons = lesson_heads()
    numbers = {lesson_id: i + 1 for i, (lesson_id, _) in enumerate(lessons)}
    glossary = load_glossary(lesson_ids=set(numbers))
    terms = list(glossary.terms)
    if args.term is not None:
        terms = glossary.lookup(args.term)
        if not terms:
            near = glossary.nearest(args.term)
            raise InspectorError(
                f"no term {args.term!r} in the glossary",
                (f"the nearest: {', '.join(near)}; " if near else "") + "`causallm-inspect glossary` lists them all",
            )
    if args.json:
        dump([{"term": t.term, "aliases": list(t.aliases), "lesson": numbers[t.lesson], "lesson_id": t.lesson,
               "definition": t.definition} for t in terms])
        return 0
    if args.term is not None:
        for t in terms:
            title = lessons[numbers[t.lesson] - 1][1]
            print(f"{t.term}  (lesson {numbers[t.lesson]}: {title})")
            print(_fill(t.definition))
        return 0
    blank = ""
    for number, (lesson_id, title) in enumerate(lessons, start=1):
        own = glossary.terms_of(lesson_id)
        if own:
            print(f"{blank}lesson {number}: {title}")
            blank = "\n"
        for t in own:
            print(f"  {t.term}")
            print(_fill(t.definition))
    return 0


def _fill(text: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent="      ", subsequent_indent="      ")
