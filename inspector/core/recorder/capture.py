"""What the model receives, captured where it is called: a forward pre-hook (with kwargs) on the model,
and a forward hook beside it that reads the summed cross-entropy off its outputs.

`ForwardCapture` fills the open `MicroRecord` with the first value of each input the model gets
during one micro-batch (TRL calls the model twice when a `compute_loss_func` or label smoothing is
set: once with the logits' inputs, once with the labels), and counts those calls. A forward that
starts inside another forward of the same model (a re-entrant call) or during the backward
(gradient checkpointing recomputing it) is not a call of its own: it is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.recorder.record_files import FLAT_COLUMNS, TOKEN_COLUMNS

_ROWS = ("input_ids", "labels", "shift_labels", "position_ids")  # [batch row, position] as sent


@dataclass
class MicroRecord:
    """One micro-batch as the model received it on one rank, with the count and loss of its step."""

    step: int  # the optimizer step, from 1
    micro_step: int  # from 0, within the step
    rank: int
    arrays: dict[str, Any] = field(default_factory=dict)  # numpy arrays by column name (TOKEN_COLUMNS, FLAT_COLUMNS)
    num_items_in_batch: float | None = None
    num_items_source: str | None = None  # "trainer" (Trainer.training_step's argument) or "forward" (the model's kwarg)
    loss: float | None = None  # the value the Trainer ran backward on for this micro-batch
    ce_sum: float | None = None  # the summed cross-entropy of the trained labels, from the model's outputs
    forward_calls: int = 0
    other_inputs: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The step file's row (`record_files`)."""
        out: dict[str, Any] = {"step": self.step, "micro_step": self.micro_step, "rank": self.rank}
        for name in (*TOKEN_COLUMNS, *FLAT_COLUMNS):
            value = self.arrays.get(name)
            out[name] = None if value is None else value.tolist()
        out.update(
            num_items_in_batch=self.num_items_in_batch,
            num_items_source=self.num_items_source,
            loss=self.loss,
            ce_sum=self.ce_sum,
            forward_calls=self.forward_calls,
            other_inputs=json.dumps(self.other_inputs, sort_keys=True, default=str),
        )
        return out

    def trained(self, shifts: bool = True) -> Any:
        """Whether token t of each batch row is a trained target ([B, T] of bool): its label (labels[t],
        or shift_labels[t-1]) is not -100, and t > 0 where the loss shifts the labels."""
        import numpy as np

        ids = self.arrays["input_ids"]
        out = np.zeros(ids.shape, dtype=bool)
        shift = self.arrays.get("shift_labels")
        labels = self.arrays.get("labels")
        if shift is not None:
            out[:, 1:] = shift[:, : ids.shape[1] - 1] != IGNORE_INDEX
        elif labels is not None:
            if shifts:
                out[:, 1:] = labels[:, 1:] != IGNORE_INDEX
            else:
                out = labels != IGNORE_INDEX
        return out

    def real(self) -> Any:
        """Whether each token is real, not padding ([B, T] of bool): the 2D attention mask where one was sent."""
        import numpy as np

        mask = self.arrays.get("attention_mask")
        if mask is not None:
            return mask != 0
        return np.ones(self.arrays["input_ids"].shape, dtype=bool)


def _numpy(value: Any) -> Any:
    import torch

    return value.detach().to("cpu", torch.int64).numpy()


def _describe(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__


def attends_from_4d(mask: Any) -> Any:
    """For a 4D mask ([batch, heads, query, key]; bool: True attends, float: 0 attends), the first key
    position each query position of head 0 may attend to ([batch, query]; -1: none)."""
    import torch

    m = mask[:, 0]
    allowed = m if m.dtype == torch.bool else (m == 0 if m.is_floating_point() else m != 0)
    first = allowed.to(torch.int8).argmax(dim=-1)
    first[~allowed.any(dim=-1)] = -1
    return _numpy(first)


def take(record: MicroRecord, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Add one forward call's inputs to the record (a value already taken stays)."""
    import torch

    inputs = dict(kwargs)
    if args:
        inputs.setdefault("input_ids", args[0])  # a causal LM's forward takes input_ids first
        for k, value in enumerate(args[1:], 1):
            record.other_inputs.setdefault(f"positional {k}", _describe(value))
    record.forward_calls += 1
    arrays = record.arrays
    for name, value in inputs.items():
        is_tensor = isinstance(value, torch.Tensor)
        if name in _ROWS and is_tensor and value.dim() in (1, 2):
            if name not in arrays:
                arrays[name] = _numpy(value if value.dim() == 2 else value[None])
        elif name == "attention_mask" and is_tensor and value.dim() in (2, 4):
            if "attention_mask_shape" not in arrays:
                import numpy as np

                arrays["attention_mask_shape"] = np.asarray(list(value.shape), dtype=np.int64)
                if value.dim() == 2:
                    arrays["attention_mask"] = _numpy(value != 0)
                else:
                    arrays["attends_from"] = attends_from_4d(value)
        elif name in ("cu_seq_lens_q", "cu_seq_lens_k") and is_tensor and value.dim() == 1:
            arrays.setdefault(name, _numpy(value))
        elif name == "num_items_in_batch":
            if record.num_items_source is None and value is not None:
                record.num_items_in_batch = float(value.sum() if is_tensor and value.dim() else value)
                record.num_items_source = "forward"
        else:
            record.other_inputs.setdefault(name, _describe(value))


def ce_sum(output: Any, kwargs: dict[str, Any]) -> float | None:
    """The summed cross-entropy of the trained labels in the model's outputs: TRL's fused head returns
    log p(label) per position (zero where the label is -100); a plain head returns logits, scored here
    against the labels it was given. None where the outputs hold neither."""
    import torch

    def get(name: str) -> Any:
        if isinstance(output, dict):
            return output.get(name)
        return getattr(output, name, None)

    with torch.no_grad():
        log_probs = get("log_probs")
        if isinstance(log_probs, torch.Tensor):
            return float(-log_probs.detach().float().sum())
        logits = get("logits")
        shift = kwargs.get("shift_labels")
        labels = kwargs.get("labels")
        if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
            return None
        if isinstance(shift, torch.Tensor) and shift.shape == logits.shape[:2]:
            scored, targets = logits, shift
        elif isinstance(labels, torch.Tensor) and labels.shape == logits.shape[:2]:
            scored, targets = logits[:, :-1], labels[:, 1:]
        else:
            return None
        total = 0.0
        for b in range(scored.shape[0]):  # one row at a time: a float32 copy of one row's logits at most
            total += float(
                torch.nn.functional.cross_entropy(
                    scored[b].float(), targets[b].to(scored.device), ignore_index=IGNORE_INDEX, reduction="sum"
                )
            )
        return total


class ForwardCapture:
    """The hooks on the model. While `open` holds a record, the model's top-level forward calls fill it."""

    def __init__(self) -> None:
        self.open: MicroRecord | None = None
        self.in_backward = False
        self._mine: list[bool] = []  # per forward in progress (nested ones included): whether it is recorded
        self._handles: list[Any] = []

    def attach(self, model: Any) -> None:
        self.detach()
        self._handles = [
            model.register_forward_pre_hook(self._pre, with_kwargs=True),
            model.register_forward_hook(self._post, with_kwargs=True, always_call=True),
        ]

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._mine = []

    def _pre(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        mine = not self._mine and self.open is not None and not self.in_backward
        self._mine.append(mine)
        if mine and self.open is not None:
            take(self.open, args, kwargs)

    def _post(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        mine = self._mine.pop() if self._mine else False
        if mine and self.open is not None and output is not None and self.open.ce_sum is None:
            self.open.ce_sum = ce_sum(output, kwargs)
