"""F1 help: each widget explains itself in Markdown (its `HELP` text); this finds the text
for the widget in focus and adds the keys that work everywhere."""

from __future__ import annotations

from textual.dom import DOMNode

GENERAL = """\
## Keys everywhere

| key | does |
| --- | --- |
| `n` / `p`, `Ctrl+→` / `Ctrl+←` | next / previous lesson |
| `F2` / `F3` / `F4` / `F5` / `F6` | labels / training / predictions / learning / batch view |
| `s` | the code behind the lesson's view, runnable on its own |
| `g` | run the lesson's demo, where it trains copies of the model |
| `e` | with `--data`: the list of problem rows of your data |
| `i` | labels view, a conversation: the turns mode, each assistant turn's trained tokens and training context beside the inference prompt |
| `[` / `]` | labels view, turn policy *split by turn*: the example's other rows |
| `l` | the lesson pane on the left: wide → narrow → hidden (below 120 columns it starts narrow) |
| `Tab` / `Shift+Tab` | move the focus |
| `F1` or `?` | this help, for the part in focus |
| `F7` | the glossary: every term the lessons define, this lesson's first; type to filter |
| `Ctrl+P` | command palette: jump to a lesson, train, switch strategy… |
| `Ctrl+Q` | quit |

The footer at the bottom always lists the keys of the current view.
"""

APP = """\
## causallm-inspect

See which tokens a causal language model is trained on when you fine-tune it on chat
data, and what it learns. The lessons on the left follow the article *CausalLM Part 2:
Finetuning a Model*: labels copied from the input, the human part masked to -100, and
TRL's completion-only loss, trained side by side on the same five examples.
"""


def help_for(node: DOMNode | None, view: DOMNode | None = None, tokens: dict[str, str] | None = None) -> str:
    """The Markdown help of `node` (or its nearest ancestor that has one), of the view on
    show when it is another, and the keys that work everywhere.

    `{bos}` and `{eos}` in a help text name the model's own tokens (`tokens`), or say
    "the model's bos" while no model is loaded."""
    texts: list[str] = []
    for start in (node, view):
        while start is not None:
            text = getattr(type(start), "HELP", None)
            if isinstance(text, str):
                if text not in texts:
                    texts.append(text)
                break
            start = start.parent
    if not texts:
        texts.append(APP)
    text = "\n\n".join([*texts, GENERAL])
    for name in ("bos", "eos"):
        token = (tokens or {}).get(name)
        text = text.replace(f"`{{{name}}}`", f"`{token}`" if token else f"the model's {name}")
    return text
