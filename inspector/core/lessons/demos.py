"""The lessons' computed demos: a name in a lesson's front matter (`demo: template-pitfall`)
picks one; the app's demo panel and `lesson N --plain` run the same function and show the
same text.

Quick demos (the tokenizer, one forward pass) run as soon as their lesson opens; those that
train (`step-timing`, `eos-padding`) run when asked. A demo that trains may have a
quick part (`DemoSpec.quick`: lesson 4's weight of each scored label), shown when its lesson
opens and at the head of the whole demo's text. Those that train or build
HF trainers (`chat-template`, `packing`, `truncation` and `weights` too) are stored by `causallm-inspect
prepare`, and a prepared talk replays them (`DemoSpec.prepared`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inspector.core.lessons import demo_report as report
from inspector.core.data.chat_format import ARTICLE_MARKERS, TurnMarkers, FormattedExample, add_special_tokens

# The two-exchange text the padding and chat-template demos use beside the lesson's example.
TWO_TURNS = (
    '\n\n### Human: How do you say "dog" in Spanish?\n\n### Assistant: perro'
    '\n\n### Human: And "water"?\n\n### Assistant: agua'
)


@dataclass
class DemoContext:
    model: Any
    tokenizer: Any
    examples: list[FormattedExample]  # the training examples, formatted
    example: FormattedExample  # the lesson's example, or the first training example
    device: str = "cpu"
    template: TurnMarkers = ARTICLE_MARKERS
    max_length: int | None = None  # the model's: where the runs' examples are cut, as the bursts' are
    strategy: str = "copy"
    epochs: int = 3
    learning_rate: float | None = None
    seed: int = 1
    progress: Callable[[str], None] = field(default=lambda msg: None)
    should_stop: Callable[[], bool] = field(default=lambda: False)
    on_epoch: Callable[[str, Any], None] = field(default=lambda variant, log: None)
    # How the reader measures again, for a timing that cannot conclude (never the command that runs).
    again: str = "close other programs and run it again"

    def training_options(self) -> dict[str, Any]:
        """What a demo that trains copies passes on: the device, the turn markers and `max_length`
        its sessions are made with (`training.start.start_session`), the burst settings, the callbacks."""
        return dict(device=self.device, template=self.template, max_length=self.max_length, epochs=self.epochs, learning_rate=self.learning_rate, seed=self.seed,
                    on_epoch=self.on_epoch, should_stop=self.should_stop)

    def formatted(self, text: str) -> FormattedExample:
        return add_special_tokens(text, self.tokenizer.bos_token, self.tokenizer.eos_token, self.template)


@dataclass(frozen=True)
class DemoResult:
    name: str
    title: str
    text: str
    data: Any = None


@dataclass(frozen=True)
class DemoSpec:
    title: str
    on_demand: bool  # trains: runs when asked, not when the lesson opens
    run: Callable[[DemoContext], tuple[str, Any]]
    covers_view: bool = False  # headless: the demo's runs replace the view's own burst
    makes_trainer: bool = False  # builds HF trainers (made one at a time: see `Lab.one_trainer`)
    # A demo that trains: its quick part (the tokenizer, a forward pass), computed when the lesson
    # opens; the whole demo's text begins with it.
    quick: Callable[[DemoContext], tuple[str, Any]] | None = None

    @property
    def prepared(self) -> bool:
        """`causallm-inspect prepare` stores it, and a prepared talk replays it: it trains, or
        builds HF trainers (seconds to half a minute on a CPU even when it trains nothing)."""
        return self.on_demand or self.makes_trainer


def _shift(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.lessons.anatomy import shift_view
    from inspector.core.labels.strategies import label_example

    strategy = ctx.strategy if ctx.strategy in ("copy", "mask") else "mask"
    v = shift_view(ctx.model, label_example(strategy, ctx.example, ctx.tokenizer))
    return report.shift_text(v, strategy), v


def _tokenize(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.lessons.anatomy import padding_view, tokenize_view
    from inspector.core.labels.strategies import label_example

    v = tokenize_view(ctx.tokenizer, ctx.example)
    short = label_example("copy", ctx.example, ctx.tokenizer)
    long = label_example("copy", ctx.formatted(TWO_TURNS), ctx.tokenizer)
    pad = padding_view(ctx.model, ctx.tokenizer, short, long) if len(long.rows) > len(short.rows) else None
    return report.tokenize_text(v, pad), (v, pad)


def _old_collator(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.lessons.pitfalls import old_collator_view

    v = old_collator_view(ctx.tokenizer, ctx.example)
    return report.old_collator_text(v), v


def _template_pitfall(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.lessons.pitfalls import template_pitfall
    from inspector.core.lessons.split_point import split_points, split_text

    examples = [ctx.example, *(e for e in ctx.examples if e.text != ctx.example.text)]
    v = template_pitfall(ctx.tokenizer, examples, ctx.template)
    splits = split_points(ctx.tokenizer, ctx.example)
    return report.pitfall_text(v) + "\n\n" + split_text(splits), (v, splits)


def _special_tokens(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.lessons.pitfalls import special_tokens_view

    ctx.progress("resizing a copy of the model's embedding")
    v = special_tokens_view(ctx.tokenizer, ctx.example, ctx.template, model=ctx.model, seed=ctx.seed)
    return report.special_tokens_text(v), v


def _chat_template(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.lessons.chat_templates import (
        chat_template_view,
        conversation,
        generation_template,
        trl_assistant_only,
        without_markers,
    )

    messages = conversation(ctx.example.source, ctx.template)
    v = chat_template_view(ctx.tokenizer, messages)
    ctx.progress("asking TRL's SFTTrainer, with and without the markers")
    marked = trl_assistant_only(ctx.model, ctx.tokenizer, messages, generation_template())
    bare = trl_assistant_only(ctx.model, ctx.tokenizer, messages, without_markers(generation_template()))
    return report.chat_template_text(v, marked, bare), (v, marked, bare)


def _loss_weights(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.labels.strategies import label_example
    from inspector.core.lessons.anatomy import loss_weights

    v = loss_weights(ctx.model, [label_example(s, ctx.example, ctx.tokenizer) for s in ("copy", "mask")])
    return report.loss_weights_text(v), v


def _step_timing(ctx: DemoContext) -> tuple[str, Any]:
    import torch

    from inspector.core.lessons.demo_runs import fused_head_note, measure_step_times

    rows = measure_step_times(
        ctx.model,
        ctx.tokenizer,
        ctx.examples,
        template=ctx.template,
        max_length=ctx.max_length,
        device=ctx.device,
        learning_rate=ctx.learning_rate,
        seed=ctx.seed,
        progress=ctx.progress,
        should_stop=ctx.should_stop,
    )
    text = report.timing_text(rows, ctx.device, torch.get_num_threads(), ctx.again)
    return text + "\n" + fused_head_note(), rows


def _eos_padding(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.labels.strategies import label_example
    from inspector.core.lessons.demo_runs import eos_padding_run
    from inspector.core.lessons.pitfalls import pad_eos_collators

    ids = label_example("copy", ctx.example, ctx.tokenizer).input_ids
    longer = label_example("copy", ctx.formatted(ctx.example.source + TWO_TURNS), ctx.tokenizer).input_ids  # two more turns
    collators = pad_eos_collators(ctx.tokenizer, ids, longer)
    run = eos_padding_run(ctx.model, ctx.tokenizer, ctx.examples, **ctx.training_options())
    differs = ctx.tokenizer.pad_token_id != ctx.tokenizer.eos_token_id
    return report.eos_text(run, collators, differs), run


def _packing(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.data.chat_format import ARTICLE_PAIRS, HOLDOUT_ANSWER, HOLDOUT_WORD, article_text
    from inspector.core.lessons.packing import packing_text, packing_view
    from inspector.core.lessons.weights import step_examples

    held_out = ctx.formatted(article_text(HOLDOUT_WORD, HOLDOUT_ANSWER, ctx.template))
    # Padding shows on answers of different lengths (lesson 13's examples).
    varied = [ctx.formatted(article_text(w, a, ctx.template)) for w, a in step_examples(ARTICLE_PAIRS)]
    ctx.progress("packing the examples with TRL's SFTTrainer (bfd, wrapped)")
    v = packing_view(
        ctx.model, ctx.tokenizer, ctx.examples, held_out, batch_size=2, device=ctx.device, padding_examples=varied
    )
    return packing_text(v), v


def _weights(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.data.chat_format import ARTICLE_PAIRS, article_text
    from inspector.core.lessons.weights import step_examples, weights_text, weights_view

    formatted = [ctx.formatted(article_text(w, a, ctx.template)) for w, a in step_examples(ARTICLE_PAIRS)]
    ctx.progress("one step's gradient, three ways (backward passes)")
    v = weights_view(ctx.model, ctx.tokenizer, formatted, device=ctx.device)
    return weights_text(v), v


def _truncation(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.data.chat_format import ARTICLE_PAIRS, article_text
    from inspector.core.lessons.truncation import default_cut, truncation_examples, truncation_text, truncation_view

    word, answer = ARTICLE_PAIRS[0]
    examples, cap = truncation_examples(
        lambda w, a: ctx.formatted(article_text(w, a, ctx.template)), ctx.tokenizer, word, answer
    )
    ctx.progress("truncating with TRL's SFTTrainer")
    v = truncation_view(ctx.model, ctx.tokenizer, examples, cap, device=ctx.device)
    ctx.progress("the training rows against SFTConfig's default max_length")
    default = default_cut(ctx.model, ctx.tokenizer, ctx.examples, device=ctx.device)
    return truncation_text(v, default), (v, default)


def _reasoning(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.lessons.traces import reasoning_text, reasoning_view

    v = reasoning_view(ctx.tokenizer)
    return reasoning_text(v), v


def _tool_calls(ctx: DemoContext) -> tuple[str, Any]:
    from inspector.core.lessons.tool_calls import tool_calls_text, tool_calls_view

    v = tool_calls_view(ctx.tokenizer, ctx.model, ctx.progress)
    return tool_calls_text(v), v


DEMOS: dict[str, DemoSpec] = {
    "shift": DemoSpec("The shift, computed", False, _shift),
    "tokenize": DemoSpec("Tokens, special tokens and padding", False, _tokenize),
    "old-collator": DemoSpec("The removed collator, rerun", False, _old_collator),
    "template-pitfall": DemoSpec("Template tokens alone and in context", False, _template_pitfall),
    "special-tokens": DemoSpec("Templates as special tokens", False, _special_tokens),
    "chat-template": DemoSpec("Chat template and assistant mask", False, _chat_template, makes_trainer=True),
    "step-timing": DemoSpec(
        "What a trained token weighs; seconds per step", True, _step_timing, makes_trainer=True, quick=_loss_weights
    ),
    "eos-padding": DemoSpec("Training with the eos masked", True, _eos_padding, covers_view=True, makes_trainer=True),
    "packing": DemoSpec("The held-out example alone and packed", False, _packing, makes_trainer=True),
    "truncation": DemoSpec("The answer that lost its end", False, _truncation, makes_trainer=True),
    "weights": DemoSpec("Whose tokens weigh: one step's gradient three ways", False, _weights, makes_trainer=True),
    "reasoning": DemoSpec("One conversation with reasoning, turn by turn, training beside inference", False, _reasoning),
    "tool-calls": DemoSpec("A tool call and its result: which parts are trained", False, _tool_calls, makes_trainer=True),
}


def run_demo(name: str, ctx: DemoContext, *, quick_only: bool = False) -> DemoResult:
    """The demo's text and data; with `quick_only`, its quick part alone (`DemoSpec.quick`). The
    whole of a demo with a quick part begins with that part's text (its data is the rest's)."""
    spec = DEMOS[name]
    if quick_only:
        if spec.quick is None:
            raise ValueError(f"the demo {name} has no quick part")
        text, data = spec.quick(ctx)
        return DemoResult(name, spec.title, text, data)
    first = spec.quick(ctx)[0] + "\n\n" if spec.quick is not None else ""
    text, data = spec.run(ctx)
    return DemoResult(name, spec.title, first + text, data)
