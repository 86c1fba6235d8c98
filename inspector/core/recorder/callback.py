"""`RecorderCallback`: a `transformers.TrainerCallback` that records, on every rank, what the model
receives in the first optimizer steps, and audits the first step before its optimizer step.

How it sees a micro-batch, and why each way:

- the inputs: a forward pre-hook (with kwargs) on the model the Trainer hands its callbacks, put
  there in `on_train_begin`: what the model gets after the collator, the sampler, the launcher's
  sharding and the Trainer's own additions (`use_cache=False`, TRL's `fused_lm_head`), whatever they are;
- `num_items_in_batch`: the argument the Trainer's loop passes to `training_step` (TRL's SFTTrainer
  divides by it itself and never passes it to the model, so the forward cannot see it);
- the loss: the value `training_step` passes to `accelerator.backward`.

The last two are read by wrapping those two methods on the running Trainer (on the instance, put
back in `on_train_end`), which the callback finds as the `self` of the Trainer method that calls
it: callbacks are given no Trainer. The audit runs inside the wrapped `backward` of the first
step's last micro-batch, before the real one: under DeepSpeed the optimizer steps inside that
backward, so this is the last point before the first optimizer step on every launcher. With
`stop_on_problem`, every rank raises `RecorderStop` there (they all judge the same gathered counts),
so no rank waits on a collective that another never reaches.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from inspector.core.errors import InspectorError
from inspector.core.recorder import record_files as files
from inspector.core.recorder.audit import SHARE_BAND, format_audit, judge
from inspector.core.recorder.capture import ForwardCapture, MicroRecord
from inspector.core.recorder.cross_rank import epoch_indices, gather
from inspector.core.recorder.rank_stats import rank_stats
from inspector.core.recorder.record_files import DEFAULT_STEPS
from inspector.core.recorder.run_facts import run_info


class RecorderStop(InspectorError):
    """The audit found problems before the first optimizer step and `stop_on_problem` is on."""


def _calling_trainer() -> Any:
    from transformers import Trainer

    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


class RecorderCallback(TrainerCallback):
    """Record what the model receives on every rank and audit the first step (the package docstring
    of `inspector.core.recorder` describes the files).

    to: the recording's folder (each rank writes its own `rank-NNNNN/` in it).
    steps: record the first `steps` optimizer steps; every: and every `every`-th step after them.
    stop_on_problem: stop the run before its first optimizer step when the audit finds a problem.
    audit: run the audit at all. share_band: the trained share (of real tokens) that is not a problem.
    """

    def __init__(
        self,
        to: str | os.PathLike[str],
        steps: int = DEFAULT_STEPS,
        every: int | None = None,
        *,
        stop_on_problem: bool = False,
        audit: bool = True,
        share_band: tuple[float, float] = SHARE_BAND,
    ) -> None:
        for name, value in (("steps", steps), ("every", every)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InspectorError(f"RecorderCallback's {name} {value!r} is not a number of steps", f"give {name} 1 or more")
        low, high = share_band
        if not 0 <= low <= high <= 1:
            raise InspectorError(f"share_band {share_band!r} is not a band of shares", "give (low, high) with 0 <= low <= high <= 1")
        self.root = Path(to)
        self.steps, self.every = steps, every
        self.stop_on_problem, self.audit, self.share_band = stop_on_problem, audit, share_band
        self.capture = ForwardCapture()
        self.trainer: Any = None
        self.rank, self.world = 0, 1
        self._restore: list[tuple[Any, str, Any]] = []
        self._step = 0
        self._recording = False
        self._records: list[MicroRecord] = []
        self._written: list[int] = []
        self._audit_pending = audit
        self._loader: Any = None
        self._info: dict[str, Any] = {}

    # --- the Trainer's events -------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                       train_dataloader: Any = None, **kwargs: Any) -> None:
        trainer = _calling_trainer()
        if trainer is None:
            raise InspectorError("RecorderCallback found no transformers Trainer calling it", "pass it in callbacks=[...] of a Trainer or SFTTrainer")
        self.trainer = trainer
        self.rank, self.world = int(args.process_index), int(args.world_size)
        model = model if model is not None else trainer.model
        tokenizer = processing_class if processing_class is not None else getattr(trainer, "processing_class", None)
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor's tokenizer
        self._loader = train_dataloader
        used = gather(any(files.rank_folder(self.root, self.rank).glob("step-*.parquet")))
        if any(used):
            raise InspectorError(
                f"{self.root} already holds a recording (rank {used.index(True)}'s steps)", "record into a new folder, or remove it"
            )
        self._info = run_info(trainer, args, model, tokenizer, steps=self.steps, every=self.every)
        if self.rank == 0:
            files.write_json(self.root / files.RUN_FILE, {"format": files.FORMAT, "format_version": files.FORMAT_VERSION, **self._info})
        files.write_json(
            files.rank_folder(self.root, self.rank) / files.RANK_FILE,
            {"rank": self.rank, "local_rank": int(args.local_rank), "host": socket.gethostname(), "pid": os.getpid(),
             "device": str(args.device), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )
        self.capture.attach(model)
        self._wrap(trainer, "training_step", self._training_step)
        self._wrap(trainer.accelerator, "backward", self._backward)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step = int(state.global_step) + 1
        self._records = []
        self._recording = self._audit_pending or self._step <= self.steps or bool(self.every and self._step % self.every == 0)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._recording and self._step not in self._written:  # a Trainer whose backward was never called
            self._close(None)
            self._finish_step()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._remove()
        files.write_json(
            files.rank_folder(self.root, self.rank) / files.END_FILE,
            {"rank": self.rank, "steps": self._written, "global_step": int(state.global_step),
             "ended": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )

    # --- the wrapped Trainer methods ------------------------------------------------------------

    def _wrap(self, owner: Any, name: str, wrapper: Any) -> None:
        had = name in vars(owner)
        inner = getattr(owner, name)
        self._restore.append((owner, name, inner if had else None))
        setattr(owner, name, lambda *a, **k: wrapper(inner, *a, **k))

    def _remove(self) -> None:
        self.capture.detach()
        for owner, name, before in reversed(self._restore):
            if before is None:
                vars(owner).pop(name, None)
            else:
                setattr(owner, name, before)
        self._restore = []

    def _training_step(self, inner: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._recording:
            return inner(*args, **kwargs)
        count = kwargs.get("num_items_in_batch", args[2] if len(args) > 2 else None)
        record = MicroRecord(self._step, len(self._records), self.rank, num_items_source="trainer")  # None: it passed none
        if count is not None:
            record.num_items_in_batch = float(count.sum() if hasattr(count, "dim") and count.dim() else count)
        self.capture.open = record
        loss = inner(*args, **kwargs)
        if self.capture.open is record:  # a training_step that ran no accelerator.backward
            self._close(loss)
            self._finish_if_last()
        return loss

    def _backward(self, inner: Any, loss: Any, *args: Any, **kwargs: Any) -> Any:
        if self._recording and self.capture.open is not None:
            self._close(loss)
            self._finish_if_last()
        self.capture.in_backward = True
        try:
            return inner(loss, *args, **kwargs)
        finally:
            self.capture.in_backward = False

    def _close(self, loss: Any) -> None:
        record = self.capture.open
        self.capture.open = None
        if record is None:
            return
        if loss is not None and hasattr(loss, "detach"):
            record.loss = float(loss.detach().float().sum())
        if "input_ids" in record.arrays:
            self._records.append(record)

    def _finish_if_last(self) -> None:
        expected = getattr(self.trainer, "current_gradient_accumulation_steps", None) or self.trainer.args.gradient_accumulation_steps
        if len(self._records) >= int(expected):
            self._finish_step()

    def _finish_step(self) -> None:
        if self._step in self._written or not self._records:
            return
        files.write_step(self.root, self.rank, self._step, [r.row() for r in self._records])
        self._written.append(self._step)
        if self._audit_pending:
            self._audit_pending = False
            self._run_audit()

    # --- the audit ------------------------------------------------------------------------------

    def _run_audit(self) -> None:
        info = self._info
        stops = {int(k): v for k, v in info["stop_tokens"].items()}
        mine = rank_stats(
            self._records,
            rank=self.rank,
            stop_ids=list(stops),
            shifts=bool(info["loss_shifts_labels"]),
            implementation=info["attn_implementation"],
            config_use_cache=info["model_use_cache"],
            epoch=epoch_indices(self._loader),
        )
        verdict = judge(
            gather(mine), step=self._step, backward_divides_by=int(info["backward_divides_by"]), stop_tokens=stops,
            share_band=self.share_band,
        )
        stop = self.stop_on_problem and bool(verdict.problems)
        if self.rank == 0:
            print(format_audit(verdict, self.stop_on_problem), flush=True)
            files.write_json(self.root / files.AUDIT_FILE, {**verdict.to_dict(), "stopped": stop})
        if stop:
            gather(None)  # no rank leaves before rank 0 has written: a launcher ends the others when one exits
            self._remove()
            n = len(verdict.problems)
            raise RecorderStop(
                f"the recorder's audit found {n} problem{'s' if n != 1 else ''} before the first optimizer step, "
                f"which was not taken: {verdict.stop_message()}",
                f"fix {'them' if n != 1 else 'it'}, or train without stop_on_problem (record without --stop-on-problem); "
                f"the step is recorded in {self.root}",
            )
