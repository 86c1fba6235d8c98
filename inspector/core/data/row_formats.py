"""The row formats of chat data as people have it, turned into TRL's types.

- `sharegpt`: `{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}`
  (also `role`/`content` under `conversations`), with an optional `system` text and `tools`
  list, as LLaMA-Factory and axolotl read it. Roles: `human`/`user`, `gpt`/`assistant`/`model`,
  `system`, `function_call` (the assistant calls a tool: its value is the call as JSON) and
  `observation`/`tool`/`function_response` (what the tool returned).
- `alpaca`: `instruction` + optional `input` (the user's turn, joined by a newline), `output`
  (the answer), optional `system` and `history` (earlier `[question, answer]` pairs).
- `openai`: `messages` in OpenAI's chat format: content as text or as a list of content parts
  (text parts are joined; any other part is a problem naming it), `tool_calls` on assistant
  messages, `tool` messages with the results, and an optional `tools` list.
- `trl`: TRL's own types (`text`, `prompt`/`completion`, conversational prompt/completion).

Every format becomes `messages` (or stays a TRL type), so the rest of the program sees one
shape: messages with a text `content`, plus `tool_calls`, `name`, `tool_call_id` where given.
"""

from __future__ import annotations

import json
from typing import Any

ROW_FORMATS = ("auto", "sharegpt", "alpaca", "openai", "trl")
FORMAT_TITLES = {"sharegpt": "ShareGPT", "alpaca": "Alpaca", "openai": "OpenAI messages", "trl": "TRL"}

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function_response": "tool",
    "function": "tool",
}


class RowFormatError(ValueError):
    """A row of a known format that cannot be read as it; the message says what is wrong."""


def detect_row_format(data: dict[str, Any]) -> str:
    if "conversations" in data:
        return "sharegpt"
    if "instruction" in data and "output" in data:
        return "alpaca"
    if "messages" in data:
        return "openai"
    return "trl"


def normalize(data: dict[str, Any], fmt: str = "auto") -> tuple[dict[str, Any], str]:
    """The row in TRL's shape and the format it was read as; RowFormatError if it does not fit."""
    found = detect_row_format(data) if fmt == "auto" else fmt
    if found == "sharegpt":
        return _sharegpt(data), found
    if found == "alpaca":
        return _alpaca(data), found
    if found in ("openai", "trl"):
        out = dict(data)
        for key in ("messages", "prompt", "completion"):
            if isinstance(out.get(key), list):
                out[key] = [_openai_message(m, i) for i, m in enumerate(out[key], start=1)]
        if found == "openai" and "messages" not in out:
            raise RowFormatError('has no "messages" (the OpenAI format, chosen with --format openai)')
        if "tools" in out:
            out["tools"] = _tools(out["tools"])
        return out, found
    raise RowFormatError(f"unknown row format {fmt!r}")


def _sharegpt(data: dict[str, Any]) -> dict[str, Any]:
    turns = data.get("conversations")
    if "conversations" not in data:
        raise RowFormatError('has no "conversations" (the ShareGPT format, chosen with --format sharegpt)')
    if not isinstance(turns, list) or not turns:
        raise RowFormatError('"conversations" is not a list of turns (the ShareGPT format)')
    messages: list[dict[str, Any]] = []
    system = data.get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            raise RowFormatError(f'turn {i} of "conversations" is a {type(turn).__name__}, not an object')
        who = turn.get("from", turn.get("role"))
        value = turn.get("value", turn.get("content"))
        if not isinstance(who, str):
            raise RowFormatError(f'turn {i} of "conversations" has no "from" (or "role")')
        role = SHAREGPT_ROLES.get(who.lower())
        if role is None:
            raise RowFormatError(
                f'turn {i} of "conversations" is from {who!r}, not one of {", ".join(sorted(SHAREGPT_ROLES))}'
            )
        if who.lower() == "function_call":
            messages.append({"role": "assistant", "content": "", "tool_calls": _sharegpt_calls(value, i)})
            continue
        message = _openai_message({"role": role, "content": value}, i)
        if role == "tool" and isinstance(turn.get("name"), str):
            message["name"] = turn["name"]
        messages.append(message)
    out: dict[str, Any] = {"messages": messages}
    if "tools" in data:
        out["tools"] = _tools(data["tools"])
    return out


def _sharegpt_calls(value: Any, i: int) -> list[dict[str, Any]]:
    """A `function_call` turn's value: one call, or a list of them, as JSON text or objects."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowFormatError(f"turn {i} (function_call) is not a JSON tool call ({exc.msg})") from exc
    calls = value if isinstance(value, list) else [value]
    out = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise RowFormatError(f'turn {i} (function_call) is not {{"name": ..., "arguments": ...}}')
        out.append(
            {"type": "function", "function": {"name": call["name"], "arguments": _arguments(call.get("arguments", {}))}}
        )
    return out


def _alpaca(data: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in ("instruction", "output") if k not in data]
    if missing:
        raise RowFormatError(f'has no "{missing[0]}" (the Alpaca format, chosen with --format alpaca)')
    instruction, output = data.get("instruction"), data.get("output")
    extra = data.get("input") or ""
    for key, value in (("instruction", instruction), ("output", output), ("input", extra)):
        if not isinstance(value, str):
            raise RowFormatError(f'"{key}" is a {type(value).__name__}, not a string (the Alpaca format)')
    messages: list[dict[str, Any]] = []
    system = data.get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    history = data.get("history") or []
    if not isinstance(history, list):
        raise RowFormatError('"history" is not a list of [question, answer] pairs (the Alpaca format)')
    for n, pair in enumerate(history, start=1):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise RowFormatError(f'"history" entry {n} is not a [question, answer] pair of texts')
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    user = f"{instruction}\n{extra}" if extra else instruction
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return {"messages": messages}


def _openai_message(m: Any, i: int) -> Any:
    """One message with its content as text; anything that is not a message is left for `classify`."""
    if not isinstance(m, dict) or not isinstance(m.get("role"), str):
        return m
    out = dict(m)
    content = m.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind != "text" or not isinstance(part.get("text"), str):
                raise RowFormatError(
                    f"message {i} ({m['role']}) has a content part of type {kind!r}: only text parts can be trained here"
                )
            texts.append(part["text"])
        out["content"] = "\n".join(texts)
    elif content is None and m.get("tool_calls"):
        out["content"] = ""
    if m.get("tool_calls"):
        calls = m["tool_calls"]
        if not isinstance(calls, list):
            raise RowFormatError(f'message {i}: "tool_calls" is not a list')
        out["tool_calls"] = [_call(c, i) for c in calls]
    return out


def _call(call: Any, i: int) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise RowFormatError(f"message {i}: a tool call is a {type(call).__name__}, not an object")
    fn = call.get("function", call)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise RowFormatError(f"message {i}: a tool call has no function name")
    out = dict(call)
    out["type"] = call.get("type", "function")
    out["function"] = {**fn, "arguments": _arguments(fn.get("arguments", {}))}
    return out


def _arguments(args: Any) -> Any:
    """OpenAI writes a call's arguments as JSON text; chat templates want the object."""
    if isinstance(args, str):
        try:
            return json.loads(args)
        except json.JSONDecodeError:
            return args
    return args


def _tools(tools: Any) -> list[Any] | None:
    if isinstance(tools, str):
        if not tools.strip():
            return None
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as exc:
            raise RowFormatError(f'"tools" is not a JSON list of tool definitions ({exc.msg})') from exc
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise RowFormatError('"tools" is not a list of tool definitions')
    return tools


def tool_calls_of(message: dict[str, Any]) -> list[str]:
    """The names of the tools a message calls."""
    names = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function", call) if isinstance(call, dict) else {}
        names.append(str(fn.get("name", "?")))
    return names
