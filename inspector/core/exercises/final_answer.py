"""Exercise 15: `final_answer_labels(example, tokenizer)`, the labels that train only the final
answer of a conversation with tool calls (the `final` turn policy), checked on conversations
rendered by two template families at check time (`tool_conversations`).

The function is called once per conversation with the rendered, tokenized conversation and,
besides the usual fields, `messages`, `message` (each token's message), `roles` (each token's
role: reasoning, tool_call, tool_result...) and `assistant_mask` (the template's generation
blocks: every assistant turn). Its labels are compared with the mask strategy's under the
`final` policy; a position that differs is named in words: its message, the message's role,
and the part of it (its reasoning, its tool call, the tool's result, the answer's
end-of-turn). It needs the tokenizer only: no model runs, TRL's trainer is not asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspector.core.data.chat_format import TurnMarkers
from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.exercises.check_report import CaseResult, Checked, CheckReport, Difference
from inspector.core.exercises.tool_conversations import ConversationCase, build_cases
from inspector.core.labels.process.code_errors import LabelCodeError
from inspector.core.labels.process.parent import LabelCall, LabelFunction
from inspector.core.labels.process.protocol import FunctionKind
from inspector.core.lessons.model import Lesson


def _calls_of(message: dict[str, Any]) -> list[str]:
    from inspector.core.data.row_formats import tool_calls_of

    return tool_calls_of(message)


def place(c: ConversationCase, position: int) -> str:
    """Where a token is, in words: `message 2, assistant: its call of get_weather`."""
    m = c.fields["message"][position]
    role = c.fields["roles"][position]
    if m is None:
        return "the template's text outside every message"
    msg = c.messages[m]
    head = f"message {m + 1}, {msg['role']}"
    if role == "tool_result":
        return f"{head}: the tool's result"
    if role == "tool_call":
        return f"{head}: its call of {', '.join(_calls_of(msg))}"
    if msg["role"] != "assistant" or role in ("user", "system"):
        return head
    which = "the final answer" if m == c.final else (
        "which calls a tool" if _calls_of(msg) else "an earlier answer")
    if role == "reasoning":
        return f"{head}, {which}: its reasoning"
    if m == c.final and position in c.closing:
        return f"{head}, the final answer: its end-of-turn"
    if not c.fields["assistant_mask"][position]:
        return f"{head}, {which}: the template's text before it"
    return f"{head}, {which}"


def _extra_hint(c: ConversationCase, p: int) -> str:
    """Why a position that is trained should not be."""
    m = c.fields["message"][p]
    role = c.fields["roles"][p]
    if role == "tool_result":
        return ("a tool's result is trained: the tool wrote it, not the model (inspect-data reports this as "
                "tool-result-trained); mask every tool message")
    if c.final is None:
        return ("every assistant message of this conversation calls a tool: there is no final answer yet, so "
                "nothing is trained (every label -100)")
    if m is None or c.messages[m]["role"] != "assistant":
        return f"message {m + 1 if m is not None else '?'} is not the assistant's: the final answer alone is trained"
    if role == "tool_call" or _calls_of(c.messages[m]):
        said = "" if role == "tool_call" else " (what it says before its call too)"
        return (f"message {m + 1} calls a tool{said}: the final answer is the last assistant message that calls "
                "no tool, whatever the others say")
    if m != c.final:
        return (f"message {m + 1} is an earlier answer: only the final one (message {c.final + 1}) is trained, "
                "the last assistant message that calls no tool")
    return ("the template's text around the answer (its header) is trained: keep only what its generation "
            "block holds (assistant_mask 1)")


def _missing_hint(c: ConversationCase, p: int) -> str:
    """Why a position of the final answer that is masked should be trained."""
    assert c.final is not None  # a position expected trained belongs to the final answer
    last = max(i for i, m in enumerate(c.messages) if m["role"] == "assistant")
    if last != c.final:
        return (f"the final answer is message {c.final + 1}: the last assistant message (message {last + 1}) calls "
                "a tool, so the final answer is the last one that calls none")
    if p in c.closing:
        return ("the final answer's end-of-turn is masked: the template's generation block holds it, and it is "
                "what teaches the model to stop")
    if c.fields["roles"][p] == "reasoning":
        return ("the final answer's reasoning is masked: the template's generation block holds it (an empty think "
                "block too), so the final policy trains it with the answer")
    return f"part of the final answer (message {c.final + 1}) is masked: its whole generation block is trained"


def final_hint(c: ConversationCase, differences: Sequence[Difference]) -> str:
    """The usual cause of the first difference."""
    if not differences:
        return ""
    d = differences[0]
    return _missing_hint(c, d.position) if d.got == IGNORE_INDEX else _extra_hint(c, d.position)


def _error_hint(c: ConversationCase, error: LabelCodeError) -> str:
    if c.final is None and error.kind == "exception":
        return ("this conversation has no final answer (every assistant message calls a tool): return -100 for "
                "every token")
    return ""


class FinalAnswers:
    """Exercise 15's kind: a conversation's labels under the `final` turn policy."""

    unit = "conversations"  # what one checked case is (plural)
    function_kind = FunctionKind.FINAL_ANSWER_LABELS  # how the label process calls it
    strategy = False  # checked on every save, not a label strategy of the views (its example dict has more)
    needs_model = False  # the tokenizer renders and tokenizes; the core gives the reference

    def build_cases(self, lesson: Lesson, model: Any, tokenizer: Any, template: TurnMarkers, *,
                    model_name: str, device: str) -> list[ConversationCase]:
        """Every conversation through both families, with the core's labels (built once per tokenizer)."""
        return build_cases(tokenizer)

    def check(
        self, exercise: Checked, number: int, lesson: Lesson, fn: LabelFunction, tokenizer: Any,
        template: TurnMarkers, *, model_name: str, model: Any = None, device: str = "cpu",
    ) -> CheckReport:
        """The user's function on every conversation, against the mask strategy's `final` labels."""
        cases = self.build_cases(lesson, model, tokenizer, template, model_name=model_name, device=device)
        calls = [LabelCall(c.input_ids, tokenizer, c.case.text, None, i + 1, c.fields) for i, c in enumerate(cases)]
        answers = fn.call_many(calls, stop_on_error=False)
        results = []
        for c, got in zip(cases, answers):
            if isinstance(got, LabelCodeError):
                results.append(CaseResult(c.case, False, error=got, hint=_error_hint(c, got)))
                continue
            diffs = tuple(
                Difference(p, c.tokens[p], e, g, where=f"position {p} ({place(c, p)})")
                for p, (e, g) in enumerate(zip(c.expected, got)) if e != g
            )
            results.append(CaseResult(c.case, not diffs, diffs, hint=final_hint(c, diffs)))
        return CheckReport(exercise, number, fn, tuple(results))
