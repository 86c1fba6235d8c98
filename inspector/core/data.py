"""Training examples: the article's five, or the user's own JSONL.

A JSONL row is either `{"text": ...}` in the `### Human:` / `### Assistant:` format, or
`{"prompt": ..., "completion": ...}`. A prompt that already contains the assistant marker
is used as it is (prompt + completion); otherwise the prompt is the human's message and
the completion the assistant's answer. Rows are numbered from 1 as lines of the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.core.chat import (
    ARTICLE_EXAMPLES,
    ARTICLE_TEMPLATE,
    ChatTemplate,
    FormattedExample,
    add_special_tokens,
)
from inspector.core.errors import InspectorError


@dataclass(frozen=True)
class Example:
    text: str  # in the template's format, before add_special_tokens (conversations: the article rendering)
    row: int  # row number in the data file (1-based); for built-in examples, their index + 1
    origin: str = "article"  # "article", or the data file's name
    messages: tuple[dict[str, str], ...] | None = None  # conversational rows
    chat_template: str | None = None  # from --chat-template, for conversational rows
    kind: str = "text"  # the row's type (datasource.KINDS)
    unit: str = "row"  # how rows are counted in messages: "line" for JSONL

    @property
    def where(self) -> str:
        return f"{self.origin} {self.unit} {self.row}"


def article_examples() -> list[Example]:
    return [Example(text, i + 1) for i, text in enumerate(ARTICLE_EXAMPLES)]


def row_to_text(obj: Any, template: ChatTemplate, where: str) -> str:
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


def load_examples(
    path: str | Path,
    template: ChatTemplate = ARTICLE_TEMPLATE,
    *,
    split: str | None = None,
    limit: int | None = None,
    columns: dict[str, str] | None = None,
    chat_template: str | None = None,
) -> list[Example]:
    """Every row of a data file as an Example; the first bad row is an error naming it.

    All rows must be of one type (text, prompt/completion, conversational): a file that
    mixes them is refused at the first row that differs.
    """
    from inspector.core.conversations import to_article_text
    from inspector.core.datasource import KIND_TITLES, classify, iter_records, messages_of

    name = Path(path).name
    examples: list[Example] = []
    first_kind = None
    for rec in iter_records(path, split=split, limit=limit, columns=columns):
        where = f"{name} {rec.where}"
        if rec.data is None:
            raise InspectorError(f"{where} {rec.error}", "fix or remove that row")
        kind, why = classify(rec.data)
        if kind is None:
            raise InspectorError(f"{where} {why}", "give each row one of TRL's dataset types")
        if first_kind is None:
            first_kind = kind
        elif kind != first_kind:
            raise InspectorError(
                f"{where} is {KIND_TITLES[kind]} but the rows before it are {KIND_TITLES[first_kind]}",
                "keep one type of row per file",
            )
        if kind in ("messages", "conversational-prompt-completion"):
            msgs = tuple(messages_of(kind, rec.data))
            examples.append(Example(to_article_text(msgs, template), rec.row, name, msgs, chat_template, kind, rec.unit))
        else:
            examples.append(Example(row_to_text(rec.data, template, where), rec.row, name, kind=kind, unit=rec.unit))
    if not examples:
        raise InspectorError(f"the data file {path} is empty: it has no rows", "add at least one example")
    return examples


def load_jsonl(path: str | Path, template: ChatTemplate = ARTICLE_TEMPLATE) -> list[Example]:
    p = Path(path).expanduser()
    if not p.exists():
        raise InspectorError(f"the data file {path} does not exist", "check the path given to --data")
    if p.is_dir():
        raise InspectorError(f"{path} is a folder, not a JSONL file", "pass a .jsonl file to --data")
    examples = []
    try:
        with p.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{p.name} line {n}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InspectorError(f"{where} is not valid JSON ({exc.msg})", "write one JSON object per line") from exc
                examples.append(Example(row_to_text(obj, template, where), n, p.name))
    except UnicodeDecodeError as exc:
        raise InspectorError(f"{path} is not UTF-8 text", "save the file as UTF-8 JSONL") from exc
    if not examples:
        raise InspectorError(f"the data file {path} is empty", "add one JSON object per line")
    return examples


def format_examples(
    examples: Sequence[Example],
    tokenizer: Any,
    template: ChatTemplate = ARTICLE_TEMPLATE,
    model_name: str = "in use",
) -> list[FormattedExample]:
    """The article's `add_special_tokens` on every example; errors name the row."""
    from inspector.core.conversations import format_messages

    out = []
    for ex in examples:
        try:
            if ex.messages is not None:
                where = ex.where
                out.append(format_messages(ex.messages, tokenizer, template, ex.chat_template, model_name=model_name, where=where))
                continue
            out.append(add_special_tokens(ex.text, tokenizer.bos_token, tokenizer.eos_token, template, model_name=model_name))
        except InspectorError as exc:
            if ex.origin == "article":
                raise
            if exc.problem.startswith(ex.origin):
                raise
            raise InspectorError(f"{ex.where}: {exc.problem}", exc.fix) from exc
    return out
