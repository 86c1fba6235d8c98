"""What the Lab's parts (its bursts, its prediction cache, its demos) read of the Lab that owns
them: the model in use, the examples the bursts train on, the turn markers and the label
function. A read-only view, written as a Protocol so that the parts depend on what they read
and import no Lab (the Lab is the one object that has these); each part changes only what it
owns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from inspector.core.data.chat_format import FormattedExample, TurnMarkers
    from inspector.core.data.examples import Example
    from inspector.core.labels.process.parent import LabelFunction
    from inspector.core.models import LoadedModel


class Workbench(Protocol):
    """The Lab as its parts see it (see the module's docstring)."""

    template: TurnMarkers
    formatted: list[FormattedExample]  # the examples the bursts train on
    train_examples: list[Example]  # the same, as read
    in_place: bool  # a command's one burst trains the loaded model itself

    @property
    def model(self) -> LoadedModel: ...  # the model in use (an error until it is loaded)

    @property
    def custom(self) -> LabelFunction | None: ...  # the user's label function, where one is in use

    @property
    def strategies(self) -> tuple[str, ...]: ...

    def name_of(self, strategy: str) -> str: ...

    def predicted_text(self) -> str: ...

    def formatted_for(self, text: str) -> FormattedExample: ...
