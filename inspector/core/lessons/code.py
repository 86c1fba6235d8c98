"""The code behind each lesson's view, as a script (or notebook) that runs on its own.

A lesson names its code file in its front matter (`code: 06-template-pitfall.py`); the
files live in the lessons' `code/` folder. A script is `_common.py` (loading the model,
the article's `add_special_tokens` and `create_special_mask`), then the parts the lesson
file includes with `# include: _training.py` lines, then the lesson's own lines. Values
are filled in from `{{name}}` placeholders (`repr` of the value; `{{name|s}}` as text), so
an exported script uses the model, device and data it was exported with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.core.data.chat_format import (
    ARTICLE_EXAMPLES,
    ARTICLE_MARKERS,
    HOLDOUT_ANSWER,
    HOLDOUT_WORD,
    TurnMarkers,
    holdout_text,
)
from inspector.core.errors import InspectorError
from inspector.core.lessons.model import Lesson, read_code
from inspector.core.training.burst import DEFAULT_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULT_SEED

COMMON = "_common.py"
_PLACEHOLDER = re.compile(r"\{\{(\w+)(\|s)?\}\}")
_INCLUDE = re.compile(r"^# include: (\S+)\s*$", re.MULTILINE)
_CELL = re.compile(r"^# %%.*$", re.MULTILINE)


@dataclass(frozen=True)
class CodeSpec:
    """What the exported code runs on: the model, device and data the app or command used."""

    model: str | None = None  # None: the embedded Gemma 3 270M
    device: str = "auto"
    epochs: int = DEFAULT_EPOCHS
    learning_rate: float = DEFAULT_LEARNING_RATE
    seed: int = DEFAULT_SEED
    examples: tuple[str, ...] = ARTICLE_EXAMPLES
    template: TurnMarkers = field(default=ARTICLE_MARKERS)
    bos_token: str | None = None
    eos_token: str | None = None


def code_values(lesson: Lesson, number: int, spec: CodeSpec) -> dict[str, Any]:
    from inspector.core.lessons.chat_templates import generation_template
    from inspector.core.data.chat_format import ARTICLE_PAIRS, article_text
    from inspector.core.lessons.demos import TWO_TURNS
    from inspector.core.lessons.traces import REASONED
    from inspector.core.lessons.tool_calls import AGENT, FLAG
    from inspector.core.lessons.weights import STEP_FLAGS, WORLD_SIZE, step_examples

    model = None if spec.model in (None, "", "embedded") else spec.model
    if model is not None and Path(model).expanduser().exists():  # a folder or .gguf: absolute, to run from anywhere
        model = str(Path(model).expanduser().resolve())
    return {
        "title": lesson.title,
        "number": number,
        "model": model,
        "device": spec.device,
        "epochs": lesson.epochs or spec.epochs,
        "learning_rate": spec.learning_rate,
        "seed": spec.seed,
        "human": spec.template.human,
        "assistant": spec.template.assistant,
        "bos_token": spec.bos_token,
        "eos_token": spec.eos_token,
        "examples": list(spec.examples),
        "example": lesson.example or spec.examples[0],
        "held_out": holdout_text(HOLDOUT_WORD, spec.template),
        "held_out_answer": HOLDOUT_ANSWER,
        "two_turns": TWO_TURNS,
        "step_examples": [article_text(w, a, spec.template) for w, a in step_examples(ARTICLE_PAIRS)],
        "truncation_pair": list(ARTICLE_PAIRS[0]),
        "world_size": WORLD_SIZE,
        "accumulation": STEP_FLAGS["gradient_accumulation_steps"],
        "batch_size": STEP_FLAGS["per_device_train_batch_size"],
        "chat_template": generation_template(),
        "reasoned": [dict(m) for m in REASONED],
        "agent": [dict(m) for m in AGENT],
        "flag": FLAG,
    }


def fill(text: str, values: Mapping[str, Any], source: str = "") -> str:
    def one(m: re.Match[str]) -> str:
        name, as_text = m.group(1), m.group(2)
        if name not in values:
            raise InspectorError(f"the lesson code {source} uses an unknown value {{{{{name}}}}}", "fix the template")
        value = values[name]
        return str(value) if as_text else repr(value)

    return _PLACEHOLDER.sub(one, text)


def render_parts(lesson: Lesson, number: int, spec: CodeSpec = CodeSpec(), folder: Any = None) -> list[str]:
    """The script in its parts: the common setup, each included part, the lesson's own lines."""
    if not lesson.code:
        raise InspectorError(f"lesson {lesson.source} has no code", "add a 'code:' key naming a file in lessons/code/")
    values = code_values(lesson, number, spec)
    body = read_code(lesson.code, folder)
    parts = [fill(read_code(COMMON, folder), values, COMMON)]
    for name in _INCLUDE.findall(body):
        parts.append(fill(read_code(name, folder), values, name))
    parts.append(fill(_INCLUDE.sub("", body), values, lesson.code))
    return [p.strip("\n") for p in parts]


def join_parts(parts: Sequence[str]) -> str:
    return "\n\n".join(parts) + "\n"


def render_code(lesson: Lesson, number: int, spec: CodeSpec = CodeSpec(), folder: Any = None) -> str:
    """The lesson's code as one standalone Python script."""
    return join_parts(render_parts(lesson, number, spec, folder))


def own_lines_start(parts: Sequence[str]) -> int:
    """The line (0-based) of the joined script where the lesson's own lines begin."""
    return sum(p.count("\n") + 2 for p in parts[:-1])


def split_cells(code: str) -> list[str]:
    """The script's `# %%` cells, the lines before the first one included in the first."""
    starts = [m.start() for m in _CELL.finditer(code)]
    bounds = sorted(set([0, *starts, len(code)]))
    cells = [code[a:b].strip("\n") for a, b in zip(bounds, bounds[1:])]
    return [c for c in cells if c.strip()]


def to_notebook(code: str, lesson: Lesson, number: int) -> dict[str, Any]:
    """A Jupyter notebook (nbformat 4): the lesson's text, then one code cell per `# %%` cell."""

    def lines(text: str) -> list[str]:
        out = text.splitlines(keepends=True)
        return out

    cells: list[dict[str, Any]] = [
        {
            "cell_type": "markdown",
            "metadata": {},
            "source": lines(f"*Lesson {number} of causallm-inspect*\n\n{lesson.body}"),
        }
    ]
    for cell in split_cells(code):
        cells.append(
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": lines(cell)}
        )
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook_json(code: str, lesson: Lesson, number: int) -> str:
    return json.dumps(to_notebook(code, lesson, number), ensure_ascii=False, indent=1) + "\n"


