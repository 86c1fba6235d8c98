"""`causallm-inspect bench --memory`: resident memory through what the app's `a` and `x` do:
idle after the load, each strategy's burst on its own copy (the peak during it and what
stays after), a continued burst, and a reset, against the memory targets below.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.labels.strategies import STRATEGIES
from inspector.core.training.burst import BurstSettings
from inspector.core.training.session import TrainingSession

# Memory targets, in MB of 1024 x 1024 bytes: with every strategy trained and
# idle at most 6.5 GB, at most 9 GB during a burst, and a reset gives back all but 0.5 GB.
MEMORY_TARGETS = {"after_all_mb": 6.5 * 1024, "peak_mb": 9 * 1024, "reset_over_idle_mb": 0.5 * 1024}


@dataclass
class MemoryStage:
    stage: str  # "copy burst", "mask burst", ..., "copy continued"
    strategy: str
    continued: bool  # a second burst of a session: its optimizer state read back from disk
    peak_mb: float  # highest RSS sampled during the burst
    after_mb: float  # RSS once the burst has ended (the session idle, its optimizer state on disk)
    seconds: float  # wall time of the burst, held-out answers and the optimizer's file included
    holdout: str  # held-out answer after the burst's last epoch


@dataclass
class MemoryReport:
    model: str
    device: str
    epochs: int
    idle_mb: float  # after the load, the untrained model's predictions and TRL's labels made
    stages: list[MemoryStage] = field(default_factory=list)
    after_all_mb: float = 0.0  # after every strategy's first burst, idle
    peak_mb: float = 0.0  # the highest stage peak
    process_peak_mb: float = 0.0  # ru_maxrss: the process's own peak (the run's, in a fresh process)
    reset_mb: float = 0.0  # after every session is closed and dropped (the app's x)
    targets: dict[str, float] = field(default_factory=lambda: dict(MEMORY_TARGETS))

    @property
    def met(self) -> dict[str, bool]:
        t = self.targets
        return {
            "after_all": self.after_all_mb <= t["after_all_mb"],
            "peak": self.peak_mb <= t["peak_mb"],
            "reset": self.reset_mb - self.idle_mb <= t["reset_over_idle_mb"],
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["met"] = self.met
        return d


def memory_bench(
    loaded: Any,
    examples: Sequence[FormattedExample],
    *,
    strategies: Sequence[str] = STRATEGIES,
    settings: BurstSettings = BurstSettings(),
    on_stage: Callable[[str, float], None] | None = None,
) -> MemoryReport:
    """RSS through the app's `a` (each strategy's burst on its own copy of the model, in
    turn), one more burst of the first strategy (continued from its optimizer file), and `x`
    (every session closed and dropped). Run it in a fresh process for `process_peak_mb`."""
    from inspector.core.labels.strategies import label_examples
    from inspector.core.training.memory import PeakSampler, peak_rss_mb, release_memory, rss_mb
    from inspector.core.training.predictions import prediction_input, teacher_forced

    def mark(name: str, mb: float) -> None:
        if on_stage:
            on_stage(name, mb)

    # What the app has done once it is idle after the load: the first example's labels
    # (TRL's made with an SFTTrainer around the model) and its untrained predictions.
    tok = loaded.tokenizer
    label_examples("trl", list(examples[:1]), tok, loaded.model, max_length=loaded.max_length)
    ids, _ = prediction_input(examples[0], tok, loaded.max_length)
    teacher_forced(loaded.model, tok, ids)
    release_memory()
    report = MemoryReport(model=loaded.name, device=loaded.device, epochs=settings.epochs, idle_mb=rss_mb())
    mark("idle", report.idle_mb)

    sessions: dict[str, TrainingSession] = {}

    def burst(strategy: str) -> None:
        continued = strategy in sessions
        start = time.perf_counter()
        with PeakSampler() as sampler:
            if not continued:
                sessions[strategy] = TrainingSession.on_a_copy(loaded, examples, strategy, settings)
            result = sessions[strategy].run(settings.epochs)
        seconds = time.perf_counter() - start
        stage = MemoryStage(
            stage=f"{strategy} {'continued' if continued else 'burst'}",
            strategy=strategy,
            continued=continued,
            peak_mb=sampler.peak_mb,
            after_mb=rss_mb(),
            seconds=seconds,
            holdout=result.epochs[-1].holdout if result.epochs else "",
        )
        report.stages.append(stage)
        mark(stage.stage, stage.after_mb)

    for strategy in strategies:
        burst(strategy)
    report.after_all_mb = report.stages[-1].after_mb
    burst(strategies[0])
    for strategy in list(sessions):
        sessions.pop(strategy).close()
    release_memory()
    report.reset_mb = rss_mb()
    mark("reset", report.reset_mb)
    report.peak_mb = max(s.peak_mb for s in report.stages)
    report.process_peak_mb = peak_rss_mb()
    return report


def format_memory_report(report: MemoryReport) -> str:
    t, met = report.targets, report.met
    lines = [
        f"model: {report.model}   device: {report.device}   {report.epochs} epochs per burst   resident memory, MB",
        "",
        f"{'stage':<16} {'peak':>7} {'after':>7} {'seconds':>8}  held-out",
        f"{'idle':<16} {'':>7} {report.idle_mb:>7.0f} {'':>8}  (after the load, as the app is before training)",
    ]
    for s in report.stages:
        lines.append(f"{s.stage:<16} {s.peak_mb:>7.0f} {s.after_mb:>7.0f} {s.seconds:>8.1f}  {s.holdout!r}")
    lines.append(f"{'reset':<16} {'':>7} {report.reset_mb:>7.0f} {'':>8}  (every session closed and dropped)")
    lines.append(f"process peak (ru_maxrss): {report.process_peak_mb:.0f} MB")
    lines.append("")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    reset_limit = report.idle_mb + t["reset_over_idle_mb"]
    lines += [
        f"{'target':<46} {'limit':>7} {'measured':>9}",
        f"{'every strategy trained, idle':<46} {t['after_all_mb']:>7.0f} {report.after_all_mb:>9.0f}  "
        + verdict(met["after_all"]),
        f"{'peak during a burst':<46} {t['peak_mb']:>7.0f} {report.peak_mb:>9.0f}  " + verdict(met["peak"]),
        f"{'reset: idle + ' + format(t['reset_over_idle_mb'], '.0f'):<46} {reset_limit:>7.0f} {report.reset_mb:>9.0f}  "
        + verdict(met["reset"]),
    ]
    return "\n".join(lines)
