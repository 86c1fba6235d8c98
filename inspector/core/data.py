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
    text: str  # in the template's format, before add_special_tokens
    row: int  # line number in the data file (1-based); for built-in examples, their index + 1
    origin: str = "article"  # "article", or the data file's name


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
    out = []
    for ex in examples:
        try:
            out.append(add_special_tokens(ex.text, tokenizer.bos_token, tokenizer.eos_token, template, model_name=model_name))
        except InspectorError as exc:
            if ex.origin == "article":
                raise
            raise InspectorError(f"{ex.origin} line {ex.row}: {exc.problem}", exc.fix) from exc
    return out
