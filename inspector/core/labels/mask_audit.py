"""The mask audit: a conversation's assistant tokens found three ways, and where they differ.

(a) what the `mask` strategy trains: the spans the template's `{% generation %}` markers
    write (or, without markers, each answer's content located in the rendering and the
    special token that closes it);
(b) prefix rendering: render the conversation up to each assistant message with
    `add_generation_prompt=True`; that message's tokens are what rendering it adds;
(c) TRL's prompt/completion split: everything after the prompt (the conversation up to the
    last assistant message, with the generation prompt) is the completion, trained.

(c) says nothing about the turns before the last, so it is compared only from where its
completion starts. Tokens that are only whitespace are left out of the comparison (a
newline after the end-of-turn token is trained by one method and not another on almost
every template, and is harmless). Masks that agree only by accident are a known source of
silent fine-tuning bugs: markers that leave the stop token out, or run on to the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.data.chat_format import FormattedExample


@dataclass(frozen=True)
class Disagreement:
    positions: tuple[int, ...]  # token positions where the methods differ
    detail: str


def token_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Per token: does it lie inside one of the character spans (as `mask_labels` decides)?"""
    return [e > s and any(a <= s and e <= b for a, b in spans) for s, e in offsets]


def audit(
    fe: FormattedExample, tokenizer: Any, ids: Sequence[int], offsets: Sequence[tuple[int, int]]
) -> Disagreement | None:
    """Where (a), (b) and (c) differ on a conversation rendered by a chat template, or None."""
    from inspector.core.data.conversations import prefix_spans

    if fe.kind != "chat" or not fe.messages or not fe.chat_template:
        return None
    prefix = prefix_spans(fe.messages, tokenizer, fe.chat_template, fe.tools, fe.text)
    text = fe.text
    notes: list[str] = []
    positions: set[int] = set()
    if any(span is None for span in prefix):
        n = next(i for i, span in enumerate(prefix) if span is None)
        return Disagreement(
            (), f"prefix rendering cannot place assistant message {_nth(fe.messages, n)}: {_why(fe, tokenizer, n)}"
        )
    compared = [i for i, (s, e) in enumerate(offsets) if e > s and text[s:e].strip()]
    a = token_mask(offsets, fe.answer_spans)
    b = token_mask(offsets, [span for span in prefix if span is not None])
    last_start = prefix[-1][0] if prefix and prefix[-1] else len(text)
    c = token_mask(offsets, [(last_start, len(text))])

    a_name = "the markers" if _marked(fe.chat_template) else "the located answers"

    def differ(x: list[bool], y: list[bool], x_name: str, y_name: str, only_from: int = 0) -> None:
        where = [i for i in compared if offsets[i][0] >= only_from and x[i] != y[i]]
        if not where:
            return
        positions.update(where)
        shown = ", ".join(f"{i} {_token(tokenizer, ids[i])} ({x_name if x[i] else y_name} only)" for i in where[:4])
        more = f", … {len(where) - 4} more" if len(where) > 4 else ""
        notes.append(f"{x_name} and {y_name} train different tokens: {shown}{more}")

    differ(a, b, a_name, "prefix rendering")
    differ(b, c, "prefix rendering", "the prompt/completion split", last_start)
    if not notes:
        return None
    return Disagreement(tuple(sorted(positions)), "; ".join(notes))


def _marked(template: str | None) -> bool:
    from inspector.core.data.conversations import has_generation_markers

    return has_generation_markers(template)


def _nth(messages: Sequence[dict[str, Any]], n: int) -> int:
    """The message number (from 1) of the n-th assistant message (from 0)."""
    from inspector.core.data.conversations import ASSISTANT_ROLES

    return [i for i, m in enumerate(messages, start=1) if m["role"] in ASSISTANT_ROLES][n]


def _why(fe: FormattedExample, tokenizer: Any, n: int) -> str:
    """Why prefix rendering has no span for the n-th assistant message."""
    from inspector.core.data.conversations import render

    assert fe.messages is not None and fe.chat_template is not None
    i = _nth(fe.messages, n) - 1
    try:
        before, _ = render(tokenizer, fe.messages[:i], fe.chat_template, fe.tools, add_generation_prompt=True)
        upto, _ = render(tokenizer, fe.messages[: i + 1], fe.chat_template, fe.tools)
        base, _ = render(tokenizer, fe.messages[:i], fe.chat_template, fe.tools)
    except Exception as exc:  # noqa: BLE001 -- the template's own refusal is the answer
        return f"the template cannot render the conversation cut before it ({type(exc).__name__}: {str(exc)[:80]})"
    if upto.startswith(base) and not upto.startswith(before):
        return (
            "the generation prompt (add_generation_prompt=True) is not how the template begins that message, so TRL's "
            "prompt/completion split tokenizes another text than training sees"
        )
    return "the template renders earlier messages differently once later ones follow (it is not prefix-preserving)"


def _token(tokenizer: Any, tid: int) -> str:
    return repr(str(tokenizer.convert_ids_to_tokens(int(tid))))
