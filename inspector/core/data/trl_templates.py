"""The chat templates TRL ships (`trl/chat_templates/*.jinja`), by name.

`--chat-template NAME` takes one of them: `qwen3` is TRL's copy of Qwen 3's template, and its
`_training` variant (`qwen3_training`, with `{% generation %}` markers around what the
assistant writes, and prefix-preserving) is the one used when it exists, because those
markers are what assistant-only training needs. The files are read from TRL's package
folder without importing TRL (which loads transformers); TRL's own checks
(`trl.chat_template_utils`) are imported only where they run.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.core.errors import InspectorError

TRAINING = "_training"


def templates_folder() -> Path | None:
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "chat_templates"
    return folder if folder.is_dir() else None


def shipped() -> dict[str, Path]:
    """Every template TRL ships, by file name without `.jinja` (training variants included)."""
    folder = templates_folder()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.jinja"))}


@dataclass(frozen=True)
class NamedTemplate:
    name: str  # as given
    used: str  # the file used: the `_training` variant where TRL ships one
    text: str

    @property
    def training(self) -> bool:
        return self.used.endswith(TRAINING)


def families() -> list[tuple[str, bool, bool]]:
    """(name, has a training variant, renders tool calls) for every template a user can name."""
    files = shipped()
    out = []
    for name in files:
        if name.endswith(TRAINING):
            continue
        used = files.get(name + TRAINING, files[name])  # what --chat-template NAME uses
        out.append((name, name + TRAINING in files, "tool_calls" in used.read_text(encoding="utf-8")))
    return out


def resolve(name: str) -> NamedTemplate:
    """The template TRL ships under `name` (its `_training` variant when there is one)."""
    files = shipped()
    if not files:
        raise InspectorError(
            f"--chat-template {name}: no such file, and TRL's shipped templates were not found",
            "give the path of a .jinja file, or install trl",
        )
    if name not in files:
        raise InspectorError(
            f"--chat-template {name}: no such file, nor a template TRL ships",
            "give a .jinja file, or one of the names `causallm-inspect templates` lists (e.g. llama3, qwen2_5, gemma3)",
        )
    used = name if name.endswith(TRAINING) or name + TRAINING not in files else name + TRAINING
    return NamedTemplate(name, used, files[used].read_text(encoding="utf-8"))


def name_of(text: str) -> str | None:
    """The name TRL ships this exact template text under, if it does."""
    for name, path in shipped().items():
        if path.read_text(encoding="utf-8") == text:
            return name
    return None


def training_variant(tokenizer: Any, template: str) -> str | None:
    """TRL's `get_training_chat_template` for a template without markers: the name of the
    training variant TRL ships for its family, or None when TRL has none."""
    import copy

    from trl.chat_template_utils import get_training_chat_template

    tok = copy.copy(tokenizer)
    tok.chat_template = template
    try:
        patched = get_training_chat_template(tok)
    except Exception:  # noqa: BLE001 -- TRL raises ValueError for a family it cannot patch; a template may fail to render
        return None
    return name_of(patched) if patched else None


def has_generation_markers(template: str | None) -> bool:
    """TRL's check (`{% generation %}` in any of its whitespace-trim forms)."""
    if not template or "generation" not in template:  # no need to import TRL (seconds) to say no
        return False
    from trl.chat_template_utils import has_generation_markers as trl_check

    return bool(trl_check(template))


def stop_token_trained(tokenizer: Any, template: str) -> bool:
    """TRL's `is_chat_template_stop_token_trained`: does the marked span of an assistant turn
    end on the end-of-turn token?"""
    from trl.chat_template_utils import is_chat_template_stop_token_trained

    return bool(is_chat_template_stop_token_trained(tokenizer, chat_template=template))
