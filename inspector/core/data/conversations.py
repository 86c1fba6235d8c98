"""Conversational rows (`messages`): through the model's chat template, or the article's format.

With a chat template (the tokenizer's own, or one given with --chat-template: a file, or the
name of one TRL ships), the rendered text is what the model trains on. A template with
`{% generation %}` markers says which characters the assistant writes, tool calls included:
`mask` trains those. Without markers, `mask` trains each assistant message's content plus the
special token that closes its turn (`<end_of_turn>`, `<|im_end|>`, `<|eot_id|>`, `</s>`...),
found by locating each message in the rendering, and a tool call (which has no content to
find) by prefix rendering. Without a template, the messages are written in the article's
`### Human:` / `### Assistant:` format, which has no place for tool calls or results: such a
row is refused (`ToolCallDropped`), as is one whose template leaves a call or result out.

Chat templates are Jinja; transformers renders them in a sandboxed environment, so a
template from a file cannot reach Python objects or the file system.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspector.core.data.chat_format import (
    ARTICLE_MARKERS,
    FormattedExample,
    TurnMarkers,
    add_special_tokens,
    split_turns,
)
from inspector.core.data.reasoning import ASSISTANT_ROLES, TOOL_ROLES, answer_of, reasoning_of
from inspector.core.errors import InspectorError, briefly


def read_chat_template(path: str | Path) -> str:
    """A chat template from a .jinja file, or by the name of one TRL ships (`trl_templates`)."""
    p = Path(path).expanduser()
    if not p.is_file():
        if p.exists() or "/" in str(path) or str(path).endswith(".jinja"):
            raise InspectorError(
                f"the chat template file {path} does not exist", "check the path given to --chat-template"
            )
        from inspector.core.data.trl_templates import resolve

        return resolve(str(path)).text
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InspectorError(
            f"the chat template {path} is not readable UTF-8 text", "save it as a UTF-8 .jinja file"
        ) from exc
    if "{%" not in text and "{{" not in text:
        raise InspectorError(
            f"{path} does not look like a Jinja chat template", "give a .jinja file with {% ... %} tags"
        )
    return text


_MARKERS = re.compile(r"{%-?\s*(end)?generation\s*-?%}")


def has_generation_markers(template: str | None) -> bool:
    """TRL's assistant_only_loss and transformers' assistant masks need `{% generation %}`
    (TRL's own check, `trl.chat_template_utils.has_generation_markers`)."""
    from inspector.core.data.trl_templates import has_generation_markers as trl_check

    return trl_check(template)


def without_markers(template: str) -> str:
    """The same template with its `{% generation %}` / `{% endgeneration %}` tags removed."""
    return _MARKERS.sub("", template)


class ToolCallDropped(InspectorError):
    """A tool call or tool result that the format in use cannot show: refused, never rendered as something else."""

    kind = "tool-call-dropped"


def tool_turns(messages: Sequence[dict[str, Any]]) -> list[str]:
    """What each tool call or tool result of a conversation is, e.g. `message 2 (assistant) calls get_weather`."""
    from inspector.core.data.row_formats import tool_calls_of

    out = []
    for i, m in enumerate(messages, start=1):
        names = tool_calls_of(m)
        if names:
            out.append(f"message {i} ({m['role']}) calls {', '.join(names)}")
        elif m["role"] in TOOL_ROLES:
            out.append(f"message {i} is a tool result ({m['role']})")
    return out


class EmptyAnswer(InspectorError):
    """An assistant message with nothing in it: the model would learn to say nothing."""

    kind = "empty-answer"


def to_article_text(
    messages: Sequence[dict[str, str]], template: TurnMarkers = ARTICLE_MARKERS, *, reasoning: bool = True
) -> str:
    """The conversation in the article's format: system text first, then human/assistant turns.

    A tool call, a tool's result and reasoning are written as such (`[calls get_weather]`,
    `[tool result]`, `[thinks: …]`): the article's format has no place for them. A row with a
    call or a result is only ever trained through a chat template; this text is what the app
    shows of the row. Trained in this format (no template), a row leaves its reasoning out
    (`reasoning=False`).
    """
    from inspector.core.data.row_formats import tool_calls_of

    out = ""
    for m in messages:
        role, content = m["role"], m["content"]
        if role in ASSISTANT_ROLES:
            calls = tool_calls_of(m)
            inline = m.get("content", "") != answer_of(m)
            thought = reasoning_of(m) if reasoning and not inline else None  # shown, never trained in this format
            said = " ".join(x for x in (content.strip(), f"[calls {', '.join(calls)}]" if calls else "") if x)
            said = said if calls else content
            out += f"{template.assistant} {f'[thinks: {thought.text.strip()}] ' if thought else ''}{said}"
        elif role == "system" and not out:
            out += f"System: {content}"
        elif role in TOOL_ROLES:
            out += f"{template.human} [tool result] {content}"
        else:
            out += f"{template.human} {content}"
    return out


def conversation(text: str, template: TurnMarkers = ARTICLE_MARKERS) -> list[dict[str, str]]:
    """A `### Human:` / `### Assistant:` text as chat messages (user / assistant): the
    inverse of `to_article_text`."""
    roles = {"human": "user", "assistant": "assistant"}
    messages = [
        {"role": roles[t.role], "content": t.content.strip()} for t in split_turns(text, template) if t.role in roles
    ]
    if not any(m["role"] == "assistant" for m in messages):
        raise InspectorError("the text has no assistant turn", "write it as '### Human: ...### Assistant: ...'")
    return messages


def _special_strings(tokenizer: Any) -> list[str]:
    """Every special token's text, longest first (a closing token is matched greedily)."""
    from inspector.core.data.tokens import special_token_ids

    found = {str(tokenizer.convert_ids_to_tokens(i)) for i in special_token_ids(tokenizer)}
    return sorted((s for s in found if s), key=len, reverse=True)


def render(
    tokenizer: Any,
    messages: Sequence[dict[str, Any]],
    template: str,
    tools: Sequence[Any] | None = None,
    *,
    add_generation_prompt: bool = False,
    markers: bool = False,
) -> tuple[str, list[tuple[int, int]]]:
    """The conversation's text through `template`, and (with `markers`) the character spans
    its `{% generation %}` blocks wrote, as transformers finds them for `assistant_masks`."""
    from transformers.utils.chat_template_utils import render_jinja_template

    # What tokenizer.apply_chat_template(tokenize=False) does, without its per-call overhead
    # (the mask audit renders every conversation several times).
    texts, indices = render_jinja_template(
        conversations=[[dict(m) for m in messages]],
        tools=list(tools) if tools else None,
        chat_template=template,
        return_assistant_tokens_mask=markers,
        add_generation_prompt=add_generation_prompt,
        **tokenizer.special_tokens_map,
    )
    return texts[0], [(int(a), int(b)) for a, b in (indices[0] if markers and indices else [])]


def prefix_spans(
    messages: Sequence[dict[str, Any]],
    tokenizer: Any,
    template: str,
    tools: Sequence[Any] | None = None,
    full: str | None = None,
) -> list[tuple[int, int] | None]:
    """Each assistant message's span found by prefix rendering: what rendering the messages
    through it adds to the rendering of those before it with `add_generation_prompt=True`.
    None where the template does not render the earlier messages the same way (it is not
    prefix-preserving there) or cannot render the shorter conversation. `full` is the whole
    conversation's rendering, when known."""
    if full is None:
        try:
            full, _ = render(tokenizer, messages, template, tools)
        except Exception:  # noqa: BLE001 -- the rendering errors are reported by render_chat
            return [None for m in messages if m["role"] in ASSISTANT_ROLES]
    out: list[tuple[int, int] | None] = []
    for i, m in enumerate(messages):
        if m["role"] not in ASSISTANT_ROLES:
            continue
        try:
            before, _ = render(tokenizer, messages[:i], template, tools, add_generation_prompt=True)
            upto = full if i == len(messages) - 1 else render(tokenizer, messages[: i + 1], template, tools)[0]
        except Exception:  # noqa: BLE001 -- a template may refuse a conversation cut short (roles must alternate...)
            out.append(None)
            continue
        out.append((len(before), len(upto)) if full.startswith(upto) and upto.startswith(before) else None)
    return out


def _check_tools_rendered(msgs: Sequence[dict[str, Any]], text: str, where: str) -> None:
    """Every tool call's name and every tool result must be in the rendering: a template that
    leaves them out would train the conversation without them, silently."""
    from inspector.core.data.row_formats import tool_calls_of

    for i, m in enumerate(msgs, start=1):
        missing = [n for n in tool_calls_of(m) if n not in text]
        if missing:
            raise ToolCallDropped(
                f"{where}: the chat template drops the tool call {', '.join(missing)} of message {i} ({m['role']})",
                "use a template that renders tool calls (qwen2_5, qwen3, llama3_2...: `causallm-inspect templates`)",
            )
        if m["role"] in TOOL_ROLES and m["content"].strip() and m["content"].strip() not in text:
            raise ToolCallDropped(
                f"{where}: the chat template drops the tool result of message {i} ({m['role']})",
                "use a template that renders tool results (qwen2_5, qwen3, llama3_2...: `causallm-inspect templates`)",
            )


def render_chat(
    messages: Sequence[dict[str, Any]],
    tokenizer: Any,
    chat_template: str | None = None,
    *,
    tools: Sequence[Any] | None = None,
    where: str = "the row",
) -> FormattedExample:
    """The conversation through a chat template, with the character span of every answer.

    A template with `{% generation %}` markers says itself what the assistant writes (tool
    calls included): those spans are trained. Without markers each answer is found in the
    rendering (its content and the special token that closes it), and a tool call, which
    has no content to find, by prefix rendering.
    """
    template = chat_template or tokenizer.chat_template
    if not template:
        raise InspectorError(
            f"{where}: the tokenizer has no chat template", "pass one with --chat-template FILE or NAME"
        )
    msgs = [dict(m) for m in messages]
    marked = has_generation_markers(template)
    try:
        text, generated = render(tokenizer, msgs, template, tools, markers=marked)
    except Exception as exc:  # jinja2 errors, sandbox refusals, template's own raise_exception
        said = briefly(exc, 160)
        turns = tool_turns(msgs)
        if turns:  # a template with no place for tool turns often refuses their roles
            raise ToolCallDropped(
                f"{where}: the chat template cannot render the conversation's tool turns ({turns[0]}; it says {said})",
                "use a template that renders tools (qwen2_5, qwen3, llama3_2...: `causallm-inspect templates`)",
            ) from exc
        raise InspectorError(
            f"{where}: the chat template failed to render ({said})",
            "check the template, or the roles of the messages",
            kind="bad-row",
        ) from exc
    _check_tools_rendered(msgs, text, where)
    if marked:
        spans = list(generated)  # an empty answer's block is empty: it trains nothing
        if not any(b > a for a, b in spans):
            if any(m["role"] in ASSISTANT_ROLES and not m["content"].strip() and not m.get("tool_calls") for m in msgs):
                raise EmptyAnswer(
                    f"{where}: the assistant's answer is empty: nothing is trained", "write the answer, or drop the row"
                )
            raise InspectorError(
                f"{where}: no assistant message appears inside the chat template's {{% generation %}} markers",
                "check that the template marks what the assistant writes",
            )
    else:
        spans = _found_spans(msgs, text, tokenizer, template, tools, where)
    return FormattedExample(
        source=json.dumps(msgs, ensure_ascii=False),
        text=text,
        answer_spans=tuple(spans),
        prompt_end=spans[-1][0] if spans else len(text),
        bos=tokenizer.bos_token or "",
        eos=tokenizer.eos_token or "",
        kind="chat",
        messages=tuple(msgs),
        chat_template=template,
        tools=tuple(tools) if tools else None,
    )


def _found_spans(
    msgs: list[dict[str, Any]], text: str, tokenizer: Any, template: str, tools: Sequence[Any] | None, where: str
) -> list[tuple[int, int]]:
    """Each answer's content located in the rendering (with its think block, where the template
    renders the reasoning), through the special token that closes it."""
    from inspector.core.data.reasoning import answer_of, reasoning_of, think_block

    specials = _special_strings(tokenizer)
    spans: list[tuple[int, int]] = []
    by_prefix: list[tuple[int, int] | None] | None = None
    pos = 0
    answer = -1
    for i, m in enumerate(msgs):
        if m["role"] in ASSISTANT_ROLES:
            answer += 1
            if m.get("tool_calls") or not m["content"].strip():
                by_prefix = by_prefix if by_prefix is not None else prefix_spans(msgs, tokenizer, template, tools, text)
                span = by_prefix[answer]
                if span is None and m.get("tool_calls"):
                    raise ToolCallDropped(
                        f"{where}: message {i + 1} (assistant) calls a tool, and the chat template (without "
                        "{% generation %} markers, and not prefix-preserving here) does not say which tokens are the call",
                        "use a template with generation markers (the _training variants: `causallm-inspect templates`)",
                    )
                if span is None:
                    raise EmptyAnswer(
                        f"{where}: message {i + 1} (assistant) is empty, and the chat template (without "
                        "{% generation %} markers, and not prefix-preserving here) does not say which tokens close it",
                        "write the answer, or drop the row",
                    )
                spans.append(span)
                pos = span[1]
                continue
        content = m["content"]
        block = None
        if m["role"] in ASSISTANT_ROLES and (reasoning := reasoning_of(m)):
            block = think_block(text, pos, len(text), reasoning.text)  # the answer comes after its reasoning
            pos = block[1] if block else pos
        idx, length = (text.find(content, pos), len(content)) if content else (-1, 0)
        if idx < 0 and content.strip():  # templates often trim the content
            idx, length = text.find(content.strip(), pos), len(content.strip())
        if idx < 0 and m["role"] in ASSISTANT_ROLES and answer_of(m).strip():  # a template that drops inline <think>
            idx, length = text.find(answer_of(m).strip(), pos), len(answer_of(m).strip())
        if m["role"] in ASSISTANT_ROLES:
            if idx < 0:
                raise InspectorError(
                    f"{where}: message {i + 1} (assistant) does not appear in the chat template's rendering",
                    "check that the template writes assistant messages as they are",
                )
            end = idx + length
            closer = next((sp for sp in specials if text.startswith(sp, end)), None)
            spans.append((block[0] if block else idx, end + (len(closer) if closer else 0)))
        if idx >= 0:
            pos = idx + length
    return spans


def format_messages(
    messages: Sequence[dict[str, Any]],
    tokenizer: Any,
    template: TurnMarkers = ARTICLE_MARKERS,
    chat_template: str | None = None,
    *,
    tools: Sequence[Any] | None = None,
    model_name: str = "in use",
    where: str = "the row",
) -> FormattedExample:
    from inspector.core.data.reasoning import check_messages

    check_messages(messages, where)
    if chat_template or getattr(tokenizer, "chat_template", None):
        return render_chat(messages, tokenizer, chat_template, tools=tools, where=where)
    turns = tool_turns(messages)
    if turns:
        more = f" (and {len(turns) - 1} more tool turn{'s' if len(turns) > 2 else ''})" if len(turns) > 1 else ""
        raise ToolCallDropped(
            f"{where}: {turns[0]}{more}, which the article's ### Human:/### Assistant: format has no place for",
            "pass --chat-template with a template that renders tools (qwen2_5, qwen3, llama3_2...: "
            "`causallm-inspect templates` lists them)",
        )
    return add_special_tokens(
        to_article_text(messages, template, reasoning=False), tokenizer.bos_token, tokenizer.eos_token, template, model_name=model_name
    )
