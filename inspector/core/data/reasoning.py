"""Reasoning traces and per-message flags as chat rows carry them.

Reasoning comes in a field of an assistant message (`reasoning_content`: Qwen, DeepSeek and
OpenAI-compatible servers; `reasoning`; `thinking`: gpt-oss) or inline, as a
`<think>…</think>` block at the start of the content. The row is rendered by the chat template
as it is: a template that reads the field renders it, one that does not drops it (which the
turn reports count, `labels.turn_context`). Nothing here rewrites a message.

Per-message flags are axolotl's and LLaMA-Factory's ways of saying "do not train this
message": `"weight": 0`, `"train": false`, `"loss": false`. TRL's SFTTrainer has no such field
and trains the message anyway; the mask and custom strategies honour them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.errors import InspectorError

ASSISTANT_ROLES = ("assistant", "model", "gpt", "bot")
TOOL_ROLES = ("tool", "function", "ipython")
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")
FLAG_FIELDS = ("weight", "train", "loss")
# Marker texts recognised around a reasoning block in a rendering, opener before closer.
THINK_OPENERS = ("<think>", "<seed:think>", "<|channel|>analysis<|message|>", "◁think▷", "<thinking>")
THINK_CLOSERS = ("</think>", "</seed:think>", "<|end|>", "◁/think▷", "</thinking>")
_INLINE = re.compile(r"^\s*<think>(.*?)</think>", re.DOTALL)


@dataclass(frozen=True)
class Reasoning:
    text: str
    source: str  # the field it came from, or "inline"


def reasoning_of(message: dict[str, Any]) -> Reasoning | None:
    """The reasoning an assistant message carries (a field, or an inline `<think>` block), None if none."""
    for key in REASONING_FIELDS:
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            return Reasoning(value, key)
    content = message.get("content")
    if isinstance(content, str):
        found = _INLINE.match(content)
        if found:
            return Reasoning(found.group(1), "inline")
    return None


def answer_of(message: dict[str, Any]) -> str:
    """The content without an inline `<think>…</think>` block: what the answer is."""
    content = message.get("content") or ""
    found = _INLINE.match(content)
    return content[found.end() :] if found else content


def untrained_by_flag(message: dict[str, Any]) -> str | None:
    """The message's own flag that says "do not train me" (`'"weight": 0'`), None when it has none."""
    for key in FLAG_FIELDS:
        if key not in message:
            continue
        value = message[key]
        if value is False or (key == "weight" and not isinstance(value, bool) and value == 0):
            return f'"{key}": {str(value).lower() if isinstance(value, bool) else value}'
    return None


def flags_of(message: dict[str, Any]) -> list[str]:
    """Every per-message flag the message carries, as written (`'"train": true'`)."""
    out = []
    for key in FLAG_FIELDS:
        if key in message:
            value = message[key]
            out.append(f'"{key}": {str(value).lower() if isinstance(value, bool) else value}')
    return out


def check_messages(messages: Sequence[dict[str, Any]], where: str) -> None:
    """Refuse what a template would render wrongly or a reader would misread, naming the message."""
    called = False
    for i, m in enumerate(messages, start=1):
        role = m.get("role")
        for key in REASONING_FIELDS:
            if key in m and m[key] is not None and not isinstance(m[key], str):
                raise InspectorError(
                    f'{where}: message {i} ({role}) has "{key}" that is a {type(m[key]).__name__}, not a string',
                    f'write the reasoning as text in "{key}", or drop the field',
                    kind="bad-row",
                )
        content = m.get("content")
        if isinstance(content, str) and content.count("<think>") > content.count("</think>"):
            raise InspectorError(
                f"{where}: message {i} ({role}) opens <think> and never closes it",
                'close the reasoning with </think> before the answer, or move it to "reasoning_content"',
                kind="bad-row",
            )
        for key in FLAG_FIELDS:
            value = m.get(key)
            if key in m and not isinstance(value, bool | int | float):
                raise InspectorError(
                    f'{where}: message {i} ({role}) has "{key}": {value!r}, which is not a number or true/false',
                    f'write "{key}": 0 or 1 (or false/true)',
                    kind="bad-row",
                )
        if role in ASSISTANT_ROLES and m.get("tool_calls"):
            called = True
        elif role in TOOL_ROLES and not called:
            raise InspectorError(
                f"{where}: message {i} is a tool result ({role}) with no tool call before it",
                'put the assistant message that calls the tool (its "tool_calls") before the result, or drop the row',
                kind="bad-row",
            )


def think_block(text: str, lo: int, hi: int, reasoning: str | None) -> tuple[int, int] | None:
    """The think block inside text[lo:hi]: around `reasoning` where it is rendered there, else an
    empty block (an opener and a closer with only whitespace between)."""
    inner = (reasoning or "").strip()
    if inner:
        at = text.find(inner, lo, hi)
        if at < 0:  # dropped by the template: an empty block may stand in its place
            return think_block(text, lo, hi, None)
        a, b = at, at + len(inner)
        best, opener = -1, ""
        for o in THINK_OPENERS:
            p = text.rfind(o, lo, a)
            if p > best:
                best, opener = p, o
        if best >= 0 and not text[best + len(opener) : a].strip():
            a = best
        rest = text[b:hi]
        stripped = rest.lstrip(" \n")
        closer = next((c for c in THINK_CLOSERS if stripped.startswith(c)), None)
        if closer:
            b += len(rest) - len(stripped) + len(closer)
        return a, b
    for o in THINK_OPENERS:
        at = text.find(o, lo, hi)
        if at < 0:
            continue
        after = text[at + len(o) : hi]
        stripped = after.lstrip(" \n")
        closer = next((c for c in THINK_CLOSERS if stripped.startswith(c)), None)
        if closer:
            return at, at + len(o) + len(after) - len(stripped) + len(closer)
    return None
