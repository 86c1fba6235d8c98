"""The conversations exercise 15 (`final_answer_labels`) is checked on, and each one built as a
case: rendered by a chat template TRL ships with `{% generation %}` markers, tokenized by the
tokenizer in use, with the fields the user's function gets and the labels it should return.

The reference is the core's, never written here: the mask strategy's labels under the `final`
turn policy (`labels.turn_policy.apply_policy`: the last assistant message that calls no
tool, its generation block whole). The function's `assistant_mask` is the mask strategy's
under `all` (every generation block), its `message` and `roles` the core's per-token places
(`data.roles.token_places`).

Every conversation is rendered through two families: `qwen3` (TRL's `qwen3_training`, what
`--chat-template qwen3` uses: a turn closes with `<|im_end|>` and its line break) and
`glm4moe` (`glm4moe_training`: a turn closes with the next role's token, `<|observation|>`
before tool results, `<|user|>` otherwise). Built once per tokenizer (the app checks on every
save), as long as the tokenizer lives.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.exercises.check_report import Case

FAMILIES = ("qwen3", "glm4moe")  # TRL's names: `resolve` picks each one's _training variant


def _tool(name: str, what: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": what, "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


TOOLS = (_tool("get_weather", "The weather in a city now"), _tool("get_time", "The local time in a city"))


def _call(name: str, city: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": {"city": city}}}


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _says(text: str, reasoning: str = "") -> dict[str, Any]:
    m: dict[str, Any] = {"role": "assistant", "content": text}
    return {**m, "reasoning_content": reasoning} if reasoning else m


def _calls(*calls: dict[str, Any], text: str = "", reasoning: str = "") -> dict[str, Any]:
    return {**_says(text, reasoning), "tool_calls": list(calls)}


def _result(text: str) -> dict[str, Any]:
    return {"role": "tool", "content": text}


@dataclass(frozen=True)
class Conversation:
    name: str
    messages: tuple[dict[str, Any], ...]
    hidden: bool = True
    tools: bool = True  # the tool definitions go to the template


CONVERSATIONS: tuple[Conversation, ...] = (
    Conversation("example: a tool call, then the answer", (
        _user("What is the weather in Paris?"), _calls(_call("get_weather", "Paris")), _result("18 C, sunny"),
        _says("It is 18 C and sunny in Paris."),
    ), hidden=False),
    Conversation("hidden: two tool calls, one after the other", (
        _user("Is it warmer in Paris or in Rome?"), _calls(_call("get_weather", "Paris")), _result("18 C"),
        _calls(_call("get_weather", "Rome")), _result("24 C"), _says("Rome is warmer: 24 C against 18 C."),
    )),
    Conversation("hidden: a tool call with reasoning", (
        _user("What time is it in Tokyo?"),
        _calls(_call("get_time", "Tokyo"), reasoning="The user wants the local time: ask the clock."),
        _result("21:40"), _says("It is 21:40 in Tokyo.", reasoning="The tool says 21:40."),
    )),
    Conversation("hidden: an answer with no tools", (_user("Say hello in Spanish."), _says("Hola.")), tools=False),
    Conversation("hidden: parallel tool calls", (
        _user("The weather in Paris and in Rome?"), _calls(_call("get_weather", "Paris"), _call("get_weather", "Rome")),
        _result("18 C"), _result("24 C"), _says("Paris has 18 C, Rome 24 C."),
    )),
    Conversation("hidden: text before the tool call", (
        _user("Is it raining in Berlin?"), _calls(_call("get_weather", "Berlin"), text="Let me look that up."),
        _result("12 C, rain"), _says("Yes: 12 C and rain in Berlin."),
    )),
    Conversation("hidden: the last assistant message calls a tool", (
        _user("Say hello in Spanish."), _says("Hola."), _user("And the weather in Madrid?"),
        _calls(_call("get_weather", "Madrid")), _result("30 C"),
    )),
    Conversation("hidden: every assistant message calls a tool (no final answer)", (
        _user("The weather in Oslo?"), _calls(_call("get_weather", "Oslo")), _result("5 C"),
    )),
)


@dataclass(frozen=True)
class ConversationCase:
    """One conversation through one template: what the user's function is called with, what it
    should return, and where each token is."""

    case: Case
    template: str  # the file TRL ships it as, e.g. "qwen3_training"
    fields: dict[str, Any]  # the example dict's fields besides input_ids, text and labels
    input_ids: list[int]
    expected: list[int]
    tokens: list[str] = field(repr=False)  # each token's visible text
    offsets: list[tuple[int, int]] = field(repr=False)
    final: int | None  # the final answer's message (0-based), None where every assistant message calls a tool
    closing: tuple[int, ...]  # the final answer's trained positions after its content: its end-of-turn

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.fields["messages"]


def build_case(conversation: Conversation, family: str, tokenizer: Any) -> ConversationCase:
    """The conversation through `family`'s training template, tokenized, with the core's labels."""
    from inspector.core.data.conversations import render_chat
    from inspector.core.data.reasoning import answer_of
    from inspector.core.data.roles import token_places
    from inspector.core.data.trl_templates import resolve
    from inspector.core.labels.strategies import encode, make_rows, mask_labels
    from inspector.core.labels.turn_policy import apply_policy, trained_messages

    named = resolve(family)
    msgs = [dict(m) for m in conversation.messages]
    fe = render_chat(msgs, tokenizer, named.text, tools=list(TOOLS) if conversation.tools else None,
                     where=f"exercise 15's conversation '{conversation.name}'")
    ids, offsets = encode(fe, tokenizer)
    every = mask_labels(ids, offsets, fe)  # the `all` policy: every generation block
    (row,) = apply_policy(fe, "final", tokenizer)
    expected = mask_labels(ids, offsets, row.fe)
    places = token_places(fe, offsets, tokenizer)
    if places is None:  # a chat rendering always has them
        raise AssertionError(f"no token places for {conversation.name} through {named.used}")
    message, roles = places
    final = next(iter(trained_messages(msgs, "final")), None)
    closing: tuple[int, ...] = ()
    if final is not None:
        answer = answer_of(msgs[final]).strip()
        trained = [p for p, x in enumerate(expected) if x != IGNORE_INDEX]
        end = fe.text.rfind(answer, 0, offsets[trained[-1]][1]) + len(answer) if trained and answer else -1
        closing = tuple(p for p in trained if end >= 0 and offsets[p][0] >= end)
    fields = {
        "messages": msgs,
        "message": message,
        "roles": roles,
        "assistant_mask": [int(x != IGNORE_INDEX) for x in every],
    }
    case = Case(f"{conversation.name} ({named.used})", fe.text, hidden=conversation.hidden)
    return ConversationCase(case, named.used, fields, ids, expected, [r.text for r in make_rows(tokenizer, ids, ids)],
                            offsets, final, closing)


# tokenizer -> the cases of every conversation through every family; gone with the tokenizer.
_built: weakref.WeakKeyDictionary[Any, list[ConversationCase]] = weakref.WeakKeyDictionary()


def build_cases(tokenizer: Any, conversations: Sequence[Conversation] = CONVERSATIONS) -> list[ConversationCase]:
    """Every conversation through every family (the example first, then the hidden ones), built
    once per tokenizer."""
    if conversations is CONVERSATIONS:
        try:
            if tokenizer in _built:
                return _built[tokenizer]
        except TypeError:  # an object without weak references: built again next time
            pass
    cases = [build_case(c, family, tokenizer) for c in conversations for family in FAMILIES]
    if conversations is CONVERSATIONS:
        try:
            _built[tokenizer] = cases
        except TypeError:
            pass
    return cases
