"""Training examples: the article's five, or the user's own JSONL.

A JSONL row is either `{"text": ...}` in the `### Human:` / `### Assistant:` format, or
`{"prompt": ..., "completion": ...}`. A prompt that already contains the assistant marker
is used as it is (prompt + completion); otherwise the prompt is the human's message and
the completion the assistant's answer. Rows are numbered from 1 as lines of the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.core.data.chat_format import (
    ARTICLE_MARKERS,
    ARTICLE_PAIRS,
    FormattedExample,
    TurnMarkers,
    add_special_tokens,
    article_text,
)
from inspector.core.errors import InspectorError


@dataclass(frozen=True)
class Example:
    text: str  # in the template's format, before add_special_tokens (conversations: the article rendering)
    row: int  # row number in the data file (1-based); for built-in examples, their index + 1
    origin: str = "article"  # "article", or the data file's name
    messages: tuple[dict[str, Any], ...] | None = None  # conversational rows
    chat_template: str | None = None  # from --chat-template, for conversational rows
    kind: str = "text"  # the row's type (datasource.KINDS)
    unit: str = "row"  # how rows are counted in messages: "line" for JSONL
    tools: tuple[Any, ...] | None = None  # the row's tool definitions
    format: str = "trl"  # the row format it was read as (row_formats.FORMAT_TITLES)

    @property
    def where(self) -> str:
        return f"{self.origin} {self.unit} {self.row}"


def article_examples(markers: TurnMarkers = ARTICLE_MARKERS) -> list[Example]:
    """The article's five examples, written in the turn markers in use (`--human-marker`,
    `--assistant-marker`): with other markers and no --data, the article's examples in those."""
    return [Example(article_text(word, answer, markers), i + 1) for i, (word, answer) in enumerate(ARTICLE_PAIRS)]


def row_to_text(obj: Any, template: TurnMarkers, where: str) -> str:
    """The chat text of one data row, or an error naming the row and what is wrong."""
    if not isinstance(obj, dict):
        raise InspectorError(
            f"{where} is a JSON {type(obj).__name__}, not an object",
            'write each line as {"text": ...} or {"prompt": ..., "completion": ...}',
        )
    if "text" in obj:
        text = obj["text"]
        if not isinstance(text, str):
            raise InspectorError(f'{where}: "text" is a {type(text).__name__}, not a string', "make it a string")
        return text
    if "prompt" in obj or "completion" in obj:
        for key in ("prompt", "completion"):
            if key not in obj:
                raise InspectorError(f'{where} has no "{key}"', 'give both "prompt" and "completion"')
            if not isinstance(obj[key], str):
                raise InspectorError(
                    f'{where}: "{key}" is a {type(obj[key]).__name__}, not a string', "make it a string"
                )
        prompt, completion = obj["prompt"], obj["completion"]
        if template.assistant in prompt:
            return prompt + completion
        sep = "" if completion[:1].isspace() else " "
        lead = "" if prompt[:1].isspace() else " "
        return f"{template.human}{lead}{prompt}{template.assistant}{sep}{completion}"
    keys = ", ".join(sorted(map(str, obj))) or "none"
    raise InspectorError(
        f'{where} has neither "text" nor "prompt"/"completion" (its keys: {keys})',
        'write each line as {"text": ...} or {"prompt": ..., "completion": ...}',
    )


class RowProblem(InspectorError):
    """A data row that cannot be an example; `kind` is one of inspect_data's PROBLEMS."""

    strategy = None  # like inspect_data's Problem: about the row, whatever the strategy

    def __init__(self, kind: str, problem: str, fix: str, row: int) -> None:
        super().__init__(problem, fix)
        self.kind = kind
        self.row = row

    @property
    def detail(self) -> str:
        return self.problem


def _scan(
    path: str | Path,
    template: TurnMarkers,
    *,
    split: str | None,
    limit: int | None,
    columns: dict[str, str] | None,
    chat_template: str | None,
    row_format: str = "auto",
) -> Iterator[Example | RowProblem]:
    """Every row of a data file, in order: an Example, or the RowProblem that stops it being one."""
    from inspector.core.data.conversations import to_article_text
    from inspector.core.data.readers import KIND_TITLES, classify, iter_records, messages_of, tools_of

    name = Path(path).name
    first_kind = None
    for rec in iter_records(path, split=split, limit=limit, columns=columns, row_format=row_format):
        where = f"{name} {rec.where}"
        if rec.data is None:
            yield RowProblem("bad-row", f"{where} {rec.error}", "fix or remove that row", rec.row)
            continue
        kind, why = classify(rec.data)
        if kind is None:
            yield RowProblem("bad-row", f"{where} {why}", "give each row one of TRL's dataset types", rec.row)
            continue
        if first_kind is None:
            first_kind = kind
        elif kind != first_kind:
            yield RowProblem(
                "mixed-format",
                f"{where} is {KIND_TITLES[kind]} but the rows before it are {KIND_TITLES[first_kind]}",
                "keep one type of row per file",
                rec.row,
            )
            continue
        if kind in ("messages", "conversational-prompt-completion"):
            msgs = tuple(messages_of(kind, rec.data))
            text = to_article_text(msgs, template)
            tools = tools_of(rec.data)
            yield Example(text, rec.row, name, msgs, chat_template, kind, rec.unit, tools, rec.format or "trl")
            continue
        try:
            text = row_to_text(rec.data, template, where)
            yield Example(text, rec.row, name, kind=kind, unit=rec.unit, format=rec.format or "trl")
        except InspectorError as exc:
            yield RowProblem("bad-row", exc.problem, exc.fix, rec.row)


def load_examples(
    path: str | Path,
    template: TurnMarkers = ARTICLE_MARKERS,
    *,
    split: str | None = None,
    limit: int | None = None,
    columns: dict[str, str] | None = None,
    chat_template: str | None = None,
    row_format: str = "auto",
) -> list[Example]:
    """Every row of a data file as an Example; the first bad row is an error naming it.

    All rows must be of one type (text, prompt/completion, conversational): a file that
    mixes them is refused at the first row that differs.
    """
    examples: list[Example] = []
    opts = {"columns": columns, "chat_template": chat_template, "row_format": row_format}
    for item in _scan(path, template, split=split, limit=limit, **opts):
        if isinstance(item, RowProblem):
            raise item
        examples.append(item)
    if not examples:
        raise InspectorError(f"the data file {path} is empty: it has no rows", "add at least one example")
    return examples


@dataclass
class DataRead:
    """What the app reads of a data file: the rows that are examples, and those that are not."""

    examples: list[Example]
    problems: list[RowProblem]
    rows_read: int
    more: bool  # the file has rows past the ones read


APP_ROWS = 2000  # rows the app reads when --limit does not say (the report `inspect-data` reads all)


def read_examples(
    path: str | Path,
    template: TurnMarkers = ARTICLE_MARKERS,
    *,
    split: str | None = None,
    limit: int | None = None,
    columns: dict[str, str] | None = None,
    chat_template: str | None = None,
    row_format: str = "auto",
) -> DataRead:
    """Like `load_examples`, but a bad row is listed instead of stopping the read.

    Reads `limit` rows, or APP_ROWS when no limit is given (and says whether more follow).
    A file with no row that is an example is still an error.
    """
    cap = limit if limit is not None else APP_ROWS
    examples: list[Example] = []
    problems: list[RowProblem] = []
    rows = 0
    more = False
    opts = {"columns": columns, "chat_template": chat_template, "row_format": row_format}
    for item in _scan(path, template, split=split, limit=cap + 1, **opts):
        if rows >= cap:
            more = True
            break
        rows += 1
        if isinstance(item, RowProblem):
            problems.append(item)
        else:
            examples.append(item)
    if not examples:
        if problems:
            first = problems[0]
            others = f" (and {len(problems) - 1} more rows)" if len(problems) > 1 else ""
            raise InspectorError(f"no row of {Path(path).name} can be used: {first.problem}{others}", first.fix)
        raise InspectorError(f"the data file {path} is empty: it has no rows", "add at least one example")
    return DataRead(examples, problems, rows, more)


def format_examples(
    examples: Sequence[Example],
    tokenizer: Any,
    template: TurnMarkers = ARTICLE_MARKERS,
    model_name: str = "in use",
) -> list[FormattedExample]:
    """The article's `add_special_tokens` on every example; errors name the row."""
    from inspector.core.data.conversations import format_messages

    out = []
    for ex in examples:
        try:
            if ex.messages is not None:
                where = ex.where
                out.append(
                    format_messages(
                        ex.messages,
                        tokenizer,
                        template,
                        ex.chat_template,
                        tools=ex.tools,
                        model_name=model_name,
                        where=where,
                    )
                )
                continue
            out.append(
                add_special_tokens(ex.text, tokenizer.bos_token, tokenizer.eos_token, template, model_name=model_name)
            )
        except InspectorError as exc:
            if ex.origin == "article":
                raise
            if exc.problem.startswith(ex.origin):
                raise
            raise InspectorError(f"{ex.where}: {exc.problem}", exc.fix, kind=exc.kind) from exc
    return out


TRAIN_ROWS = 8  # examples of a data file the app's bursts train on (and `prepare` prepares), unless told


def format_leniently(
    examples: Sequence[Example],
    tokenizer: Any,
    template: TurnMarkers = ARTICLE_MARKERS,
    model_name: str = "in use",
) -> tuple[list[tuple[Example, FormattedExample]], list[RowProblem]]:
    """Each example formatted as training formats it; one that cannot be is listed as a RowProblem
    (`template-not-found` when no assistant turn is found, else `bad-row`) instead of stopping the rest."""
    pairs: list[tuple[Example, FormattedExample]] = []
    problems: list[RowProblem] = []
    for ex in examples:
        try:
            (fe,) = format_examples([ex], tokenizer, template, model_name)
        except InspectorError as exc:
            kind = exc.kind or ("template-not-found" if "assistant" in exc.problem.lower() else "bad-row")
            problems.append(RowProblem(kind, exc.problem, exc.fix, ex.row))
            continue
        pairs.append((ex, fe))
    return pairs, problems


def read_row(
    path: str | Path,
    row: int,
    template: TurnMarkers = ARTICLE_MARKERS,
    *,
    split: str | None = None,
    columns: dict[str, str] | None = None,
    chat_template: str | None = None,
    row_format: str = "auto",
) -> Example | RowProblem | None:
    """Row `row` of a data file (streamed to it): its Example, the RowProblem that stops it
    being one, or None when the file has no such row."""
    opts = {"columns": columns, "chat_template": chat_template, "row_format": row_format}
    for item in _scan(path, template, split=split, limit=None, **opts):
        if item.row == row:
            return item
        if item.row > row:
            return None
    return None


def rows_text(rows: list[int]) -> str:
    """'1-3, 5, 7-8' for a sorted list of row numbers."""
    parts: list[str] = []
    start = prev = None
    for r in rows:
        if start is None:
            start = prev = r
        elif prev is not None and r == prev + 1:
            prev = r
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = r
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


def train_rows_note(rows: list[int], data_name: str, total: int) -> str | None:
    """What the bursts train on, of a --data file: its rows, and how to change how many."""
    from pathlib import Path

    if not rows:
        return None
    return (
        f"bursts train on rows {rows_text(rows)} of {Path(data_name).name}: the first {len(rows)} of "
        f"{total:,} examples read (--train-rows N for another number)"
    )
