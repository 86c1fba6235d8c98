"""The glossary: every term the lessons use, the lesson that defines it, and a short definition.

It is `lessons/glossary.yaml`, shipped with the lessons (in the wheel as
`inspector/_lessons/glossary.yaml`): a list of entries, each with `term`, `aliases` (the
phrases that count as a use of the term in a lesson's prose), `lesson` (the id of the lesson
that defines it) and `definition`. An alias is a phrase, matched as whole words in any case,
across line breaks and with a plural s or es; one written `re:...` is a regular expression.

`load_glossary` reads it, `Glossary.lookup` finds a term by name, `Glossary.search` filters by
words of a term or its definition, and `Glossary.terms_of(lesson)` gives the terms a lesson
defines. A bad entry names the file and the entry.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from inspector.core.errors import InspectorError

GLOSSARY_FILE = "glossary.yaml"
KEYS = ("term", "aliases", "lesson", "definition")
REQUIRED = ("term", "lesson", "definition")
REGEX_PREFIX = "re:"


def _phrase_pattern(phrase: str) -> str:
    """A phrase as whole words: any whitespace between its words, an optional plural ending."""
    words = [re.escape(w) for w in phrase.split()]
    return r"(?<!\w)" + r"\s+".join(words) + r"(?:s|es)?(?!\w)"


@dataclass(frozen=True)
class Term:
    term: str
    lesson: str  # the id of the lesson that defines it
    definition: str
    aliases: tuple[str, ...] = ()  # as written; empty: the term itself
    pattern: re.Pattern[str] = field(default=re.compile(r"(?!)"), compare=False, repr=False)

    def first_use(self, text: str) -> re.Match[str] | None:
        """The first use of the term (any of its aliases) in `text`, or None."""
        return self.pattern.search(text)

    def names(self) -> tuple[str, ...]:
        """The term and its literal aliases, for looking it up (regular expressions left out)."""
        return (self.term, *(a for a in self.aliases if not a.startswith(REGEX_PREFIX)))

    def matches(self, words: list[str]) -> bool:
        """Every word (lowercase) is in the term, one of its names or its definition."""
        hay = " ".join((*self.names(), self.definition)).casefold()
        return all(w in hay for w in words)


def _entry_error(source: str, index: int, entry: Any, problem: str, fix: str) -> InspectorError:
    name = entry.get("term") if isinstance(entry, dict) else None
    which = f"entry {index}" + (f" ({name!r})" if isinstance(name, str) and name.strip() else "")
    return InspectorError(f"glossary {source}, {which}: {problem}", fix)


def _term(entry: Any, index: int, source: str, lesson_ids: set[str] | None) -> Term:
    def bad(problem: str, fix: str) -> InspectorError:
        return _entry_error(source, index, entry, problem, fix)

    if not isinstance(entry, dict):
        raise bad(f"is {entry!r}, not a set of keys", "write '- term: ...' with 'lesson:' and 'definition:' under it")
    unknown = sorted(str(k) for k in entry if k not in KEYS)
    if unknown:
        raise bad(f"unknown key '{unknown[0]}'", f"use only {', '.join(KEYS)}")
    for key in REQUIRED:
        if key not in entry:
            raise bad(f"missing key '{key}'", f"add '{key}:' to the entry")
        value = entry[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "term":
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise bad(f"key '{key}' must be a non-empty text, not {value!r}", f"give '{key}' a text (quote it if YAML reads it as something else)")
    lesson = entry["lesson"].strip()
    if lesson_ids is not None and lesson not in lesson_ids:
        raise bad(f"key 'lesson' is {lesson!r}, which is no lesson's id", f"choose one of {', '.join(sorted(lesson_ids))}")
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise bad(f"key 'aliases' is {aliases!r}", "give a list of phrases, e.g. [attention mask, attention_mask]")
    term = str(entry["term"]).strip()
    aliases = [a.strip() for a in aliases]
    parts = []
    for alias in aliases or [term]:
        if alias.startswith(REGEX_PREFIX):
            try:
                re.compile(alias[len(REGEX_PREFIX):])
            except re.error as exc:
                raise bad(f"alias {alias!r} is not a valid regular expression ({exc})", "correct it, or write a plain phrase") from exc
            parts.append(f"(?:{alias[len(REGEX_PREFIX):]})")
        else:
            parts.append(_phrase_pattern(alias))
    return Term(
        term=term,
        lesson=lesson,
        definition=" ".join(entry["definition"].split()),
        aliases=tuple(aliases),
        pattern=re.compile("|".join(parts), re.IGNORECASE),
    )


@dataclass(frozen=True)
class Glossary:
    terms: tuple[Term, ...]
    source: str = GLOSSARY_FILE

    def terms_of(self, lesson: Any) -> list[Term]:
        """The terms a lesson defines (a Lesson or its id), in the glossary's order."""
        lesson_id = getattr(lesson, "id", lesson)
        return [t for t in self.terms if t.lesson == lesson_id]

    def lookup(self, query: str) -> list[Term]:
        """The terms named `query` (the term or a literal alias, in any case, backticks ignored);
        failing that, the terms whose term or alias contains it."""
        q = _plain(query)
        if not q:
            return []
        exact = [t for t in self.terms if any(_same(_plain(n), q) for n in t.names())]
        if exact:
            return exact
        return [t for t in self.terms if any(q in _plain(n) for n in t.names())]

    def nearest(self, query: str, n: int = 4) -> list[str]:
        """The terms whose names are closest to `query`, for a term not found."""
        names = {_plain(name): t.term for t in self.terms for name in t.names()}
        q = _plain(query)
        close = difflib.get_close_matches(q, list(names), n * 3, 0.7) or difflib.get_close_matches(q, list(names), n * 3, 0.4)
        out: list[str] = []
        for name in close:
            if names[name] not in out:
                out.append(names[name])
        return out[:n]

    def search(self, text: str) -> list[Term]:
        """The terms whose term, aliases or definition hold every word of `text` (all of them when it is empty)."""
        words = text.casefold().split()
        return [t for t in self.terms if t.matches(words)]


def _same(name: str, query: str) -> bool:
    """The same word, either of them plural (s, es)."""
    return any(a == b + end for a, b in ((name, query), (query, name)) for end in ("", "s", "es"))


def _plain(text: str) -> str:
    return " ".join(text.replace("`", "").casefold().split())


def parse_glossary(text: str, source: str = GLOSSARY_FILE, lesson_ids: set[str] | None = None) -> Glossary:
    """The glossary from the text of its YAML file. With `lesson_ids`, every entry's lesson must be one of them."""
    import yaml

    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise InspectorError(f"glossary {source} is not valid YAML{line}", "check the quoting of its values") from exc
    if not isinstance(entries, list) or not entries:
        raise InspectorError(f"glossary {source} is not a list of entries", "write one '- term: ...' entry per term")
    terms: list[Term] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries, start=1):
        term = _term(entry, i, source, lesson_ids)
        key = _plain(term.term)
        if key in seen:
            raise _entry_error(source, i, entry, f"the term is already entry {seen[key]}", "merge the two entries")
        seen[key] = i
        terms.append(term)
    return Glossary(tuple(terms), source)


def lesson_heads(folder: Traversable | Path | None = None) -> list[tuple[str, str]]:
    """(id, title) of every lesson, in the lessons' order, read from their front matter alone: the
    glossary command's, quicker than `load_lessons`, whose check of a lesson's batch settings imports TRL."""
    import yaml

    from inspector.core.lessons.model import _split, lessons_dir, load_lessons

    root = lessons_dir() if folder is None else folder
    heads = []
    for f in sorted((f for f in root.iterdir() if f.name.endswith(".md") and f.is_file()), key=lambda f: f.name):
        try:
            meta = yaml.safe_load(_split(f.read_text(encoding="utf-8"), f.name)[0])
            heads.append((str(meta["id"]), str(meta["title"])))
        except (yaml.YAMLError, UnicodeDecodeError, TypeError, KeyError):
            load_lessons(root)  # a broken lesson: its own message, naming the file and the key
            raise
    return heads


def load_glossary(folder: Traversable | Path | None = None, lesson_ids: set[str] | None = None) -> Glossary:
    """The lessons' glossary (`glossary.yaml` in the lessons' folder)."""
    from inspector.core.lessons.model import lessons_dir

    root = lessons_dir() if folder is None else folder
    f = root / GLOSSARY_FILE
    if not f.is_file():
        raise InspectorError(f"the glossary {GLOSSARY_FILE} was not found in {root}", "reinstall causallm-inspect")
    try:
        text = f.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InspectorError(f"glossary {GLOSSARY_FILE} is not UTF-8 text", "save it as UTF-8") from exc
    return parse_glossary(text, GLOSSARY_FILE, lesson_ids)
