"""The labels view's turn policy field and its turns mode (`i`): training beside inference, turn by turn.

`PolicyBar` is the turn policy (all, last, final, split), beside the strategy: which assistant
turns the labels train and the bursts train; with split, which of the example's rows is on show
(`[` / `]`). `TurnsPanel` shows, for each assistant turn of the labelled row, the tokens it trains,
the context the training render puts before them and the prompt the model gets at inference
before that turn (`Lab.turns`, in a worker), with the tokens one has and the other lacks marked
`«≠ … »` and counted in words, never by colour alone, and the one-line verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Label, Select, Static

from inspector.core.errors import in_words
from inspector.core.labels.turn_policy import POLICY_HELP, TURN_POLICIES
from inspector.widgets.paging import Picker

if TYPE_CHECKING:
    from inspector.core.lab import Lab
    from inspector.core.lab.policy import TurnsShown
    from inspector.core.labels.turn_context import Turn

POLICY_NAMES = {"all": "all turns", "last": "last turn", "final": "final answer", "split": "split by turn"}
KEEP = 6  # tokens kept on each side of a long run that both contexts share
DIFFERS = "bold reverse"


class PolicyBar(Horizontal):
    """The turn policy, and with split the row of the example on show."""

    DEFAULT_CSS = """
    PolicyBar { height: 1; margin-top: 1; }
    PolicyBar #policy-label { padding: 0 1 0 0; }
    PolicyBar #turn-policy { width: 20; }
    PolicyBar #policy-part { width: 1fr; padding: 0 0 0 2; color: $text-muted; }
    """

    HELP = """\
## Turn policy

Which assistant turns of a conversation are trained, here and in the bursts (F3):

- **all turns**: every assistant turn (what TRL's `assistant_only_loss` does);
- **last turn**: only the last assistant message;
- **final answer**: only the last assistant message that calls no tool;
- **split by turn**: one row per assistant turn, each rendered as inference renders it
  (the inference template) with only its own turn trained, so every trained turn's
  context is the one the model answers in. `[` / `]` show the example's other rows.

Under mask and your own function a message whose own flag says "do not train"
(`"weight": 0`, `"train": false`, `"loss": false`) is masked too; TRL ignores such flags.
Changing the policy resets the strategies trained so far (they trained other rows).
`i` shows each turn's context beside the inference prompt.
"""

    class Wanted(Message):
        """The user picked a policy (the main screen applies it, or refuses while a burst runs)."""

        def __init__(self, policy: str) -> None:
            self.policy = policy
            super().__init__()

    class Applied(Message):
        """The lab trains `policy` now (its rows are made), or it could not (`error`)."""

        def __init__(self, policy: str, error: str | None = None) -> None:
            self.policy = policy
            self.error = error
            super().__init__()

    def __init__(self, lab: Lab, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lab = lab
        self.policy = lab.turn_policy.policy

    def compose(self) -> ComposeResult:
        yield Label("turns", id="policy-label")
        yield Picker([(POLICY_NAMES[p], p) for p in TURN_POLICIES], value=self.policy, allow_blank=False,
                     compact=True, id="turn-policy")
        yield Static("", id="policy-part")

    def set_policy(self, policy: str) -> None:
        """Show `policy` (applied, or put back after a refusal) without asking for it again."""
        self.policy = policy
        picker = self.query_one("#turn-policy", Select)
        if picker.value != policy:
            with picker.prevent(Select.Changed):
                picker.value = policy
        picker.tooltip = POLICY_HELP[policy]
        self.query_one("#policy-part", Static).update("")

    def show_part(self, part: int, parts: int) -> None:
        self.query_one("#policy-part", Static).update(f"row {part + 1} of {parts} of this example ([ ])"
                                                      if parts > 1 else "")

    def apply(self, policy: str) -> None:
        """Make the rows of `policy` (rendering each split turn: off the UI thread); the main screen hears."""
        self.query_one("#policy-part", Static).update("making the rows…")
        self._make_rows(policy)

    @work(thread=True, exclusive=True, group="turn-policy", exit_on_error=False)
    def _make_rows(self, policy: str) -> None:
        try:
            self.lab.set_turn_policy(policy)
        except Exception as exc:  # noqa: BLE001 -- an InspectorError, or a template's own: said in one line
            self.post_message(self.Applied(policy, in_words(exc)))
            return
        self.post_message(self.Applied(policy))

    @on(Select.Changed, "#turn-policy")
    def _picked(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str) and event.value != self.policy:
            self.post_message(self.Wanted(event.value))


class TurnsPanel(VerticalScroll, can_focus=True):
    """Each assistant turn: trained tokens, their training context, the inference prompt (see the module)."""

    DEFAULT_CSS = """
    TurnsPanel { height: 1fr; min-height: 12; border: round $panel-lighten-1; padding: 0 1; scrollbar-size-vertical: 1; }
    TurnsPanel:focus { border: round $accent; }
    TurnsPanel #turns-text { width: 1fr; text-wrap: wrap; text-overflow: fold; }
    """

    HELP = """\
## Turns: training beside inference

For each assistant turn of the example, under the strategy on show:

- **trained**: the tokens of the turn whose labels train;
- **training context**: what the training render puts before the turn's first trained token
  (what the model reads while it learns that turn);
- **inference prompt**: what the model gets before that turn when it answers:
  `apply_chat_template(messages[:k], add_generation_prompt=True)` with the inference template
  (the model's own; for a `_training` variant TRL ships, the original it was made from; or
  `--inference-template`).

Tokens that one of the two has and the other lacks are marked `«≠ … »` and counted; where
the other side has tokens this one lacks, `«≠ N tokens only in training»` (or `at inference`)
says so at the place they would be. A long stretch both share is shortened to `…N same…`. The verdict: `✓` same context, `✗` what differs
(earlier reasoning present in one only, a prefilled `<think>`, a dropped tool call), `–` the
turn trains nothing. `i` goes back to the grid; `↑`/`↓` scroll.
"""

    class Computed(Message):
        def __init__(self, key: Any, labeled: Any, shown: TurnsShown | None, error: str | None = None) -> None:
            self.key = key
            self.labeled = labeled
            self.shown = shown
            self.error = error
            super().__init__()

    def __init__(self, lab: Lab, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lab = lab
        self.key: Any = None  # what is asked or on show: (text, policy, part, strategy)
        self.labeled: Any = None  # the labels asked for or on show
        self.shown: TurnsShown | None = None
        self._cache: dict[Any, tuple[Any, TurnsShown]] = {}  # key -> (the labels, their turns)

    def compose(self) -> ComposeResult:
        yield Static("", id="turns-text")

    def clear(self, message: str) -> None:
        self.key, self.labeled, self.shown = None, None, None
        self.query_one("#turns-text", Static).update(Text(message, style="italic"))

    def forget(self) -> None:
        """The labels changed (a new policy, a new label function): compute the turns again."""
        self._cache.clear()
        self.key = self.labeled = None

    def follow(self, key: Any, labeled: Any, strategy: str) -> None:
        """Show the turns of `labeled` (the labels of the strategy on show), computed once per key."""
        if key == self.key and labeled is self.labeled:
            return  # asked already, or on show
        self.key, self.labeled = key, labeled
        hit = self._cache.get(key)
        if hit is not None and hit[0] is labeled:
            self._draw(hit[1], strategy)
            return
        self.query_one("#turns-text", Static).update(Text("comparing each turn with the inference prompt…",
                                                          style="italic"))
        self._compute(key, labeled)

    @work(thread=True, exclusive=True, group="turns", exit_on_error=False)
    def _compute(self, key: Any, labeled: Any) -> None:
        from inspector.core.errors import InspectorError

        try:
            self.post_message(self.Computed(key, labeled, self.lab.turns(labeled)))
        except InspectorError as exc:
            self.post_message(self.Computed(key, labeled, None, str(exc)))

    def on_turns_panel_computed(self, message: Computed) -> None:
        message.stop()
        if message.shown is not None:
            self._cache[message.key] = (message.labeled, message.shown)
        if message.key != self.key or message.labeled is not self.labeled:
            return  # other labels are on show now (another example, strategy or policy)
        if message.shown is None:
            self.clear(f"the turns could not be compared: {message.error}")
            return
        self._draw(message.shown, message.key[-1])

    def _draw(self, shown: TurnsShown, strategy: str) -> None:
        self.shown = shown
        self.query_one("#turns-text", Static).update(turns_text(shown, strategy, self.lab.name_of(strategy),
                                                                self.lab.turn_policy.policy))


# --- the text -----------------------------------------------------------------------------------


def verdict_line(turn: Turn) -> Text:
    """'✓ same context as at inference', '✗ differs: …' or '– not trained: …' (a mark and words)."""
    if turn.context_matches_inference is True:
        return Text.assemble(("  ✓ ", "bold"), (turn.verdict, "bold"))
    if turn.context_matches_inference is False:
        return Text.assemble(("  ✗ differs", "bold"), f": {turn.verdict}")
    return Text(f"  – {turn.verdict}", style="dim")


def tokens_text(tokens: list[str], differing: set[int], gaps: dict[int, int] | None = None, *,
                shorten: bool = True, other: str = "") -> Text:
    """The tokens in a row, the differing runs marked «≠ … », where the other side has tokens this one
    lacks «≠ N only `other`»; a long run both share shortened (never across a mark)."""
    gaps = gaps or {}
    out = Text("    ")
    i = 0
    while i <= len(tokens):
        if i in gaps:
            out.append(f"«≠ {_count(gaps[i], 'token')} only {other}»", style="bold")
        if i == len(tokens):
            break
        j = i + 1
        if i in differing:
            while j < len(tokens) and j in differing and j not in gaps:
                j += 1
            out.append("«≠", style="bold")
            out.append("".join(tokens[i:j]), style=DIFFERS)
            out.append("»", style="bold")
        else:
            while j < len(tokens) and j not in differing and j not in gaps:
                j += 1
            run = tokens[i:j]
            if shorten and len(run) > 2 * KEEP + 3:
                out.append("".join(run[:KEEP]))
                out.append(f" …{len(run) - 2 * KEEP} same… ", style="dim italic")
                out.append("".join(run[-KEEP:]))
            else:
                out.append("".join(run))
        i = j
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def turn_text(turn: Turn, shown: TurnsShown) -> Text:
    """One turn: its header, verdict, trained tokens, training context and inference prompt."""
    extra = [f"{turn.reasoning_trained} of {turn.reasoning_tokens} reasoning"] if turn.reasoning_tokens else []
    extra += [f"{turn.tool_call_trained} of {turn.tool_call_tokens} tool call"] if turn.tool_call_tokens else []
    flag = f" · its own flag {turn.flag}" if turn.flag else ""
    head = f"turn {turn.number} · message {turn.message} · {_count(turn.trained, 'token')} trained"
    lines = [Text(head + (f" ({', '.join(extra)})" if extra else "") + flag, style="bold underline"), verdict_line(turn)]
    if turn.first_trained is not None:
        trained = [shown.tokens[p] for p in range(turn.start, turn.end) if shown.trained[p]]
        lines += [Text(f"  trained · {_count(len(trained), 'token')}"), tokens_text(trained, set(), shorten=False)]
        context = shown.tokens[: turn.first_trained]
        only = set(turn.training_only)
        in_context, in_prompt = shown.gaps.get(turn.number, ({}, {}))
        lines += [Text(f"  training context · {_count(len(context), 'token')} · «≠» {len(only)} not at inference"),
                  tokens_text(context, only, in_context, other="at inference")]
        prompt = shown.inference.get(turn.number)
        if prompt is not None and turn.context_matches_inference is not None:
            lines += [Text(f"  inference prompt · {_count(len(prompt), 'token')} · «≠» "
                           f"{len(turn.inference_only)} not in training"),
                      tokens_text(prompt, set(turn.inference_only), in_prompt, other="in training")]
    return Text("\n").join(lines)


def turns_text(shown: TurnsShown, strategy: str, name: str, policy: str) -> Text:
    """The whole panel: what is compared, then each turn."""
    if not shown.turns:
        return Text(shown.note or "this example has no assistant turn", style="italic")
    differ = sum(t.context_matches_inference is False for t in shown.turns)
    head = Text.assemble(
        ("Training beside inference", "bold"),
        f" · {name} · policy {policy} · inference: {shown.template}\n",
        (f"✗ {differ} of {len(shown.turns)} turns trained in another context than at inference"
         if differ else f"✓ every trained turn in the context of inference ({len(shown.turns)} turns)"),
        " · «≠» marks what one side lacks",
    )
    return Text("\n\n").join([head, *(turn_text(t, shown) for t in shown.turns)])


class TurnsMode:
    """The labels view's rows under the turn policy and its turns mode (mixed into `LabelsView`,
    whose state and methods it uses: `lab`, `text`, `strategy`, `roles`, `part`, `parts`,
    `turns_mode`; `request_labels`, `refresh_view`, `focus_main`, `label_function_changed`)."""

    lab: Lab
    text: str
    strategy: str
    roles: list[str] | None
    part: int
    parts: int
    turns_mode: bool
    ACTIONS: frozenset[str]
    query_one: Any
    screen: Any
    request_labels: Any
    refresh_view: Any
    focus_main: Any
    label_function_changed: Any

    @property
    def key(self) -> tuple[str, str, int]:
        """The labels on show: the text, the turn policy, which of the rows it makes of the text."""
        return self.text, self.lab.turn_policy.policy, self.part

    def rows_known(self, parts: int) -> None:
        """The labels on show came with how many rows the policy makes of the text: the keys that
        work now (`i` for a conversation or to leave the turns mode, `[ ]` for a split one)."""
        self.parts = parts
        self.query_one(PolicyBar).show_part(self.part, parts)
        keys = {"turns"} if self.roles is not None or self.turns_mode else set()
        self.ACTIONS = type(self).ACTIONS | keys | ({"part"} if parts > 1 else set())
        self.screen.refresh_bindings()

    def move(self, delta: int) -> None:
        """`[` / `]` under the split policy: the example's other rows."""
        part = max(0, min(self.parts - 1, self.part + delta))
        if part != self.part:
            self.part = part
            self.request_labels()

    def toggle_turns(self) -> None:
        """`i`: the turns mode (each assistant turn beside its inference prompt), or back to the grid."""
        self.turns_mode = not self.turns_mode
        self.refresh_view()
        self.focus_main()

    def turn_policy_changed(self) -> None:
        """The lab trains another turn policy: the labels under it, from the example's first row."""
        bar = self.query_one(PolicyBar)
        bar.set_policy(self.lab.turn_policy.policy)
        bar.display = True
        self.query_one(TurnsPanel).forget()
        self.part = 0
        self.label_function_changed()

    def show_turns(self, labeled: Any, *instead: Any) -> None:
        """In the turns mode the panel shows in place of `instead` (the grid, its legend, the details)."""
        panel = self.query_one(TurnsPanel)
        for widget in instead:
            widget.display = not self.turns_mode
        panel.display = self.turns_mode
        if self.turns_mode and labeled is None:
            panel.clear(getattr(instead[0], "message", "") or "no labels to compare")
        elif self.turns_mode:
            panel.follow((*self.key, self.strategy), labeled, self.strategy)
