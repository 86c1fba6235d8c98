"""A lesson's context, defined once: its example, its epochs, the held-out text, its demo's context.

The app, `causallm-inspect lesson N`, `export` and `prepare` all build a lesson's context
with these functions, so that a run prepared for a lesson and the app showing it agree by
construction (a prepared demo replays only when its context is the one the app builds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import (
    HOLDOUT_ANSWER,
    HOLDOUT_WORD,
    FormattedExample,
    TurnMarkers,
    add_special_tokens,
    article_text,
)
from inspector.core.errors import InspectorError
from inspector.core.training.burst import DEFAULT_EPOCHS, DEFAULT_SEED

if TYPE_CHECKING:
    from inspector.core.data.examples import Example
    from inspector.core.lessons.demos import DemoContext
    from inspector.core.lessons.model import Lesson
    from inspector.core.models import LoadedModel


def lesson_epochs(lesson: Lesson) -> int:
    """The epochs of a lesson's bursts and demos: the lesson's own number, else the default."""
    return lesson.epochs or DEFAULT_EPOCHS


def predicted_text(template: TurnMarkers) -> str:
    """The text whose teacher-forced predictions the lessons show: the held-out example with its answer."""
    return article_text(HOLDOUT_WORD, HOLDOUT_ANSWER, template)


def predicted_example(loaded: LoadedModel, template: TurnMarkers) -> FormattedExample:
    """`predicted_text` with the model's special tokens, as training formats it."""
    tok = loaded.tokenizer
    return add_special_tokens(predicted_text(template), tok.bos_token, tok.eos_token, template, model_name=loaded.name)


def lesson_example(
    lesson: Lesson, loaded: LoadedModel, template: TurnMarkers, formatted: Sequence[FormattedExample]
) -> FormattedExample:
    """The example a lesson looks at: its own conversation or text where it has one, else the
    first training example."""
    chat = lesson_chat_example(lesson)
    if chat is not None:
        from inspector.core.data.examples import format_examples

        (fe,) = format_examples([chat], loaded.tokenizer, template, loaded.name)
        return fe
    if lesson.example:
        tok = loaded.tokenizer
        return add_special_tokens(lesson.example, tok.bos_token, tok.eos_token, template, model_name=loaded.name)
    if not formatted:
        raise InspectorError("the training data could not be formatted", "fix --data, or start without it")
    return formatted[0]


def lesson_chat_example(lesson: Lesson) -> Example | None:
    """A lesson's conversation (`messages:`) as a data row, rendered by its `chat_template:` (a
    template TRL ships: its training variant, as --chat-template NAME takes it) or the model's own."""
    if not lesson.messages:
        return None
    from inspector.core.data.conversations import read_chat_template, to_article_text
    from inspector.core.data.examples import Example

    template = read_chat_template(lesson.chat_template) if lesson.chat_template else None
    return Example(
        to_article_text(list(lesson.messages)),
        1,
        f"lesson {lesson.id}",
        messages=lesson.messages,
        chat_template=template,
        kind="messages",
        unit="conversation",
    )


def lesson_text(lesson: Lesson, lab: Any) -> str | None:
    """The text the labels view shows for a lesson: its conversation's (given to the lab, which
    formats it through its chat template when shown), else its own text, else None."""
    chat = lesson_chat_example(lesson)
    if chat is not None:
        lab.add_example(chat)
        return chat.text
    return lesson.example


def demo_context(
    lesson: Lesson,
    loaded: LoadedModel,
    template: TurnMarkers,
    formatted: Sequence[FormattedExample],
    *,
    model: Any = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    seed: int = DEFAULT_SEED,
    progress: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_epoch: Callable[[str, Any], None] | None = None,
    again: str = "close other programs and run it again",
) -> DemoContext:
    """The context a lesson's demo runs in; `model` defaults to the loaded (untrained) one.

    `epochs` defaults to the lesson's (`lesson_epochs`); the app passes the burst settings
    on show, which start at the same number.
    """
    from inspector.core.lessons.demos import DemoContext

    extra: dict[str, Any] = {}
    if progress is not None:
        extra["progress"] = progress
    if should_stop is not None:
        extra["should_stop"] = should_stop
    if on_epoch is not None:
        extra["on_epoch"] = on_epoch
    return DemoContext(
        loaded.model if model is None else model,
        loaded.tokenizer,
        list(formatted),
        lesson_example(lesson, loaded, template, formatted),
        device=loaded.device,
        template=template,
        max_length=loaded.max_length,
        strategy=lesson.strategy,
        epochs=lesson_epochs(lesson) if epochs is None else epochs,
        learning_rate=learning_rate,
        seed=seed,
        again=again,
        **extra,
    )
