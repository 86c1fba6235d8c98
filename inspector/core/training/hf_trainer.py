"""The Hugging Face Trainer pieces a burst runs on: the Trainer class (plain, or one whose
loss projects the LM head only at trained positions), the gradient clipping folded into the
fused AdamW step, and the callback that logs each step and epoch, answers the held-out
prompt (and records the watched texts' rows) and stops a burst when asked.

Imported only when a burst starts (transformers loads here).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from inspector.core.training.burst import BurstResult, EpochLog, StepLog
from inspector.core.training.step_times import wait_for_device


def plain_trainer() -> type:
    from transformers import Trainer

    return Trainer


def trained_positions_trainer() -> type:
    """A Trainer whose loss projects the LM head only where the next label is trained.

    Stock transformers computes the logits of every position and lets the loss ignore the
    -100 ones; `logits_to_keep` with the trained positions skips that work (TRL's trainer
    does the same with its fused LM head). The loss is the same: the mean cross-entropy over
    trained tokens.
    """
    import torch
    from transformers import Trainer

    class TrainedPositionsTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            return trained_positions_loss(model, inputs, num_items_in_batch)

    def trained_positions_loss(model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
        labels = inputs["labels"]
        targets = labels[:, 1:]
        keep = (targets != -100).any(dim=0).nonzero().squeeze(-1)
        forward = {k: v for k, v in inputs.items() if k != "labels"}
        logits = model(**forward, logits_to_keep=keep).logits.float()
        picked = targets[:, keep]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), picked.reshape(-1), ignore_index=-100, reduction="sum"
        )
        count = num_items_in_batch if num_items_in_batch is not None else (picked != -100).sum()
        return loss / count

    TrainedPositionsTrainer.loss_function = staticmethod(trained_positions_loss)
    return TrainedPositionsTrainer


def fold_clipping_into_adamw(trainer: Any) -> None:
    """Clip the gradients inside the fused AdamW step instead of in a pass of their own.

    The stock Trainer clips with `clip_grad_norm_`: one pass reading every gradient for the
    norm, then one multiplying every gradient by `max_norm / (norm + 1e-6)` in place, even
    when that factor is clamped to 1. Fused AdamW can divide each gradient by a scale as it
    reads it (the `grad_scale` of mixed precision), so here the norm is computed alone and
    the optimizer divides by `(norm + 1e-6) / max_norm` only when the norm exceeds
    `max_norm`: a pass over the gradients less. Dividing by that scale instead of
    multiplying by its inverse can round the last bit of a clipped gradient differently.

    With another optimizer (`optimizer="foreach"`) the stock clipping runs.
    """
    import torch

    stock_clip = trainer._clip_grad_norm
    hooked: set[int] = set()

    def fused_adamw() -> Any:
        inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
        fused = isinstance(inner, torch.optim.Adam | torch.optim.AdamW) and inner.defaults.get("fused")
        return inner if fused else None

    def drop_scale(optimizer: Any, *args: Any, **kwargs: Any) -> None:
        optimizer.grad_scale = None  # a later step that is not clipped must not reuse it

    def clip_grad_norm(model: Any) -> Any:
        inner = fused_adamw()
        if inner is None:
            return stock_clip(model)
        if id(inner) not in hooked:
            inner.register_step_post_hook(drop_scale)
            hooked.add(id(inner))
        max_norm = float(trainer.args.max_grad_norm)
        norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
        scale = (norm + 1e-6) / max_norm
        inner.grad_scale = scale.to(torch.float32) if float(scale) > 1.0 else None
        return norm

    # The Trainer's own hook for "clip the gradients of model" (the optimizer exists only once
    # train() has started, so it is looked up at each step).
    trainer._clip_grad_norm = clip_grad_norm


def make_callback(
    session: Any,  # the TrainingSession that runs the burst
    result: BurstResult,
    on_step: Callable[[StepLog], None] | None,
    on_epoch: Callable[[EpochLog], None] | None,
    should_stop: Callable[[], bool] | None,
) -> Any:
    from transformers import TrainerCallback

    steps_at_start = session.steps_done
    epochs_at_start = session.epochs_done

    class BurstCallback(TrainerCallback):
        is_burst_callback = True

        def __init__(self) -> None:
            self.stopped = False
            self.holdout_seconds = 0.0
            self.epoch_losses: list[float] = []

        phase = "idle"
        step_start = 0.0
        step_seconds: float | None = None

        def on_epoch_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            session._epochs_begun += 1
            return control

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self.phase = "forward-backward"
            self.step_start = time.perf_counter()
            return control

        def on_pre_optimizer_step(self, args, state, control, **kwargs):  # noqa: ANN001
            self.phase = "optimizer"
            return control

        def on_optimizer_step(self, args, state, control, **kwargs):  # noqa: ANN001
            self.phase = "idle"
            return control

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            wait_for_device(session.device)
            self.step_seconds = time.perf_counter() - self.step_start
            session.steps_done = steps_at_start + state.global_step
            session.epochs_done = epochs_at_start + (state.epoch or 0.0)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs:
                log = StepLog(
                    session.strategy,
                    steps_at_start + state.global_step,
                    round(epochs_at_start + (state.epoch or 0.0), 4),
                    float(logs["loss"]),
                    self.step_seconds,
                )
                result.steps.append(log)
                self.epoch_losses.append(log.loss)
                if on_step is not None:
                    on_step(log)
                # Checked after the step is logged: the Trainer looks at the flag right after this.
                if should_stop is not None and should_stop():
                    self.stopped = True
                    control.should_training_stop = True
            return control

        def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self.stopped and abs((state.epoch or 0.0) - round(state.epoch or 0.0)) > 1e-6:
                return control  # stopped inside the epoch: no held-out answer for a partial epoch
            start = time.perf_counter()
            epoch = round(epochs_at_start + (state.epoch or 0.0))
            answer = session.holdout_answer()
            session.record_epoch(epoch)  # the watched texts' rows: like the answer, outside the step times
            self.holdout_seconds += time.perf_counter() - start
            loss = statistics.mean(self.epoch_losses) if self.epoch_losses else float("nan")
            self.epoch_losses = []
            log = EpochLog(session.strategy, epoch, loss, answer)
            result.epochs.append(log)
            if on_epoch is not None:
                on_epoch(log)
            return control

    return BurstCallback()
