"""Conversational rows (`messages`): through the model's chat template, or the article's format.

With a chat template (the tokenizer's own, or one given with --chat-template), the rendered
text is what the model trains on, and `mask` trains each assistant message's content plus
the special token that closes its turn (`<end_of_turn>`, `<|im_end|>`, `<|eot_id|>`,
`</s>`...), found by locating each message in the rendering. Without one, the messages are
written in the article's `### Human:` / `### Assistant:` format and formatted as usual.

Chat templates are Jinja; transformers renders them in a sandboxed environment, so a
template from a file cannot reach Python objects or the file system.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspector.core.data.chat_format import ARTICLE_TEMPLATE, ChatTemplate, FormattedExample, add_special_tokens, split_turns
from inspector.core.errors import InspectorError

ASSISTANT_ROLES = ("assistant", "model", "gpt", "bot")


def read_chat_template(path: str | Path) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise InspectorError(f"the chat template file {path} does not exist", "check the path given to --chat-template")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InspectorError(f"the chat template {path} is not readable UTF-8 text", "save it as a UTF-8 .jinja file") from exc
    if "{%" not in text and "{{" not in text:
        raise InspectorError(f"{path} does not look like a Jinja chat template", "give a .jinja file with {% ... %} tags")
    return text


_MARKERS = re.compile(r"{%-?\s*(end)?generation\s*-?%}")


def has_generation_markers(template: str | None) -> bool:
    """TRL's assistant_only_loss and transformers' assistant masks need `{% generation %}`
    and `{% endgeneration %}`."""
    found = {m.group(1) or "" for m in _MARKERS.finditer(template or "")}
    return found == {"", "end"}


def without_markers(template: str) -> str:
    """The same template with its `{% generation %}` / `{% endgeneration %}` tags removed."""
    return _MARKERS.sub("", template)


def to_article_text(messages: Sequence[dict[str, str]], template: ChatTemplate = ARTICLE_TEMPLATE) -> str:
    """The conversation in the article's format: system text first, then human/assistant turns."""
    out = ""
    for m in messages:
        role, content = m["role"], m["content"]
        if role in ASSISTANT_ROLES:
            out += f"{template.assistant} {content}"
        elif role == "system" and not out:
            out += f"System: {content}"
        else:
            out += f"{template.human} {content}"
    return out


def conversation(text: str, template: ChatTemplate = ARTICLE_TEMPLATE) -> list[dict[str, str]]:
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


def render_chat(
    messages: Sequence[dict[str, str]], tokenizer: Any, chat_template: str | None = None, *, where: str = "the row"
) -> FormattedExample:
    """The conversation through a chat template, with the character span of every answer."""
    template = chat_template or tokenizer.chat_template
    if not template:
        raise InspectorError(f"{where}: the tokenizer has no chat template", "pass one with --chat-template FILE")
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    try:
        text = tokenizer.apply_chat_template(msgs, tokenize=False, chat_template=template)
    except Exception as exc:  # jinja2 errors, sandbox refusals, template's own raise_exception
        raise InspectorError(
            f"{where}: the chat template failed to render ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
            "check the template, or the roles of the messages",
        ) from exc
    specials = _special_strings(tokenizer)
    spans: list[tuple[int, int]] = []
    pos = 0
    for i, m in enumerate(msgs):
        content = m["content"]
        idx, length = (text.find(content, pos), len(content)) if content else (-1, 0)
        if idx < 0 and content.strip():  # templates often trim the content
            idx, length = text.find(content.strip(), pos), len(content.strip())
        if m["role"] in ASSISTANT_ROLES:
            if idx < 0:
                raise InspectorError(
                    f"{where}: message {i + 1} (assistant) does not appear in the chat template's rendering",
                    "check that the template writes assistant messages as they are",
                )
            end = idx + length
            closer = next((sp for sp in specials if text.startswith(sp, end)), None)
            spans.append((idx, end + (len(closer) if closer else 0)))
        if idx >= 0:
            pos = idx + length
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
    )


def format_messages(
    messages: Sequence[dict[str, str]],
    tokenizer: Any,
    template: ChatTemplate = ARTICLE_TEMPLATE,
    chat_template: str | None = None,
    *,
    model_name: str = "in use",
    where: str = "the row",
) -> FormattedExample:
    if chat_template or getattr(tokenizer, "chat_template", None):
        return render_chat(messages, tokenizer, chat_template, where=where)
    return add_special_tokens(
        to_article_text(messages, template), tokenizer.bos_token, tokenizer.eos_token, template, model_name=model_name
    )
