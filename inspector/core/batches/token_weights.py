"""The weight of each trained token in one optimizer step, three ways.

- **trainer**: what the Trainer does today. `Trainer.get_batch_samples` counts the trained
  tokens of all the step's micro-batches (`num_items_in_batch`, over `labels[..., 1:]`);
  SFTTrainer's `compute_loss` divides each micro-batch's summed loss by that count, and
  with `average_tokens_across_devices` the count is summed over the ranks too (the loss is
  multiplied by the number of processes, which DDP's gradient averaging divides again). Every
  trained token of the step weighs 1/N. A model whose forward takes no loss kwargs gets no
  count: each micro-batch's mean, divided by the accumulation steps.
- **per_micro_batch**: the pre-fix normalisation: each micro-batch's own mean, averaged over
  the accumulation steps and the ranks. A token in a micro-batch with few trained tokens
  weighs more than one in a full micro-batch.
- **per_sequence**: each sequence's (segment's) own mean, averaged over the sequences of the step.

The count is the Trainer's own (`get_batch_samples` on each rank's micro-batches), checked
against the tokens marked trained here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.batches.layout import Layout
from inspector.core.batches.step_types import ExampleWeight, MicroBatch, StepView
from inspector.core.data.tokens import IGNORE_INDEX

SCHEMES = ("trainer", "per_micro_batch", "per_sequence")


@dataclass(frozen=True)
class StepWeights:
    """The weights of one step: per rank, per micro-batch, each token's weight under each scheme, and
    how the loss is normalised (the `StepView` fields of the same names)."""

    per_rank: list[list[dict[str, list[list[float]]]]]  # [rank][micro-step][scheme][batch row][position]
    items_per_rank: list[int]
    num_items_in_batch: int | None
    normalisation: str


def step_weights(trainer: Any, world: int, per_rank: Sequence[Sequence[tuple[dict[str, Any], Layout]]]) -> StepWeights:
    """Each token's weight in the step under every scheme, from each rank's micro-batches (the
    collator's tensors and their layout), with the Trainer's own count checked against them."""
    average = bool(trainer.args.average_tokens_across_devices)
    trained = [sum(sum(row) for _, lay in mbs for row in lay.trained) for mbs in per_rank]
    counts: list[int | None] = []
    for mbs in per_rank:
        _, n = trainer.get_batch_samples(iter([batch for batch, _ in mbs]), len(mbs), trainer.args.device)
        counts.append(None if n is None else int(round(float(n))))
    uses_count = counts[0] is not None
    if uses_count and counts != trained:
        raise RuntimeError(f"the Trainer counts {counts} trained tokens per rank, the batch view {trained}")
    total = sum(trained)
    segments = [s for mbs in per_rank for _, lay in mbs for row in lay.segments for s in row if s.trained]
    out: list[list[dict[str, list[list[float]]]]] = []
    for rank, mbs in enumerate(per_rank):
        accumulation = len(mbs)
        mine = []
        for _, lay in mbs:
            in_mb = sum(sum(row) for row in lay.trained)
            if uses_count:
                n = total if (average and world > 1) else trained[rank] * world
            else:
                n = in_mb * accumulation * world
            trainer_w = 1 / n if n else 0.0
            mb_w = 1 / (in_mb * accumulation * world) if in_mb else 0.0
            weights: dict[str, list[list[float]]] = {k: [] for k in SCHEMES}
            for b, row in enumerate(lay.trained):
                seg_w = [1 / (s.trained * len(segments)) if s.trained else 0.0 for s in lay.segments[b]]
                weights["trainer"].append([trainer_w if t else 0.0 for t in row])
                weights["per_micro_batch"].append([mb_w if t else 0.0 for t in row])
                weights["per_sequence"].append(
                    [seg_w[lay.token_segment[b][i]] if t else 0.0 for i, t in enumerate(row)]
                )
            mine.append(weights)
        out.append(mine)
    num_items = None
    if uses_count:
        num_items = total if (average and world > 1) or world == 1 else None
    normalisation = _normalisation(uses_count, average, world, total, trained, len(per_rank[0]))
    return StepWeights(out, trained, num_items, normalisation)


def _normalisation(uses_count: bool, average: bool, world: int, total: int, trained: Sequence[int], accumulation: int) -> str:
    ranks = f" and {world} ranks" if world > 1 else ""
    if total == 0:
        return "this step trains no token: every label is -100 (or a first position), so its loss is 0 and every weight 0"
    if not uses_count:
        return (
            "the model's forward takes no num_items_in_batch: each micro-batch's mean loss, divided by the "
            f"{accumulation} accumulation steps{' and averaged over the ranks' if world > 1 else ''}"
        )
    if average or world == 1:
        return (
            f"each trained token weighs 1/{total}: num_items_in_batch counts the trained tokens of all "
            f"{accumulation} micro-batch{'es' if accumulation != 1 else ''}{ranks} (Trainer.get_batch_samples)"
        )
    return (
        "average_tokens_across_devices is off: each rank divides by its own count "
        f"({', '.join(map(str, trained))}) and DDP averages the {world} ranks' gradients"
    )


def example_weights(micro_batches: Sequence[MicroBatch]) -> list[ExampleWeight]:
    """Each source row's trained tokens and total weight in the step (rows with none included)."""
    tokens: dict[int, int] = defaultdict(int)
    sums: dict[int, dict[str, float]] = defaultdict(lambda: dict.fromkeys(SCHEMES, 0.0))
    for mb in micro_batches:
        for b, row in enumerate(mb.trained):
            for t, on in enumerate(row):
                if not on:
                    continue
                r = mb.row_of(b, t)
                tokens[r] += 1
                for k in SCHEMES:
                    sums[r][k] += mb.weights[k][b][t]
        for row in mb.segments:  # rows with no trained token still appear, with zero weight
            for s in row:
                tokens.setdefault(s.row, 0)
                sums.setdefault(s.row, dict.fromkeys(SCHEMES, 0.0))
    return [ExampleWeight(r, tokens[r], dict(sums[r])) for r in sorted(tokens)]


def step_sums(view: StepView) -> dict[str, float]:
    """The total weight of the step under each scheme (1 when the step trains anything)."""
    return {k: sum(w for mb in view.micro_batches for row in mb.weights[k] for w in row) for k in SCHEMES}



def gradient_weights(trainer: Any, view: StepView) -> list[list[list[float]]]:
    """Each label's weight in the step, read off the gradient of the Trainer's own loss.

    Every micro-batch goes through `trainer.compute_loss` twice, with the backbone's last hidden
    states made a leaf that requires grad (the backward stops there: only the LM head runs it):

    - with the count the Trainer passes (`num_items_in_batch`: the whole step's, summed over
      the ranks with `average_tokens_across_devices`, else the rank's own), scaled as a real run
      scales it (× the number of processes where the count is summed over them, ÷ the ranks for
      DDP's mean; with no count, the mean ÷ the accumulation steps): the gradient G;
    - with a count of 1: the loss is Σ CE, its gradient U.

    The head works position by position, so at the position that predicts label t, G = w_t · U:
    the weight is ⟨G, U⟩ / ⟨U, U⟩, whatever the loss code (TRL's fused head included). Nothing of
    the model is trained or changed. Returns, per micro-batch, per row, one weight per label
    (label 0 predicts nothing: 0)."""
    return [w for w, _, _ in _gradients(trainer, view)]


def _gradients(trainer: Any, view: StepView) -> list[tuple[list[list[float]], Any, Any]]:
    """Per micro-batch: (weights, G, U) as `gradient_weights` says (G and U: float64 tensors [B, T, H])."""
    import torch

    model = trainer.model
    device = next(model.parameters()).device
    world = view.world_size
    average = bool(trainer.args.average_tokens_across_devices) and world > 1
    per_rank: dict[int, list[MicroBatch]] = {}
    for mb in view.micro_batches:
        per_rank.setdefault(mb.rank, []).append(mb)
    counts: dict[int, Any] = {}
    for rank, mbs in per_rank.items():
        _, n = trainer.get_batch_samples(iter([mb.batch for mb in mbs]), len(mbs), trainer.args.device)
        counts[rank] = None if n is None else int(round(float(n)))
    total = None if any(n is None for n in counts.values()) else sum(counts.values())
    held: list[Any] = []

    def leaf_hidden(module: Any, inputs: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        leaf = hidden.detach().requires_grad_(True)
        held.append(leaf)
        if isinstance(output, tuple):
            return (leaf, *output[1:])
        output.last_hidden_state = leaf
        return output

    hook = model.base_model.register_forward_hook(leaf_hidden)
    was_training = model.training
    model.eval()
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:  # the gradient stops at the hidden states: the body runs as in inference
        p.requires_grad_(False)
    out = []
    try:
        for mb in view.micro_batches:
            mbs = per_rank[mb.rank]
            if counts[mb.rank] is None:
                n, scale = None, 1 / (len(mbs) * world)
            elif average:
                n, scale = total, 1.0  # × world (num_processes), ÷ world (DDP's mean)
            else:
                n, scale = counts[mb.rank], 1 / world
            grads = []
            for count, factor in ((n, scale), (1, 1.0)):
                held.clear()
                inputs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in mb.batch.items()}
                with torch.enable_grad():
                    loss = trainer.compute_loss(model, inputs, num_items_in_batch=count) * factor
                    if not held:
                        from inspector.core.errors import InspectorError

                        raise InspectorError(
                            f"{type(model).__name__}'s forward never ran its backbone (model.base_model), so the "
                            "weights cannot be read off its gradient",
                            "use a causal LM whose head sits on model.base_model (any Hugging Face *ForCausalLM)",
                        )
                    leaf = held[-1]
                    if loss.requires_grad:
                        loss.backward()
                grads.append(torch.zeros_like(leaf) if leaf.grad is None else leaf.grad.detach().double().cpu())
            g, u = grads
            labels = mb.batch["labels"]
            rows = []
            for b in range(labels.shape[0]):
                row = [0.0] * labels.shape[1]
                for t in range(1, labels.shape[1]):
                    if int(labels[b, t]) == IGNORE_INDEX:
                        continue
                    uu = float((u[b, t - 1] * u[b, t - 1]).sum())
                    row[t] = float((g[b, t - 1] * u[b, t - 1]).sum()) / uu if uu > 0 else 0.0
                rows.append(row)
            out.append((rows, g, u))
    finally:
        hook.remove()
        for p in trainable:
            p.requires_grad_(True)
        model.train(was_training)
    return out
