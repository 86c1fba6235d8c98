"""The recorder's cost (`causallm-inspect bench --recorder`): the seconds of an optimizer step of TRL's
SFTTrainer on the model in use, with and without `RecorderCallback` recording every step.

Runs alternate, without and with the recorder, each on its own copy of the model from the same
weights, the examples one per step. A step's time is the wall time between the ends of two steps
(the device synchronised), so it holds everything the recorder adds inside a step: its hooks, the
copies of the inputs, the Parquet file written and flushed to disk. The first step of each run is
set apart: it warms up, and with the recorder it holds the audit and the run's facts, once per run.

Two measures of the cost, as a share of the median step without the recorder (target: under 3%):
the difference of the two runs' median steps, and the recorder's own work in each step, timed inside
it (its forward hooks, its part of the Trainer's step and backward, the file it writes). On a busy
machine the steps' spread swamps the first (the spreads are printed beside it); the second is what
the recorder adds, and the target is judged on it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.training.bench import Spread

if TYPE_CHECKING:
    from inspector.core.models import LoadedModel

TARGET_PERCENT = 3.0
STEPS = 8  # optimizer steps per run
RUNS = 2  # runs of each kind, alternating


@dataclass
class RecorderCost:
    model: str
    device: str
    steps_per_run: int
    runs: int
    without_s: Spread  # a step's seconds without the recorder (the first of each run left out)
    with_s: Spread  # with it, every step recorded
    first_step_without_s: float  # the median first step of a run
    first_step_with_s: float  # with the audit, the run's facts and the first file
    own_s: Spread  # the recorder's own seconds in a step (the first of each run left out)
    recorded_steps: list[int]  # the steps each run with the recorder wrote (every one: 1..steps)
    recorded_bytes: int  # the size of one run's recording
    steps_percent: float  # the median step with the recorder over the median without, - 1
    own_percent: float  # the recorder's own median seconds in a step over the median step without it
    target_percent: float = TARGET_PERCENT

    @property
    def met(self) -> bool:
        return self.own_percent < self.target_percent

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _timer(device: str, seconds: list[float]) -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            _sync(device)
            self.last = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            _sync(device)
            now = time.perf_counter()
            seconds.append(now - self.last)
            self.last = now

    return StepTimer()


# The recorder's methods that do its work inside a step: its forward hooks, what it does around the
# Trainer's training_step and backward (the copies, the loss, the file and, at step 1, the audit).
OWN_WORK = ("on_step_begin", "on_pre_optimizer_step", "_close", "_finish_step")  # the callback's
HOOKS = ("_pre", "_post")  # its ForwardCapture's (`callback.capture`), attached in on_train_begin


def _time_own_work(callback: Any, device: str, own: dict[int, float]) -> None:
    """Wrap the callback's working methods (before the run attaches them) to add their seconds per step."""

    def timed(inner: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _sync(device)
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                _sync(device)
                own[callback._step] = own.get(callback._step, 0.0) + time.perf_counter() - start

        return wrapper

    for owner, names in ((callback, OWN_WORK), (callback.capture, HOOKS)):
        for name in names:
            setattr(owner, name, timed(getattr(owner, name)))


def _run(loaded: LoadedModel, dataset: Any, folder: Path, steps: int, recorder: Path | None, own: dict[int, float]) -> list[float]:
    """One run of `steps` optimizer steps; each step's seconds (and the recorder's own, into `own`)."""
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from inspector.core.recorder.callback import RecorderCallback

    args = SFTConfig(
        output_dir=str(folder / "out"), max_steps=steps, per_device_train_batch_size=1, gradient_accumulation_steps=1,
        learning_rate=1e-5, seed=0, report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True,
        use_cpu=loaded.device == "cpu", dataloader_num_workers=0,
    )
    seconds: list[float] = []
    callbacks = [_timer(loaded.device, seconds)]  # first: its start is before the recorder's
    if recorder is not None:
        callback = RecorderCallback(recorder, steps=steps)
        _time_own_work(callback, loaded.device, own)
        callbacks.append(callback)
    model = copy.deepcopy(loaded.model)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=loaded.tokenizer, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    with contextlib.redirect_stdout(io.StringIO()):  # the audit's table: not the bench's output
        trainer.train()
    del trainer, model
    return seconds


def recorder_cost(
    loaded: LoadedModel,
    formatted: Sequence[FormattedExample],
    *,
    steps: int = STEPS,
    runs: int = RUNS,
    on_run: Callable[[str, list[float]], None] = lambda kind, seconds: None,
) -> RecorderCost:
    """The recorder's cost on this model and device (see the module's docstring)."""
    import statistics

    from inspector.core.labels.trl_bridge import prompt_completion_dataset
    from inspector.core.recorder.record_files import open_recording

    dataset = prompt_completion_dataset(formatted)
    times: dict[str, list[list[float]]] = {"without": [], "with": []}
    recorded: list[int] = []
    own: list[float] = []
    size = 0
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-bench-") as tmp:
        for r in range(runs):
            for kind in ("without", "with"):
                folder = Path(tmp) / f"{kind}-{r}"
                recording = folder / "recording" if kind == "with" else None
                mine: dict[int, float] = {}
                seconds = _run(loaded, dataset, folder, steps, recording, mine)
                own += [t for step, t in sorted(mine.items()) if step > 1]
                times[kind].append(seconds)
                on_run(kind, seconds)
                if recording is not None:
                    recorded = open_recording(recording).steps
                    size = sum(p.stat().st_size for p in recording.rglob("*") if p.is_file())
    steady = {k: [s for run in v for s in run[1:]] for k, v in times.items()}
    without, with_it = Spread.of(steady["without"]), Spread.of(steady["with"])
    return RecorderCost(
        model=loaded.name,
        device=loaded.device,
        steps_per_run=steps,
        runs=runs,
        without_s=without,
        with_s=with_it,
        first_step_without_s=statistics.median(run[0] for run in times["without"]),
        first_step_with_s=statistics.median(run[0] for run in times["with"]),
        own_s=Spread.of(own),
        recorded_steps=recorded,
        recorded_bytes=size,
        steps_percent=(with_it.median / without.median - 1) * 100 if without.median else float("nan"),
        own_percent=Spread.of(own).median / without.median * 100 if without.median else float("nan"),
    )


def format_recorder_cost(cost: RecorderCost) -> str:
    def spread(s: Spread) -> str:
        return f"{s.median:.4f} s per step (median; {s.min:.4f}–{s.max:.4f})"

    first = (cost.first_step_with_s / cost.first_step_without_s - 1) * 100 if cost.first_step_without_s else float("nan")
    return "\n".join([
        f"recorder cost on {cost.model} ({cost.device}): TRL's SFTTrainer, one example per step, {cost.steps_per_run} "
        f"steps per run, {cost.runs} runs of each kind, alternating",
        f"  without RecorderCallback:         {spread(cost.without_s)}",
        f"  with it, recording every step:    {spread(cost.with_s)}",
        f"  the medians differ by {cost.steps_percent:+.1f}% (the spreads above say how far a busy machine lets that be read)",
        f"  the recorder's own work in a step (hooks, copies, the file written): {cost.own_s.median * 1000:.1f} ms "
        f"(median; {cost.own_s.min * 1000:.1f}–{cost.own_s.max * 1000:.1f}) = {cost.own_percent:.1f}% of a step without it "
        f"(target under {cost.target_percent:g}%: {'met' if cost.met else 'NOT MET'})",
        f"  the first step of a run (with the recorder: the audit, the run's facts): {cost.first_step_with_s:.3f} s with, "
        f"{cost.first_step_without_s:.3f} s without ({first:+.0f}%, once per run)",
        f"  each run recorded steps {', '.join(map(str, cost.recorded_steps))}: {cost.recorded_bytes / 1024:.0f} KiB",
    ])
