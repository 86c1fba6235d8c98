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

METHODS = {"a": "the mask's spans", "b": "prefix rendering", "c": "the prompt/completion split"}


@dataclass(frozen=True)
class Disagreement:
    positions: tuple[int, ...]  # token positions where the methods differ
    detail: str


def token_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Per token: does it lie inside one of the character spans (as `mask_labels` decides)?"""
    return [e > s and any(a <= s and e <= b for a, b in spans) for s, e in offsets]


def audit(fe: FormattedExample, tokenizer: Any, ids: Sequence[int], offsets: Sequence[tuple[int, int]]) -> Disagreement | None:
    """Where (a), (b) and (c) differ on a conversation rendered by a chat template, or None."""
    from inspector.core.data.conversations import prefix_spans

    if fe.kind != "chat" or not fe.messages or not fe.chat_template:
        return None
    prefix = prefix_spans(fe.messages, tokenizer, fe.chat_template, fe.tools, fe.text)
    text = fe.text
    notes: list[str] = []
    positions: set[int] = set()
    if any(span is None for span in prefix):
        n = next(i for i, span in enumerate(prefix, start=1) if span is None)
        notes.append(
            f"prefix rendering cannot find assistant message {n}: the template renders the messages before it "
            "differently once it follows (not prefix-preserving), so TRL's prompt/completion split sees another text"
        )
        return Disagreement((), "; ".join(notes))
    compared = [i for i, (s, e) in enumerate(offsets) if e > s and text[s:e].strip()]
    a = token_mask(offsets, fe.answer_spans)
    b = token_mask(offsets, [span for span in prefix if span is not None])
    last_start = prefix[-1][0] if prefix and prefix[-1] else len(text)
    c = token_mask(offsets, [(last_start, len(text))])

    def differ(x: list[bool], y: list[bool], names: str, only_from: int = 0) -> None:
        where = [i for i in compared if offsets[i][0] >= only_from and x[i] != y[i]]
        if not where:
            return
        positions.update(where)
        shown = ", ".join(f"{i} {_token(tokenizer, ids[i])} ({'first' if x[i] else 'second'} only)" for i in where[:4])
        more = f", … {len(where) - 4} more" if len(where) > 4 else ""
        notes.append(f"{names} differ at {shown}{more}")

    differ(a, b, "the mask's spans and prefix rendering")
    differ(b, c, "prefix rendering and the prompt/completion split", last_start)
    if not notes:
        return None
    return Disagreement(tuple(sorted(positions)), "; ".join(notes))


def _token(tokenizer: Any, tid: int) -> str:
    return repr(str(tokenizer.convert_ids_to_tokens(int(tid))))
