"""Lesson 13's demo: one optimizer step's gradient, three ways, from TRL's own micro-batches.

The step is the batch core's (`inspect_step`): SFTTrainer's data loader on each simulated rank,
`gradient_accumulation_steps` micro-batches per rank. Its gradient is computed on the model:

- **trainer**: `SFTTrainer.compute_loss(micro_batch, num_items_in_batch=N)` for every micro-batch
  of every rank, backward, summed (DDP's averaging of the ranks cancels the loss's
  multiplication by the number of processes; here there is one process, which multiplies by 1).
  N is the Trainer's own count (`get_batch_samples`) over the whole step; the Trainer counts it
  only where the model's forward accepts loss kwargs (`model_accepts_loss_kwargs`) or a
  `compute_loss_func` is given, and the demo says which. Without it, each micro-batch's mean.
- **per_micro_batch**: each micro-batch's mean loss, divided by accumulation steps × ranks (the
  normalisation before transformers PR #34191).
- **per_sequence**: each sequence's own mean loss, averaged over the sequences of the step.
- **full batch**: every sequence of the step in one micro-batch, its mean loss.

The model runs in eval mode (no dropout), so the four differ only by their weighting.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.batches.step_types import StepView
from inspector.core.data.chat_format import FormattedExample

# How many times each example's answer is said: answers of different lengths (the lesson's point).
REPEATS = (1, 3, 1, 6, 2, 1, 4, 2)
STEP_FLAGS = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}
WORLD_SIZE = 2


@dataclass
class GradientStats:
    cosine: float
    norm_ratio: float  # |a| / |b|
    max_abs_diff: float
    scale: float  # max |b|


@dataclass
class WeightsView:
    micro_batches: int
    world_size: int
    accumulation: int
    num_items_in_batch: int | None
    normalisation: str
    shares: list[Any]  # batches.token_weights.ExampleWeight per source row (mask labels)
    copy_shares: list[Any]  # the same rows under copy labels (completion_only_loss=False)
    copy_items: int | None
    versus: dict[str, GradientStats] = field(default_factory=dict)  # "a vs b" -> stats
    lengths: dict[int, int] = field(default_factory=dict)  # row -> tokens
    # Read off the trainer built: whether it passes num_items_in_batch on (transformers' Trainer counts
    # it only where the model's forward accepts loss kwargs or a compute_loss_func is given).
    model_class: str = ""
    accepts_loss_kwargs: bool = False
    compute_loss_func: bool = False

    @property
    def num_items_used(self) -> str:
        """One line: does the Trainer divide by num_items_in_batch for this model, and why."""
        if self.accepts_loss_kwargs:
            return f"num_items_in_batch: used ({self.model_class}'s forward accepts loss kwargs)"
        if self.compute_loss_func:
            return "num_items_in_batch: used (a compute_loss_func is given)"
        return (
            f"num_items_in_batch: not used ({self.model_class}'s forward takes no loss kwargs and no compute_loss_func "
            "is given): each micro-batch's mean loss, divided by the accumulation steps"
        )


def step_examples(pairs: Sequence[tuple[str, str]], repeats: Sequence[int] = REPEATS) -> list[tuple[str, str]]:
    """(word, answer) pairs whose answers differ in length: the i-th answer said repeats[i] times."""
    return [(pairs[i % len(pairs)][0], " ".join([pairs[i % len(pairs)][1]] * k)) for i, k in enumerate(repeats)]


def _grads(model: Any) -> list[Any]:
    """The model's gradient, one tensor per trainable parameter (zeros where it has none)."""
    import torch

    return [(p.grad if p.grad is not None else torch.zeros_like(p)).detach() for p in model.parameters() if p.requires_grad]


class _Comparison:
    """cosine, norm ratio and largest difference of two gradients, summed parameter by parameter in
    float64: no flat copy of either (a gradient of the embedded model is a gigabyte)."""

    def __init__(self) -> None:
        self.dot = self.aa = self.bb = 0.0
        self.diff = self.scale = 0.0

    CHUNK = 1 << 22  # elements compared at once: float64 temporaries of a few tens of MB

    def add(self, a: Any, b: Any) -> None:
        a, b = a.reshape(-1), b.reshape(-1)
        for i in range(0, a.numel(), self.CHUNK):
            x, y = a[i : i + self.CHUNK], b[i : i + self.CHUNK]
            x64, y64 = x.double(), y.double()
            self.dot += float(x64 @ y64)
            self.aa += float(x64 @ x64)
            self.bb += float(y64 @ y64)
            self.diff = max(self.diff, float((x - y).abs().max()))
            self.scale = max(self.scale, float(y.abs().max()))

    def stats(self) -> GradientStats:
        na, nb = self.aa**0.5, self.bb**0.5
        cos = self.dot / (na * nb) if na and nb else (1.0 if na == nb else 0.0)
        return GradientStats(cos, na / nb if nb else float("inf"), self.diff, self.scale)


def _compare(a: list[Any], b: list[Any]) -> GradientStats:
    c = _Comparison()
    for x, y in zip(a, b):
        c.add(x, y)
    return c.stats()


def _to(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in batch.items()}


def step_gradients(trainer: Any, view: StepView) -> dict[str, GradientStats]:
    """The step's gradient four ways, compared: trainer, per_micro_batch, per_sequence, full_batch.

    Two gradients are kept at a time (the trainer's and the full batch's, each cloned once);
    the other two are compared with them from the parameters' own `.grad`, so the peak is the
    model and three gradients, never four flat copies and their float64 doubles."""
    model = trainer.model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    mbs = view.micro_batches
    n = view.num_items_in_batch
    parts = len(mbs)
    samples = [s for mb in mbs for s in mb.samples]
    out: dict[str, GradientStats] = {}
    try:
        model.zero_grad(set_to_none=True)
        # Without a count (a forward that takes no loss kwargs) each micro-batch's mean loss is divided
        # by the accumulation steps (Trainer.training_step) and averaged over the ranks (DDP).
        scale = 1 if n is not None else parts
        for mb in mbs:
            (trainer.compute_loss(model, _to(mb.batch, device), num_items_in_batch=n) / scale).backward()
        trainer_grad = [g.clone() for g in _grads(model)]
        model.zero_grad(set_to_none=True)
        full = trainer.data_collator([trainer.train_dataset[s] for s in samples])
        trainer.compute_loss(model, _to(full, device)).backward()
        full_grad = [g.clone() for g in _grads(model)]
        out["trainer vs full batch"] = _compare(trainer_grad, full_grad)
        model.zero_grad(set_to_none=True)
        for mb in mbs:
            (trainer.compute_loss(model, _to(mb.batch, device)) / parts).backward()
        live = _grads(model)
        out["per_micro_batch vs full batch"] = _compare(live, full_grad)
        out["per_micro_batch vs trainer"] = _compare(live, trainer_grad)
        del live, full_grad
        model.zero_grad(set_to_none=True)
        for s in samples:
            one = trainer.data_collator([trainer.train_dataset[s]])
            (trainer.compute_loss(model, _to(one, device)) / len(samples)).backward()
        out["per_sequence vs trainer"] = _compare(_grads(model), trainer_grad)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return out


def weights_view(
    model: Any, tokenizer: Any, formatted: Sequence[FormattedExample], *, device: str = "cpu"
) -> WeightsView:
    """Step 1 of SFTTrainer on the examples (STEP_FLAGS, WORLD_SIZE ranks): shares and gradients."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.steps import inspect_step
    from inspector.core.batches.trainer import sft_trainer

    rows = list(range(1, len(formatted) + 1))
    source = f"{len(formatted)} examples whose answers differ in length"
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-lesson-") as tmp:
        setup = examples_setup(formatted, rows, source, dict(STEP_FLAGS), output_dir=tmp, device=device)
        with sft_trainer(model, tokenizer, setup) as trainer:
            view = inspect_step(trainer, setup, step=1, world_size=WORLD_SIZE)
            used = (bool(trainer.model_accepts_loss_kwargs), trainer.compute_loss_func is not None)
            versus = step_gradients(trainer, view)
            lengths = {s.row: s.end - s.start for mb in view.micro_batches for r in mb.segments for s in r}
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-lesson-") as tmp:
        flags = {**STEP_FLAGS, "completion_only_loss": False}
        setup = examples_setup(formatted, rows, source, flags, output_dir=tmp, device=device)
        with sft_trainer(model, tokenizer, setup) as trainer:
            copy_view = inspect_step(trainer, setup, step=1, world_size=WORLD_SIZE)
    return WeightsView(
        micro_batches=len(view.micro_batches),
        world_size=view.world_size,
        accumulation=STEP_FLAGS["gradient_accumulation_steps"],
        num_items_in_batch=view.num_items_in_batch,
        normalisation=view.normalisation,
        shares=view.examples,
        copy_shares=copy_view.examples,
        copy_items=copy_view.num_items_in_batch,
        versus=versus,
        lengths=lengths,
        model_class=type(model).__name__,
        accepts_loss_kwargs=used[0],
        compute_loss_func=used[1],
    )


def same_within_float_error(s: GradientStats, steps: int = 64) -> bool:
    """The two gradients agree to a few float32 roundings of the larger one's scale."""
    return s.max_abs_diff <= steps * 1.1920929e-07 * s.scale


def weights_text(v: WeightsView) -> str:
    lines = [
        f"one optimizer step: {v.micro_batches} micro-batches ({v.accumulation} accumulation steps × {v.world_size} "
        f"simulated devices); {v.normalisation}",
        v.num_items_used,
        f"each example's share of the step (mask labels: completion only; num_items_in_batch {v.num_items_in_batch}):",
        f"   {'row':>4} {'tokens':>6} {'trained':>7} {'trainer':>8} {'per-mb':>8} {'per-seq':>8}",
    ]
    for e in v.shares:
        lines.append(
            f"   {e.row:>4} {v.lengths.get(e.row, 0):>6} {e.trained_tokens:>7} "
            + " ".join(f"{e.weights[k]:>8.4f}" for k in ("trainer", "per_micro_batch", "per_sequence"))
        )
    trained = [e for e in v.shares if e.trained_tokens]
    if trained:
        long, short = max(trained, key=lambda e: e.trained_tokens), min(trained, key=lambda e: e.trained_tokens)
        lines.append(
            f"under the Trainer a share is trained tokens / {v.num_items_in_batch}: row {long.row} "
            f"({long.trained_tokens} tokens) weighs {long.weights['trainer'] / short.weights['trainer']:.2f}× row "
            f"{short.row} ({short.trained_tokens}); per sequence both weigh {long.weights['per_sequence']:.4f}"
        )
    lines.append("gradients of the same micro-batches (cosine, norm ratio, largest |difference| / largest |component|):")
    for name, s in v.versus.items():
        lines.append(f"   {name:<30} cosine {s.cosine:.6f}  norm ratio {s.norm_ratio:.6f}  max diff {s.max_abs_diff / s.scale:.2e}")
    t, m = v.versus["trainer vs full batch"], v.versus["per_micro_batch vs full batch"]
    lines.append(
        "found: the Trainer's gradient " + ("equals" if same_within_float_error(t) else "does NOT equal")
        + " the full-batch gradient of the same examples within float error; the per-micro-batch one "
        + ("does not" if not same_within_float_error(m) else "does too (the micro-batches train equal counts here)")
    )
    lines.append(f"copy labels (completion_only_loss=False): every token of a row trains, num_items_in_batch {v.copy_items}:")
    for e in v.copy_shares:
        lines.append(f"   row {e.row:>2}: {e.trained_tokens:>3} trained tokens, share {e.weights['trainer']:.4f}")
    return "\n".join(lines)
