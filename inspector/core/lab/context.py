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
    """The example a lesson looks at: its own text where it has one, else the first training example."""
    if lesson.example:
        tok = loaded.tokenizer
        return add_special_tokens(lesson.example, tok.bos_token, tok.eos_token, template, model_name=loaded.name)
    if not formatted:
        raise InspectorError("the training data could not be formatted", "fix --data, or start without it")
    return formatted[0]


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
