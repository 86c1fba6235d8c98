"""Which message, and which part of it, each character and token of a rendered conversation is.

A chat template writes each message with text of its own around it (`<|im_start|>assistant\\n`
… `<|im_end|>`). Where the template renders every prefix of the conversation as a prefix of
the whole (prefix-preserving), a message's range is exactly what rendering it adds; where it
does not (Qwen 3's original template drops earlier reasoning), each message is found in order
by its visible text (reasoning, content, tool call names, results).

Roles: `system`, `user`, `assistant` (its answer, with the template's text around it),
`reasoning` (a think block with its markers, an empty one too), `tool_call` (an assistant
message's calls, with their markers), `tool_result` (a tool message), and "" (text before
the first message's range, none in practice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.data.reasoning import ASSISTANT_ROLES, TOOL_ROLES, answer_of, reasoning_of, think_block

# The texts that close a turn in the common templates (a found message runs through one).
TURN_CLOSERS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<turn|>",
    "<｜end▁of▁sentence｜>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "</s>",
)
ROLES = ("system", "user", "assistant", "reasoning", "tool_call", "tool_result", "")


@dataclass(frozen=True)
class MessageRange:
    index: int  # 0-based message index
    start: int  # character range of the message in the rendering
    end: int
    body: int  # where the message's own text starts (after the template's header), or start
    role: str  # system / user / assistant / tool_result
    reasoning: tuple[int, int] | None  # the think block, markers included (an empty block too)
    calls: tuple[int, int] | None  # the tool calls, markers included


def _base_role(role: str) -> str:
    if role in ASSISTANT_ROLES:
        return "assistant"
    if role in TOOL_ROLES:
        return "tool_result"
    return "system" if role in ("system", "developer") else "user"


def _calls_range(text: str, m: dict[str, Any], lo: int, body: int, hi: int) -> tuple[int, int] | None:
    """From the end of what the message says before its calls to the end of its last call's text."""
    from inspector.core.data.row_formats import tool_calls_of

    names = tool_calls_of(m)
    if not names:
        return None
    first = text.find(names[0], body, hi)
    if first < 0:
        return None
    start = body
    answer = answer_of(m).strip()
    if answer:
        at = text.find(answer, body, first)
        if at >= 0:
            start = at + len(answer)
    r = reasoning_of(m)
    block = think_block(text, body, first, r.text if r else None)
    if block and block[1] > start:
        start = block[1]
    while start < first and text[start] in " \n":
        start += 1
    end = first + len(names[0])
    for name in names[1:]:
        at = text.find(name, end, hi)
        end = at + len(name) if at >= 0 else end
    close = _closers(text, end, hi)
    return start, close


def _closers(text: str, end: int, hi: int) -> int:
    """The end of a call's text: its arguments and markup, up to the turn's closing special text."""
    tail = text[end:hi]
    # the call runs to the last non-space character before the message's trailing special texts
    cut = len(tail.rstrip())
    for marker in TURN_CLOSERS:
        at = tail.rfind(marker)
        if 0 <= at < cut:
            cut = at
    return end + len(tail[:cut].rstrip(" \n")) if cut else end


def _found_end(text: str, m: dict[str, Any], pos: int) -> int:
    """Where a message ends, found by its visible text from `pos` (reasoning, answer, call names),
    through the special text that closes its turn and the line break after it."""
    from inspector.core.data.row_formats import tool_calls_of

    r = reasoning_of(m)
    end = pos
    for anchor in (r.text.strip() if r else "", answer_of(m).strip(), *tool_calls_of(m)):
        at = text.find(anchor, end) if anchor else -1
        if at >= 0:
            end = at + len(anchor)
    rest = text[end:]
    closer = next((c for c in TURN_CLOSERS if rest.startswith(c)), "")
    end += len(closer)
    while end < len(text) and text[end] == "\n":  # the line break after a turn is the turn's
        end += 1
    return end


def _ends(fe: FormattedExample, tokenizer: Any) -> tuple[list[int], list[int]]:
    """Each message's end, and where its body starts (after the generation prompt, for an
    assistant message). Where rendering the conversation up to a message gives a prefix of the
    whole (prefix-preserving there) that is exact; where not (a template that drops earlier
    reasoning, or closes a group of tool results only after the last), the message is found
    by its visible text."""
    from inspector.core.data.conversations import render

    msgs = list(fe.messages or ())
    text, template = fe.text, fe.chat_template or ""
    ends: list[int] = []
    bodies: list[int] = []
    for i, m in enumerate(msgs):
        prev = ends[-1] if ends else 0
        try:
            upto, _ = render(tokenizer, msgs[: i + 1], template, fe.tools)
        except Exception:  # noqa: BLE001 -- a template may refuse a conversation cut short
            upto = None
        end = len(upto) if upto is not None and text.startswith(upto) and len(upto) >= prev else None
        body = prev
        if m["role"] in ASSISTANT_ROLES:
            try:
                head, _ = render(tokenizer, msgs[:i], template, fe.tools, add_generation_prompt=True)
                if text.startswith(head) and len(head) >= prev:
                    body = len(head)
            except Exception:  # noqa: BLE001 -- as above
                pass
        ends.append(end if end is not None else max(prev, _found_end(text, m, body)))
        bodies.append(body)
    if ends:
        ends[-1] = len(text)  # the template's text after the last message is that message's
    return ends, bodies


def message_ranges(fe: FormattedExample, tokenizer: Any) -> list[MessageRange] | None:
    """Every message's character range in the rendering; None for the article's format."""
    if fe.kind != "chat" or not fe.messages or fe.chat_template is None:
        return None
    ends, bodies = _ends(fe, tokenizer)
    out = []
    start = 0
    for i, (m, end, body) in enumerate(zip(fe.messages, ends, bodies)):
        role = _base_role(m["role"])
        block = calls = None
        if role == "assistant":
            r = reasoning_of(m)
            block = think_block(fe.text, start, end, r.text if r else None)
            calls = _calls_range(fe.text, m, start, max(body, start), end)
        out.append(MessageRange(i, start, end, max(body, start), role, block, calls))
        start = end
    return out


def _span_role(ranges: Sequence[MessageRange], mid: float) -> tuple[int | None, str]:
    for r in ranges:
        if r.start <= mid < r.end:
            if r.reasoning and r.reasoning[0] <= mid < r.reasoning[1]:
                return r.index, "reasoning"
            if r.calls and r.calls[0] <= mid < r.calls[1]:
                return r.index, "tool_call"
            return r.index, r.role
    return None, ""


def token_places(
    fe: FormattedExample, offsets: Sequence[tuple[int, int]], tokenizer: Any
) -> tuple[list[int | None], list[str]] | None:
    """Per token: the index of its message and its role. None for the article's format."""
    ranges = message_ranges(fe, tokenizer)
    if ranges is None:
        return None
    msgs: list[int | None] = []
    roles: list[str] = []
    for a, b in offsets:
        i, role = _span_role(ranges, (a + b) / 2 if b > a else a)
        msgs.append(i)
        roles.append(role)
    return msgs, roles


def token_roles(fe: FormattedExample, offsets: Sequence[tuple[int, int]], tokenizer: Any) -> list[str] | None:
    """Each token's role (ROLES); None for the article's format (its two roles are what the labels show)."""
    places = token_places(fe, offsets, tokenizer)
    return places[1] if places else None


def message_of_tokens(
    fe: FormattedExample, offsets: Sequence[tuple[int, int]], tokenizer: Any
) -> list[int | None] | None:
    """Each token's message (0-based index), None for text outside any message."""
    places = token_places(fe, offsets, tokenizer)
    return places[0] if places else None
