"""Lesson 9's payoff today: where TRL starts the completion of a prompt/completion row.

TRL 1.16 tokenizes the prompt and the prompt+completion apart and starts the completion where
the two first differ (`trl.data_utils.common_prefix_length`). Where tokens merge across the
boundary, the tokenized prompt is not a prefix of the whole: TRL warns, leaves the prompt's end
out and starts the completion earlier. The template pitfall, moved to the split point: here the
lesson's example split at several points, on the tokenizer in use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.data.tokens import visible
from inspector.core.labels.strategies import TokenRow
from inspector.core.lessons.pitfalls import token_rows

# The first words of the warning TRL 1.16 logs (sft_trainer.py) when the prompt is not a prefix.
TRL_WARNING = "The tokenized prompt is not a prefix of the tokenized prompt+completion"


@dataclass(frozen=True)
class SplitCheck:
    """One prompt/completion split of an example, tokenized as TRL tokenizes it."""

    name: str  # where the split is, in words
    prompt: str
    completion: str  # with the eos TRL appends
    prompt_rows: tuple[TokenRow, ...]  # the prompt tokenized alone
    rows: tuple[TokenRow, ...]  # prompt + completion tokenized whole
    start: int  # where TRL starts the completion: the length of the common prefix

    @property
    def is_prefix(self) -> bool:
        return self.start == len(self.prompt_rows)

    @property
    def left_out(self) -> tuple[TokenRow, ...]:
        """The prompt's end that is not in the whole (TRL's warning quotes it)."""
        return self.prompt_rows[self.start :]

    @property
    def trained(self) -> tuple[TokenRow, ...]:
        """The tokens whose completion_mask is 1: TRL's completion-only loss trains them."""
        return self.rows[self.start :]


@dataclass(frozen=True)
class SplitPoints:
    checks: tuple[SplitCheck, ...]
    trl_version: str | None  # None: TRL is not installed
    trl_function: bool  # TRL's own common_prefix_length computed the starts (else the same comparison here)

    @property
    def merging(self) -> tuple[SplitCheck, ...]:
        return tuple(c for c in self.checks if not c.is_prefix)


def _prefix_function() -> tuple[Callable[[Sequence[int], Sequence[int]], int], str | None, bool]:
    from importlib.metadata import PackageNotFoundError, version

    def same(ids: Sequence[int], other: Sequence[int]) -> int:
        n = 0
        for a, b in zip(ids, other):
            if a != b:
                break
            n += 1
        return n

    try:
        installed = version("trl")
    except PackageNotFoundError:
        return same, None, False
    try:
        from trl.data_utils import common_prefix_length
    except ImportError:
        return same, installed, False
    return common_prefix_length, installed, True


def split_candidates(fe: FormattedExample, eos: str) -> list[tuple[str, str, str]]:
    """(name, prompt, completion) splits of the example at its last assistant marker.

    The first is lesson 5's: the formatted text, cut after the bos that follows the marker (a
    special token ends the prompt). The others cut the text as written, with no special token
    between prompt and completion, where datasets often cut it; TRL appends the eos.
    """
    out = [("after the bos that follows the marker (lesson 5)", fe.text[: fe.prompt_end], fe.text[fe.prompt_end :])]
    source, marker = fe.source, fe.template.assistant
    k = source.rfind(marker)
    if k < 0:
        return out
    end = k + len(marker)
    cuts = [("after the marker", end)]
    if source[end : end + 1] == " ":
        cuts.append(("after the marker and its space", end + 1))
    cuts.append(("before the marker (it goes in the completion)", k))
    lead = len(marker) - len(marker.lstrip("\n"))
    if lead >= 2:
        cuts.append(("between the marker's newlines", k + 1))
    seen: set[int] = set()
    for name, cut in cuts:
        if 0 < cut < len(source) and cut not in seen:
            seen.add(cut)
            out.append((name, source[:cut], source[cut:] + eos))
    return out


def split_points(tokenizer: Any, fe: FormattedExample) -> SplitPoints:
    """The example's splits, each tokenized as TRL tokenizes a prompt/completion row that is not
    conversational (`processing_class(text=...)`, special tokens added as the tokenizer adds them)."""
    prefix, installed, own = _prefix_function()
    checks = []
    for name, prompt, completion in split_candidates(fe, tokenizer.eos_token):
        prompt_ids = list(tokenizer(text=prompt)["input_ids"])
        ids = list(tokenizer(text=prompt + completion)["input_ids"])
        checks.append(
            SplitCheck(
                name, prompt, completion, token_rows(tokenizer, prompt_ids), token_rows(tokenizer, ids), prefix(prompt_ids, ids)
            )
        )
    return SplitPoints(tuple(checks), installed, own)


def _tokens(rows: Sequence[TokenRow]) -> str:
    return " ".join(r.text for r in rows) or "nothing"


def split_text(v: SplitPoints) -> str:
    """Lesson 9's second part as text: each split, a prefix or not, and what TRL trains."""
    installed = f"TRL {v.trl_version} is installed" if v.trl_version else "TRL is not installed here"
    how = "TRL's own common_prefix_length" if v.trl_function else "the same comparison, done here"
    lines = [
        "Today TRL 1.16 tokenizes prompt and prompt+completion apart; the completion starts where they first differ.",
        f"({installed}; the starts computed by {how}.) The example split {len(v.checks)} ways:",
    ]
    for c in v.checks:
        lines.append(f"  {c.name}: …{visible(c.prompt[-13:])} | {visible(c.completion)}")
        if c.is_prefix:
            lines.append(f"    ✓ a prefix: the completion starts at token {c.start}; TRL trains {_tokens(c.trained)}")
        else:
            lines.append(
                f"    ✗ not a prefix: at token {c.start} the prompt alone has {_tokens(c.left_out)}, the whole"
                f" {c.rows[c.start].text}; TRL warns \"{TRL_WARNING}\", leaves {_tokens(c.left_out)} out and"
                f" trains {_tokens(c.trained)}"
            )
    merging = v.merging
    if merging:
        lines.append(
            f"{len(merging)} of {len(v.checks)} splits {'merges' if len(merging) == 1 else 'merge'} tokens across"
            " the boundary on this tokenizer: the model"
            " is trained on a context it never sees at inference. End the prompt on a token boundary (a special"
            " token, as lesson 5's split does)."
        )
    else:
        lines.append(f"Nothing merges across any of the {len(v.checks)} splits on this tokenizer: TRL would not warn.")
    return "\n".join(lines)
