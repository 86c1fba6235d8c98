"""Chat examples in the article's `### Human:` / `### Assistant:` format.

The article's `add_special_tokens` puts the model's `eos` before every human turn and its
`bos` after every assistant marker, appends a final `eos` and strips a leading `eos`. Here
the formatted text is built turn by turn so that the character span of every answer (from
just after the inserted `bos` through the closing `eos`) is known exactly: the `mask`
strategy trains the tokens inside those spans and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from inspector.core.errors import InspectorError

HUMAN_MARKER = "\n\n### Human:"
ASSISTANT_MARKER = "\n\n### Assistant:"

# The article's five training pairs and its held-out word.
ARTICLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("dog", "perro"),
    ("water", "agua"),
    ("hello", "hola"),
    ("tree", "árbol"),
    ("mother", "madre"),
)
HOLDOUT_WORD = "good"
HOLDOUT_ANSWER = "bueno"


@dataclass(frozen=True)
class TurnMarkers:
    """The two markers that open a human and an assistant turn in the article's plain-text format
    (`--human-marker`, `--assistant-marker`); a Jinja chat template (`--chat-template`) is another
    thing, read in `data.conversations`."""

    human: str = HUMAN_MARKER
    assistant: str = ASSISTANT_MARKER

    def __post_init__(self) -> None:
        if not self.human or not self.assistant:
            raise InspectorError(
                "a chat template marker is empty",
                "give both the human and the assistant marker, e.g. '### Human:' and '### Assistant:'",
            )
        if self.human == self.assistant or self.human in self.assistant or self.assistant in self.human:
            raise InspectorError(
                f"the chat markers {self.human!r} and {self.assistant!r} overlap",
                "choose two markers where neither contains the other",
            )


ARTICLE_MARKERS = TurnMarkers()


def article_question(word: str) -> str:
    """The human message of the article's task for one English word."""
    return f'How do you say "{word}" in Spanish?'


def article_text(word: str, answer: str | None = None, template: TurnMarkers = ARTICLE_MARKERS) -> str:
    """`'\\n\\n### Human: How do you say "dog" in Spanish?\\n\\n### Assistant: perro'`.

    Without an answer it is the prompt the model completes.
    """
    text = f"{template.human} {article_question(word)}{template.assistant}"
    return text if answer is None else f"{text} {answer}"


ARTICLE_EXAMPLES: tuple[str, ...] = tuple(article_text(w, a) for w, a in ARTICLE_PAIRS)


@dataclass(frozen=True)
class Turn:
    role: str  # "preamble", "human" or "assistant"
    content: str


def split_turns(text: str, template: TurnMarkers = ARTICLE_MARKERS) -> list[Turn]:
    """Split a text into its turns; text before the first marker is a preamble."""
    pattern = "(" + "|".join(re.escape(m) for m in (template.human, template.assistant)) + ")"
    parts = re.split(pattern, text)
    turns: list[Turn] = []
    if parts[0]:
        turns.append(Turn("preamble", parts[0]))
    for marker, content in zip(parts[1::2], parts[2::2]):
        turns.append(Turn("human" if marker == template.human else "assistant", content))
    return turns


@dataclass(frozen=True)
class FormattedExample:
    """A chat text after the article's `add_special_tokens`.

    `answer_spans` are character ranges of `text` that the `mask` strategy trains: each
    assistant answer from just after its `bos` through its closing `eos`. `prompt_end` is
    the end of the last `bos`: everything before it is the prompt TRL's completion-only
    loss masks, everything after it the completion.
    """

    source: str
    text: str
    answer_spans: tuple[tuple[int, int], ...]
    prompt_end: int
    bos: str
    eos: str
    template: TurnMarkers = field(default=ARTICLE_MARKERS)
    # "article": built by add_special_tokens; "chat": rendered by a tokenizer's chat template,
    # which writes its own special tokens (so the tokenizer must not add any).
    kind: str = "article"
    messages: tuple[dict[str, Any], ...] | None = None
    chat_template: str | None = None
    tools: tuple[Any, ...] | None = None  # the row's tool definitions, given to the chat template
    # Set by a turn policy (labels.turn_policy): which of a split row's rows this is, and for TRL the
    # message where the completion starts (the row goes to TRL as conversational prompt/completion).
    part: tuple[int, int] | None = None
    completion_from: int | None = None

    @property
    def add_special(self) -> bool:
        return self.kind == "article"

    @property
    def prompt(self) -> str:
        return self.text[: self.prompt_end]

    @property
    def completion(self) -> str:
        return self.text[self.prompt_end :]


def _require_token(name: str, value: str | None, model_name: str) -> str:
    if not value:
        raise InspectorError(
            f"the model {model_name} has no {name} token, which the article's chat format needs",
            f"choose a model whose tokenizer defines {name}_token, or set one with --{name}-token",
        )
    return value


def add_special_tokens(
    text: str,
    bos: str | None,
    eos: str | None,
    template: TurnMarkers = ARTICLE_MARKERS,
    *,
    final_eos: bool = True,
    model_name: str = "in use",
) -> FormattedExample:
    """The article's `add_special_tokens`, keeping track of where each answer lies.

    `final_eos=False` gives a generation prompt: the text ends right after the last `bos`,
    where the model is to write its answer.
    """
    bos = _require_token("bos", bos, model_name)
    eos = _require_token("eos", eos, model_name)
    turns = split_turns(text, template)
    if not any(t.role == "assistant" for t in turns):
        raise InspectorError(
            f"the text has no assistant turn (no {template.assistant.strip()!r}): {_short(text)}",
            f"write each example as {template.human + ' question' + template.assistant + ' answer'!r}",
        )
    out = ""
    spans: list[tuple[int, int]] = []
    prompt_end = 0
    answer_start: int | None = None  # start of the answer still open, if any

    def close_answer() -> None:
        nonlocal answer_start
        if answer_start is not None:
            spans.append((answer_start, len(out)))
            answer_start = None

    for turn in turns:
        if turn.role == "preamble":
            out += turn.content
        elif turn.role == "human":
            if out:  # the article strips a leading eos
                out += eos  # closes the answer before it, and is trained with it
                close_answer()
            out += template.human + turn.content
        else:
            close_answer()
            out += template.assistant + bos
            prompt_end = answer_start = len(out)
            out += turn.content
    if final_eos:
        out += eos  # trained if it closes an answer, masked if it closes a human turn
    close_answer()
    return FormattedExample(
        source=text,
        text=out,
        answer_spans=tuple(spans),
        prompt_end=prompt_end,
        bos=bos,
        eos=eos,
        template=template,
    )


def holdout_text(holdout: str, template: TurnMarkers = ARTICLE_MARKERS) -> str:
    """The held-out prompt, before formatting.

    A single word is asked the article's question ("good" -> 'How do you say "good" in
    Spanish?'); a text containing the assistant marker is used as it is; any other text is
    the human's message.
    """
    if not holdout.strip():
        raise InspectorError("the held-out prompt is empty", "pass a word or a question with --holdout")
    if template.assistant in holdout:
        return holdout
    if len(holdout.split()) == 1:
        return article_text(holdout.strip(), None, template)
    return f"{template.human} {holdout.strip()}{template.assistant}"


def _short(text: str, n: int = 60) -> str:
    text = text.replace("\n", "\\n")
    return repr(text if len(text) <= n else text[: n - 1] + "…")
