"""Parts of the labels view: the picker's labels, the strategy buttons, the example editor, and the
counts and legend under the grid."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from textual.markup import escape
from textual.widgets import RadioSet, TextArea

from inspector.core.data.chat_format import split_turns
from inspector.core.labels.strategies import differing_positions
from inspector.widgets.token_grid import ROLE_LEGEND

if TYPE_CHECKING:
    from inspector.core.data.chat_format import TurnMarkers

LEGEND = "✓ trained   · masked: label -100, struck and grey   – position 0, never predicted"


def example_label(index: int | str, text: str, template: TurnMarkers) -> str:
    """'1 · How do you say "dog" in… → perro' for the picker."""
    turns = split_turns(text, template)
    human = next((t.content.strip() for t in turns if t.role == "human"), text.strip())
    answers = [t.content.strip() for t in turns if t.role == "assistant"]
    human = human if len(human) <= 34 else human[:33] + "…"
    answer = " / ".join(answers) or "(no answer)"
    answer = answer if len(answer) <= 24 else answer[:23] + "…"
    return f"{index} · {human} → {answer}"


class StrategyBar(RadioSet):
    """The label strategies; keys 1, 2, 3 (and 4 for your own function) pick one from anywhere in the view."""

    HELP = """\
## Label strategy

- **copy** (`1`): labels are a copy of input_ids; every token is trained.
- **mask** (`2`): the article's `create_special_mask`: everything up to and including the
  `bos` after `### Assistant:` becomes -100; each answer and its closing `eos` are trained.
- **trl** (`3`): what TRL's `SFTTrainer` trains with `completion_only_loss=True`: only the
  completion after the last `bos`.
- **your function** (`4`, with `--labels-from FILE[:FUNCTION]`): the labels your own code
  returns, the columns where they differ from mask marked `≠`; saving the file updates them.
"""


class ExampleEditor(TextArea):
    """The example's chat text, editable; the grid follows as you type."""

    HELP = """\
## Example text

The example in the article's chat format: `### Human:` turns and `### Assistant:` turns,
each marker on a new line after a blank line. Edit it freely: after a short pause it is
formatted the article's way (an `eos` before each human turn, a `bos` after each
assistant marker, a final `eos`), tokenized and labelled again. Add a second exchange to
see how `mask` and `trl` differ on multi-turn text. Problems show in red below.

`Tab` leaves the editor; the strategy keys work again once it is left.
"""


def count_text(strategies: Iterable[str], strategy: str, labelings: Mapping[str, Any], pending: Collection[str],
               name_of: Callable[[str], str]) -> str:
    """'trained tokens  copy 22/22 [mask 2/22] trl …': each strategy's trained tokens, the one on show reversed."""
    parts = []
    for s in strategies:
        lab = labelings.get(s)
        value = "…" if s in pending else "?" if lab is None else str(lab.trained_tokens)
        total = f"/{len(lab.rows)}" if lab is not None else ""
        name = escape(name_of(s))
        parts.append(f"[b reverse] {name} {value}{total} [/]" if s == strategy else f" {name} {value}{total} ")
    return "trained tokens  " + " ".join(parts)


def waiting_text(strategy: str, custom_failed: bool, pending: Collection[str], trainer_busy: bool, error: str | None,
                 ready: bool) -> str | None:
    """What the grid says while the strategy on show has no labels (None: leave it as it is)."""
    if strategy == "custom" and custom_failed:
        return "your function failed on this example: see above"
    if strategy in pending:
        if strategy != "trl":
            return "asking the tokenizer for the labels…"
        if trainer_busy:  # TRL's trainer waits for the burst's (one trainer at a time)
            return "asking TRL for the labels, after the running burst (one trainer at a time)…"
        return "asking TRL for the labels…"
    if error:
        return "nothing to show: see the problem above"
    return "" if ready else None


def legend_text(strategy: str, labelings: Mapping[str, Any], roles: list[str] | None = None) -> str:
    """The legend, how many columns mask and trl disagree on where both are known, and with a
    conversation's roles, what the role row's words mean and how much of the reasoning is trained."""
    text = LEGEND
    if strategy in ("mask", "trl") and "mask" in labelings and "trl" in labelings:
        n = len(differing_positions(labelings["mask"], labelings["trl"]))
        text += f"   ≠ {n} column{'s' if n > 1 else ''} differ between mask and trl" if n else "   mask and trl agree on every column"
    lab = labelings.get(strategy)
    if roles is not None and lab is not None and len(roles) == len(lab.rows):
        text += f"\n{ROLE_LEGEND}"
        thinking = [r for r, role in zip(lab.rows, roles) if role == "reasoning"]
        if thinking:
            trained = sum(not r.masked and r.position > 0 for r in thinking)
            text += f"\nthink: {trained} of {len(thinking)} reasoning tokens trained ({len(thinking) - trained} masked)"
    return text
