"""`causallm-inspect bench --profile`: the top operators of one training step (torch.profiler).

One burst of the given strategy and settings runs on a copy of the model; its second step
(the first warms caches and allocators up) is recorded from `on_step_begin` to `on_step_end`
(forward, backward, clipping and the optimizer), and the operators are listed by their own
CPU time, so that the next lever is in plain sight.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.training.burst import BurstSettings
from inspector.core.training.session import TrainingSession


@dataclass(frozen=True)
class OperatorTime:
    name: str
    self_s: float  # the operator's own time, its children's excluded
    total_s: float  # with its children
    calls: int


@dataclass
class StepProfile:
    strategy: str
    option: str  # "stock" or "default"
    step: int
    step_s: float  # the recorded step's wall time (the profiler adds a little)
    operators: list[OperatorTime]


def _recorder(step: int) -> Any:
    import time

    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    class StepRecorder(TrainerCallback):
        def __init__(self) -> None:
            self.prof: Any = None
            self.seconds = 0.0
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            if state.global_step + 1 == step:
                self.prof = profile(activities=[ProfilerActivity.CPU])
                self.prof.__enter__()
                self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            if state.global_step == step and self.prof is not None:
                self.seconds = time.perf_counter() - self._start
                self.prof.__exit__(None, None, None)
                control.should_training_stop = True
            return control

    return StepRecorder()


def profile_step(
    model: Any,
    tokenizer: Any,
    examples: Sequence[FormattedExample],
    strategy: str,
    settings: BurstSettings,
    *,
    device: str = "cpu",
    step: int = 2,
    top: int = 15,
) -> StepProfile:
    """Profile step `step` of a burst on a copy of `model`: its `top` operators by own time."""
    recorder = _recorder(step)
    with TrainingSession(copy.deepcopy(model), tokenizer, examples, strategy, settings, device=device) as session:
        session.run(extra_callbacks=[recorder])
    events = recorder.prof.key_averages() if recorder.prof is not None else []
    ops = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return StepProfile(
        strategy=strategy,
        option="stock" if settings.stock else "default",
        step=step,
        step_s=recorder.seconds,
        operators=[OperatorTime(e.key, e.self_cpu_time_total / 1e6, e.cpu_time_total / 1e6, e.count) for e in ops],
    )


def format_profile(p: StepProfile) -> str:
    lines = [
        f"{p.strategy} {p.option}: step {p.step}, {p.step_s:.2f} s under the profiler",
        f"  {'operator':<58} {'self s':>7} {'total s':>8} {'calls':>6}",
    ]
    for op in p.operators:
        lines.append(f"  {op.name[:58]:<58} {op.self_s:>7.3f} {op.total_s:>8.3f} {op.calls:>6}")
    return "\n".join(lines)
