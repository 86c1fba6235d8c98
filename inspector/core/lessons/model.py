"""Lessons: Markdown files with YAML front matter, parsed into frozen dataclasses.

A lesson file looks like this::

    ---
    id: mask
    title: Masking the human part
    view: labels          # labels, training or predictions: the live view beside the prose
    strategy: mask        # copy, mask or trl: the strategy the view starts on
    example: "..."        # optional: the chat text the labels view shows
    messages: [{role: user, content: hi}, ...]  # optional, instead: a conversation (reasoning and
    chat_template: qwen3  # tool calls included), through a template TRL ships (or the model's own)
    epochs: 3             # optional: the burst length the training view proposes
    strategies: [copy, mask]  # optional: what `lesson N` trains headless (default: strategy)
    demo: template-pitfall    # optional: a computed panel (inspector.core.lessons.demos.DEMOS)
    code: 06-template-pitfall.py  # the code behind the view, in lessons/code/
    describes: {trl: "1.16"}  # optional: the library versions the prose describes (trl, transformers)
    live: {seconds: 35, setup: "Gemma 3 270M, 2-core CPU", date: 2026-12-07}  # optional: written by
                              # scripts/lesson_times.py --write: how long what the lesson trains takes live
    ---
    # Markdown body ...

Files are read in name order (`01-labels.md`, `02-mask.md`, ...). The installed wheel
carries them as `inspector/_lessons` (hatch force-include); an editable checkout reads the
top-level `lessons/` folder beside the `inspector` package. Every problem names the file
and the key, so a lesson author sees at once what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from inspector.core.batches.setup import SFT_FLAGS
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import STRATEGIES

# The app's views, in their keys' order (F2 to F6): a lesson opens one of them.
VIEWS = ("labels", "training", "predictions", "learning", "batch")
REQUIRED_KEYS = ("id", "title", "view", "strategy")
OPTIONAL_KEYS = (
    *("example", "messages", "chat_template", "epochs", "strategies", "demo", "code", "batch", "describes", "live"),
)
# The libraries whose version a lesson's prose may describe (`describes: {trl: "1.16"}`), and how
# the lessons name them.
LIBRARIES = {"trl": "TRL", "transformers": "transformers"}
_VERSION = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# The batch view's settings a lesson may set (`batch: {packing: true, max_length: 64}`): SFTConfig's
# names (the batch command's, but its seed), plus world_size (the simulated ranks). Values are checked as
# the batch command checks them.
BATCH_KEYS = (*(name for name in SFT_FLAGS if name != "seed"), "world_size")
# Where the batch view's fields start (SFTConfig's names; SFTConfig's own: 1024, 8, 1): the
# article's examples packed two or three to a sequence, two micro-batches accumulated.
BATCH_VIEW_START = {"max_length": 64, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 2}
CODE_FOLDER = "code"
_CODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.py$")
_FENCE = "---"


@dataclass(frozen=True)
class LiveTime:
    """How long what a lesson trains (its bursts, its demo) took live, measured by
    `scripts/lesson_times.py` as `lesson N --json` runs it, on what, and when."""

    seconds: float
    setup: str  # the model and the machine, e.g. "Gemma 3 270M, 2-core CPU" (not `on`: YAML reads that as true)
    date: str  # YYYY-MM-DD
    demo: float | None = None  # of `seconds`, the demo's, where the lesson trains bursts too


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    view: str  # one of VIEWS
    strategy: str  # one of STRATEGIES
    body: str  # Markdown, front matter removed
    example: str | None = None  # chat text in the template's format, before add_special_tokens
    epochs: int | None = None
    source: str = ""  # file name, for error messages
    strategies: tuple[str, ...] = ()  # what `lesson N` trains headless; empty: (strategy,)
    demo: str | None = None  # a computed panel, a key of inspector.core.lessons.demos.DEMOS
    code: str | None = None  # the file in lessons/code/ with the code behind the view
    batch: tuple[tuple[str, Any], ...] = ()  # the batch view's settings (BATCH_KEYS), in the file's order
    describes: tuple[tuple[str, str], ...] = ()  # (library, version) the prose describes, e.g. ("trl", "1.16")
    live: LiveTime | None = None  # how long what the lesson trains took live, measured
    messages: tuple[dict[str, Any], ...] | None = None  # a conversation the labels view shows (instead of example)
    chat_template: str | None = None  # the name of the template TRL ships it is rendered with

    @property
    def batch_settings(self) -> dict[str, Any]:
        """The batch view's settings as SFTConfig flags, world_size left out (see `batch_world_size`)."""
        return {k: v for k, v in self.batch if k != "world_size"}

    @property
    def batch_world_size(self) -> int:
        return int(dict(self.batch).get("world_size", 1))

    @property
    def batch_flags(self) -> dict[str, Any]:
        """The SFTConfig flags the batch view builds this lesson's step with (the app and `lesson N`):
        the view's start, no packing, then the lesson's own settings."""
        return {**BATCH_VIEW_START, "packing": False, **self.batch_settings}

    @property
    def trains(self) -> tuple[str, ...]:
        return self.strategies or (self.strategy,)


def _split(text: str, source: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != _FENCE:
        raise InspectorError(
            f"lesson {source} has no front matter",
            f"start the file with a '{_FENCE}' line, the keys {', '.join(REQUIRED_KEYS)}, and another '{_FENCE}' line",
        )
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == _FENCE:
            return "".join(lines[1:i]), "".join(lines[i + 1 :])
    raise InspectorError(f"lesson {source}: the front matter is not closed", f"end it with a '{_FENCE}' line")


def _text(meta: dict[str, Any], key: str, source: str) -> str:
    value = meta[key]
    if not isinstance(value, str) or not value.strip():
        raise InspectorError(
            f"lesson {source}: key '{key}' must be a non-empty text, not {value!r}", f"give '{key}' a text value"
        )
    return value.strip()


def parse_lesson(text: str, source: str = "<lesson>") -> Lesson:
    """One lesson from the text of its file; `source` names the file in errors."""
    import yaml

    head, body = _split(text, source)
    try:
        meta = yaml.safe_load(head)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (front matter line {where.line + 1})" if where is not None else ""
        raise InspectorError(
            f"lesson {source}: the front matter is not valid YAML{line}", "check the quoting of its values"
        ) from exc
    if not isinstance(meta, dict):
        raise InspectorError(
            f"lesson {source}: the front matter is not a set of keys", "write one 'key: value' per line"
        )
    for key in REQUIRED_KEYS:
        if key not in meta:
            raise InspectorError(f"lesson {source}: missing key '{key}'", f"add '{key}:' to the front matter")
    unknown = sorted(str(k) for k in meta if k not in REQUIRED_KEYS + OPTIONAL_KEYS)
    if unknown:
        raise InspectorError(
            f"lesson {source}: unknown key '{unknown[0]}'",
            f"use only {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}",
        )
    view = _text(meta, "view", source)
    if view not in VIEWS:
        raise InspectorError(f"lesson {source}: key 'view' is {view!r}", f"choose one of {', '.join(VIEWS)}")
    strategy = _text(meta, "strategy", source)
    if strategy not in STRATEGIES:
        raise InspectorError(
            f"lesson {source}: key 'strategy' is {strategy!r}", f"choose one of {', '.join(STRATEGIES)}"
        )
    example = meta.get("example")
    if example is not None and (not isinstance(example, str) or not example.strip()):
        raise InspectorError(
            f"lesson {source}: key 'example' must be a chat text, not {example!r}",
            'write it in double quotes with \\n escapes, e.g. "\\n\\n### Human: hi\\n\\n### Assistant: hola"',
        )
    messages, chat_template = _conversation(meta, source)
    epochs = meta.get("epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise InspectorError(f"lesson {source}: key 'epochs' is {epochs!r}", "give a whole number of at least 1")
    strategies = meta.get("strategies", [])
    valid = isinstance(strategies, list) and all(x in STRATEGIES for x in strategies)
    if not valid or ("strategies" in meta and not strategies):
        raise InspectorError(
            f"lesson {source}: key 'strategies' is {strategies!r}", f"give a list of {', '.join(STRATEGIES)}"
        )
    demo = meta.get("demo")
    if demo is not None:
        from inspector.core.lessons.demos import DEMOS

        if demo not in DEMOS:
            raise InspectorError(f"lesson {source}: key 'demo' is {demo!r}", f"choose one of {', '.join(DEMOS)}")
    code = meta.get("code")
    if code is not None and (not isinstance(code, str) or not _CODE_NAME.match(code)):
        raise InspectorError(
            f"lesson {source}: key 'code' is {code!r}",
            f"give the name of a .py file in the lessons' {CODE_FOLDER}/ folder",
        )
    batch = _batch(meta.get("batch"), source) if "batch" in meta else ()
    describes = _describes(meta["describes"], source) if "describes" in meta else ()
    live = _live(meta["live"], source) if "live" in meta else None
    if not body.strip():
        raise InspectorError(f"lesson {source} has no text after its front matter", "write the lesson in Markdown")
    return Lesson(
        id=_text(meta, "id", source),
        title=_text(meta, "title", source),
        view=view,
        strategy=strategy,
        body=body.strip() + "\n",
        example=example,
        epochs=epochs,
        source=source,
        strategies=tuple(strategies),
        demo=demo,
        code=code,
        batch=batch,
        describes=describes,
        live=live,
        messages=messages,
        chat_template=chat_template,
    )


def _conversation(meta: dict[str, Any], source: str) -> tuple[tuple[dict[str, Any], ...] | None, str | None]:
    """The `messages` a lesson shows, checked as a data row's are, and the `chat_template` NAME."""
    messages, template = meta.get("messages"), meta.get("chat_template")
    if messages is None:
        if template is not None:
            raise InspectorError(f"lesson {source}: 'chat_template' without 'messages'", "add the messages it renders")
        return None, None
    from inspector.core.data.readers import classify
    from inspector.core.data.row_formats import RowFormatError, normalize

    try:
        row, _ = normalize({"messages": messages}, "openai")
    except RowFormatError as exc:
        raise InspectorError(
            f"lesson {source}: key 'messages' {exc}", "write a list of {role, content} messages"
        ) from exc
    kind, why = classify(row)
    if kind != "messages":
        raise InspectorError(f"lesson {source}: key 'messages': {why}", "write a list of {role, content} messages")
    if template is not None and not isinstance(template, str):
        raise InspectorError(
            f"lesson {source}: key 'chat_template' is {template!r}", "give the name of a template TRL ships"
        )
    return tuple(row["messages"]), template


def _describes(value: Any, source: str) -> tuple[tuple[str, str], ...]:
    """The `describes:` key: library -> the version (major.minor, in quotes) the prose describes."""
    example = "write e.g. 'describes: {trl: \"1.16\"}'"
    if not isinstance(value, dict) or not value:
        raise InspectorError(
            f"lesson {source}: key 'describes' must be a mapping of libraries to versions, not {value!r}", example
        )
    out = []
    for library, version in value.items():
        if library not in LIBRARIES:
            raise InspectorError(
                f"lesson {source}: key 'describes' names {library!r}", f"name only {', '.join(LIBRARIES)}"
            )
        if isinstance(version, float):  # YAML reads 1.10 as 1.1: a version must be quoted
            raise InspectorError(
                f"lesson {source}: the {library} version in 'describes' is the number {version!r}",
                f'write it in quotes, e.g. {library}: "1.16"',
            )
        if not isinstance(version, str) or not _VERSION.match(version.strip()):
            raise InspectorError(
                f"lesson {source}: the {library} version in 'describes' is {version!r}",
                f'give major.minor in quotes, e.g. {library}: "1.16"',
            )
        out.append((str(library), version.strip()))
    return tuple(out)


def _live(value: Any, source: str) -> LiveTime:
    """The `live:` key: seconds (a positive number), setup (a text), date (YYYY-MM-DD), demo (optional)."""
    import datetime

    fix = "run scripts/lesson_times.py --write, which measures it and writes the key"
    if not isinstance(value, dict):
        raise InspectorError(f"lesson {source}: key 'live' must be a mapping, not {value!r}", fix)
    unknown = sorted(str(k) for k in value if k not in ("seconds", "setup", "date", "demo"))
    missing = [k for k in ("seconds", "setup", "date") if k not in value]
    if unknown or missing:
        what = f"has an unknown setting '{unknown[0]}'" if unknown else f"lacks '{missing[0]}'"
        raise InspectorError(f"lesson {source}: key 'live' {what}", "give seconds, setup and date (and demo): " + fix)
    numbers = {}
    for name in ("seconds", "demo"):
        number = value.get(name)
        if name in value and (isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0):
            raise InspectorError(f"lesson {source}: live '{name}' is {number!r}", "give a number of seconds, 0 or more")
        numbers[name] = None if number is None else float(number)
    if numbers["demo"] is not None and numbers["demo"] > numbers["seconds"]:
        raise InspectorError(
            f"lesson {source}: live 'demo' ({numbers['demo']:g} s) is more than 'seconds'",
            "the demo's seconds are part of the lesson's: " + fix,
        )
    setup = value["setup"]
    if not isinstance(setup, str) or not setup.strip():
        raise InspectorError(
            f"lesson {source}: live 'setup' is {setup!r}", 'name the model and machine, e.g. "Gemma 3 270M, 2-core CPU"'
        )
    date = value["date"]
    date = date.isoformat() if isinstance(date, datetime.date) else date
    if not isinstance(date, str) or not _DATE.match(date):
        raise InspectorError(
            f"lesson {source}: live 'date' is {value['date']!r}", "give the day measured, e.g. 2026-12-07"
        )
    return LiveTime(numbers["seconds"] or 0.0, setup.strip(), date, numbers["demo"])


def _batch(value: Any, source: str) -> tuple[tuple[str, Any], ...]:
    """The `batch:` key: a mapping of BATCH_KEYS to values the batch view accepts."""
    from inspector.core.batches.setup import check_values

    if not isinstance(value, dict) or not value:
        raise InspectorError(
            f"lesson {source}: key 'batch' must be a mapping of settings, not {value!r}",
            "write e.g. 'batch: {packing: true, packing_strategy: bfd, max_length: 64}'",
        )
    unknown = sorted(str(k) for k in value if k not in BATCH_KEYS)
    if unknown:
        raise InspectorError(
            f"lesson {source}: key 'batch' has an unknown setting '{unknown[0]}'", f"use only {', '.join(BATCH_KEYS)}"
        )
    for name in ("packing", "padding_free", "completion_only_loss", "assistant_only_loss"):
        if name in value and not isinstance(value[name], bool):
            raise InspectorError(f"lesson {source}: batch setting '{name}' is {value[name]!r}", "give true or false")
    world = value.get("world_size", 1)
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise InspectorError(
            f"lesson {source}: batch setting 'world_size' is {world!r}", "give a whole number of at least 1"
        )
    try:
        check_values(value, f"lesson {source}'s batch settings")
    except InspectorError as exc:
        raise InspectorError(f"lesson {source}: {exc.problem}", exc.fix) from exc
    return tuple((str(k), v) for k, v in value.items())


def read_code(name: str, folder: Traversable | Path | None = None) -> str:
    """The text of a code template in the lessons' `code/` folder."""
    root = lessons_dir() if folder is None else folder
    f = root / CODE_FOLDER / name
    if not f.is_file():
        raise InspectorError(f"the lesson code {CODE_FOLDER}/{name} was not found", "reinstall causallm-inspect")
    return f.read_text(encoding="utf-8")


def lessons_dir() -> Traversable:
    """Where the lessons are: inside the installed package, else the checkout's `lessons/`."""
    packaged = resources.files("inspector") / "_lessons"
    if packaged.is_dir():
        return packaged
    checkout = Path(str(resources.files("inspector"))).parent / "lessons"
    if checkout.is_dir():
        return checkout
    raise InspectorError(
        "the lessons were not found (neither inspector/_lessons nor a lessons/ folder beside the package)",
        "reinstall causallm-inspect",
    )


def load_lessons(folder: Traversable | Path | None = None) -> list[Lesson]:
    """Every `*.md` lesson of the folder, in file-name order; ids must be unique."""
    root = lessons_dir() if folder is None else folder
    files = sorted((f for f in root.iterdir() if f.name.endswith(".md") and f.is_file()), key=lambda f: f.name)
    if not files:
        raise InspectorError(f"there are no lessons in {root}", "add Markdown files with front matter")
    lessons: list[Lesson] = []
    seen: dict[str, str] = {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InspectorError(f"lesson {f.name} is not UTF-8 text", "save it as UTF-8") from exc
        lesson = parse_lesson(text, f.name)
        if lesson.code is not None and not (root / CODE_FOLDER / lesson.code).is_file():
            raise InspectorError(
                f"lesson {f.name}: key 'code' names {lesson.code}, which is not in {CODE_FOLDER}/",
                f"add {CODE_FOLDER}/{lesson.code} or correct the name",
            )
        if lesson.id in seen:
            raise InspectorError(
                f"lesson {f.name}: key 'id' is {lesson.id!r}, already used by {seen[lesson.id]}",
                "give every lesson its own id",
            )
        seen[lesson.id] = f.name
        lessons.append(lesson)
    return lessons


def lessons_or_error() -> tuple[list[Lesson], str | None]:
    """The lessons, or none and the problem that stops them being read (the app opens anyway)."""
    try:
        return load_lessons(), None
    except InspectorError as exc:
        return [], str(exc)
