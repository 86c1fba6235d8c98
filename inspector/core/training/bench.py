"""The benchmark behind `causallm-inspect bench`: where a training step's time goes.

For the current model and device, in one run: the machine's own fp32 matmul peak, the warm
load time of the model, and for each strategy and speed option the seconds per optimizer
step split into forward, backward (with gradient clipping) and optimizer, tokens/s, and the
achieved GFLOP/s (matmul FLOPs of one step counted by torch's FlopCounterMode, divided by
the median step time). Steps are timed inside the real Trainer/SFTTrainer bursts the app
runs, through callbacks and forward hooks; the first step of each run is a warm-up and not
counted.

`memory_bench` (`causallm-inspect bench --memory`) instead follows resident memory through
what the app's `a` and `x` do: idle after the load, each strategy's burst on its own copy
(the peak during it and what stays after), a continued burst, and a reset.
"""

from __future__ import annotations

import copy
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.labels.strategies import STRATEGIES
from inspector.core.training.burst import DEFAULT_LORA_LEARNING_RATE, BurstSettings
from inspector.core.training.session import TrainingSession

if TYPE_CHECKING:
    from inspector.core.models import LoadedModel


# name -> (description, settings change). "default" is what bursts use unless told otherwise.
OPTIONS: dict[str, tuple[str, dict]] = {
    "default": ("fused AdamW, all weights, one example per step", {}),
    "foreach-adamw": ("torch's default (foreach) AdamW instead of fused", {"optimizer": "foreach"}),
    "frozen-embedding": ("the tied embedding / LM head matrix frozen", {"train_embeddings": False}),
    "lora": ("LoRA adapters (rank 16, all linear layers) through peft", {"lora": True}),
    "head-trained-only": ("LM head only at trained positions (copy/mask; TRL does it already)", {"head_trained_only": True}),
    "padded-batch": ("all examples padded into one step (one step = one epoch)", {"batching": "padded"}),
    "threads-1": ("one torch thread", {"threads": 1}),
    "compile": ("torch.compile of the model", {"compile": True}),
}


@dataclass
class Spread:
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values)) if values else cls(0.0, 0.0, 0.0)


@dataclass
class BenchResult:
    strategy: str
    option: str
    step_s: Spread
    forward_s: Spread
    backward_s: Spread
    optimizer_s: Spread
    tokens_per_step: float
    tokens_per_s: float
    gflop_per_step: float
    gflops: float
    holdout: str
    steps: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchReport:
    device: str
    model: str
    threads: int
    peak_gflops: float
    warm_load_s: float
    help_s: float
    first_paint_s: float = float("nan")
    results: list[BenchResult] = field(default_factory=list)
    torch_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["results"] = [r.to_dict() for r in self.results]
        return d


def matmul_peak_gflops(device: str = "cpu", sizes: Sequence[int] = (2048, 4096), repeats: int = 3) -> float:
    """The best fp32 GFLOP/s of square matmuls on this device: the ceiling to compare with."""
    import torch

    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        a @ b  # warm-up
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            a @ b
            _sync(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def help_seconds() -> float:
    """Wall time of `causallm-inspect --help` in a fresh interpreter."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "inspector", "--help"], capture_output=True, check=True)
    return time.perf_counter() - t


# The process ends itself once the frame is painted: the model's load (a conversion, on a
# fresh machine) has started behind it and is not what is measured.
_FIRST_PAINT = """
import asyncio, os, time, psutil
from inspector.app import InspectorApp
T0 = psutil.Process().create_time()
async def main():
    app = InspectorApp(model=MODEL)
    async with app.run_test(size=(120, 40)) as pilot:
        def painted():
            print("PAINT", time.time() - T0, flush=True)
            os._exit(0)
        app.call_after_refresh(painted)
        await asyncio.sleep(120)  # painted() ends the process
asyncio.run(main())
"""


def first_paint_seconds(model: str | None) -> float:
    """Seconds from the start of a fresh process to the app's first painted frame."""
    code = _FIRST_PAINT.replace("MODEL", repr(model))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    return next((float(line.split()[1]) for line in out.splitlines() if line.startswith("PAINT")), float("nan"))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _phase_timer(device: str) -> Any:
    from transformers import TrainerCallback

    class PhaseTimer(TrainerCallback):
        """Marks the phases of each optimizer step; forward time comes from module hooks."""

        def __init__(self) -> None:
            self.rows: list[tuple[float, float, float, float]] = []  # step, forward, backward, optimizer
            self.forward = 0.0
            self._fwd_start = 0.0

        def hook(self, model: Any) -> None:
            model.register_forward_pre_hook(self._pre)
            model.register_forward_hook(self._post)

        def _pre(self, *args: Any) -> None:
            _sync(device)
            self._fwd_start = time.perf_counter()

        def _post(self, *args: Any) -> None:
            _sync(device)
            self.forward += time.perf_counter() - self._fwd_start

        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            _sync(device)
            self.forward = 0.0
            self.t0 = time.perf_counter()

        def on_pre_optimizer_step(self, args, state, control, **kw):  # noqa: ANN001
            _sync(device)
            self.t1 = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kw):  # noqa: ANN001
            _sync(device)
            self.t2 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            _sync(device)
            t3 = time.perf_counter()
            self.rows.append((t3 - self.t0, self.forward, self.t1 - self.t0 - self.forward, self.t2 - self.t1))

    return PhaseTimer()


def step_flops(session: TrainingSession) -> float:
    """Matmul FLOPs of one forward+backward of one step of this session (first batch)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    trainer = session._trainer
    batch = next(iter(trainer.get_train_dataloader()))
    batch = {k: v.to(session.model.device) for k, v in batch.items() if hasattr(v, "to")}
    model = trainer.model
    with FlopCounterMode(display=False) as counter:
        loss = trainer.compute_loss(model, batch)
        loss.backward()
    model.zero_grad(set_to_none=True)
    del loss
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return float(counter.get_total_flops())


def run_one(
    base_model: Any,
    tokenizer: Any,
    examples: Sequence[FormattedExample],
    strategy: str,
    option: str,
    settings: BurstSettings,
    device: str,
    lora_learning_rate: float | None = None,
) -> BenchResult:
    desc, change = OPTIONS[option]
    if option == "head-trained-only" and strategy == "trl":
        change = {}
        note = "TRL's trainer computes the LM head at trained positions only, always"
    else:
        note = ""
    model = copy.deepcopy(base_model)
    s = replace(settings, **change)
    if change.get("lora") and lora_learning_rate is not None:
        s = replace(s, learning_rate=lora_learning_rate)
    timer = _phase_timer(device)
    with TrainingSession(model, tokenizer, examples, strategy, s, device=device) as session:
        result = session.run(extra_callbacks=[timer], before_train=lambda m: timer.hook(m))
        flops = step_flops(session)
        per_step_tokens = result.input_tokens / max(1, len(result.steps))
    rows = timer.rows[1:] or timer.rows  # the first step warms caches and allocators up
    step = Spread.of([r[0] for r in rows])
    del model
    return BenchResult(
        strategy=strategy,
        option=option,
        step_s=step,
        forward_s=Spread.of([r[1] for r in rows]),
        backward_s=Spread.of([r[2] for r in rows]),
        optimizer_s=Spread.of([r[3] for r in rows]),
        tokens_per_step=per_step_tokens,
        tokens_per_s=per_step_tokens / step.median if step.median else 0.0,
        gflop_per_step=flops / 1e9,
        gflops=flops / 1e9 / step.median if step.median else 0.0,
        holdout=result.epochs[-1].holdout if result.epochs else "",
        steps=len(timer.rows),
        note=note,
    )


def run_bench(
    loaded: LoadedModel,
    examples: Sequence[FormattedExample],
    *,
    strategies: Sequence[str] = STRATEGIES,
    options: Sequence[str] = tuple(OPTIONS),
    settings: BurstSettings = BurstSettings(),
    lora_learning_rate: float | None = DEFAULT_LORA_LEARNING_RATE,
    warm_load: Callable[[], float] | None = None,
    on_result: Callable[[BenchResult], None] | None = None,
) -> BenchReport:
    import torch

    report = BenchReport(
        device=loaded.device,
        model=loaded.name,
        threads=torch.get_num_threads(),
        peak_gflops=matmul_peak_gflops(loaded.device),
        warm_load_s=warm_load() if warm_load else loaded.load_seconds,
        help_s=help_seconds(),
        first_paint_s=first_paint_seconds(None),  # the model loads after the first frame anyway
        torch_version=torch.__version__,
    )
    for strategy in strategies:
        for option in options:
            r = run_one(
                loaded.model, loaded.tokenizer, examples, strategy, option, settings, loaded.device, lora_learning_rate
            )
            report.results.append(r)
            if on_result:
                on_result(r)
    return report


def format_report(report: BenchReport) -> str:
    lines = [
        f"model: {report.model}   device: {report.device}   torch {report.torch_version}, {report.threads} threads",
        f"fp32 matmul peak: {report.peak_gflops:.0f} GFLOP/s   warm load: {report.warm_load_s:.1f} s   "
        f"--help: {report.help_s:.2f} s   first paint: {report.first_paint_s:.2f} s",
        "",
        f"{'strategy':<8} {'option':<18} {'step s (min-max)':<20} {'fwd':>6} {'bwd':>6} {'opt':>6} "
        f"{'tok/s':>7} {'GFLOP/s':>8} {'% peak':>7}  held-out",
    ]
    for r in report.results:
        d = 2 if r.step_s.median >= 0.1 else 4
        span = f"{r.step_s.median:.{d}f} ({r.step_s.min:.{d}f}-{r.step_s.max:.{d}f})"
        pct = 100 * r.gflops / report.peak_gflops if report.peak_gflops else 0
        lines.append(
            f"{r.strategy:<8} {r.option:<18} {span:<20} {r.forward_s.median:>6.{d}f} {r.backward_s.median:>6.{d}f} "
            f"{r.optimizer_s.median:>6.{d}f} {r.tokens_per_s:>7.1f} {r.gflops:>8.1f} {pct:>6.1f}%  {r.holdout!r}"
            + (f"  ({r.note})" if r.note else "")
        )
    return "\n".join(lines)


def data_scale_bench(
    rows: int, model: str | None, workdir: Path, *, step: int | None = None, cores: int | None = None
) -> dict[str, Any]:
    """`inspect-data` over a generated JSONL of `rows` conversations, in a child process:
    rows/s and the child's peak memory with one process, at `rows` and at a tenth of it (flat
    memory means the two peaks are close), then rows/s at `rows` with every core
    (`--num-proc`, default all of them), whose report must be the same."""
    import json
    import random
    import resource

    from inspector.core.data.readers import cores as all_cores

    rng = random.Random(0)
    words = ["dog", "water", "hello", "tree", "mother", "good", "cat", "house", "sun", "book"]
    procs = cores or all_cores()

    def write(n: int) -> Path:
        path = workdir / f"data-{n}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for i in range(n):
                w = rng.choice(words)
                msgs = [{"role": "user", "content": f'How do you say "{w}" in Spanish? ({i})'}]
                if i % 97:  # about 1% of the rows have no answer: the report must find them
                    msgs.append({"role": "assistant", "content": f"{w} en español {i}"})
                f.write(json.dumps({"messages": msgs}) + "\n")
        return path

    def measure(path: Path, n: int, num_proc: int) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "inspector", "inspect-data", str(path), "--json", "--num-proc", str(num_proc)]
        if model:
            cmd += ["--model", model]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode not in (0, 1):
            raise RuntimeError(proc.stderr[-500:])
        report = json.loads(proc.stdout)
        return {
            "processes": num_proc,
            "seconds": seconds,
            "rows_per_s": n / seconds,
            # RUSAGE_CHILDREN keeps the largest child so far: runs go from small to large.
            "peak_rss_mb": max(peak_kb, before) / 1024,
            "problems": report["problem_counts"],
            "report": {k: report[k] for k in ("problems", "strategies", "tokens", "examples", "row_kinds")},
        }

    out: dict[str, Any] = {"rows": rows, "cores": procs}
    for n in (max(1, rows // 10), rows):
        path = write(n)
        one = out[str(n)] = measure(path, n, 1)
        if n == rows:
            many = measure(path, n, procs)
            many.pop("peak_rss_mb")  # the workers' peaks are not this child's: not comparable
            many["same_report"] = many.pop("report") == one["report"]
            many["speedup"] = many["rows_per_s"] / out[str(n)]["rows_per_s"]
            out["all_cores"] = many
        one.pop("report")
        path.unlink()
    return out


# Memory targets (issue 11), in MB of 1024 x 1024 bytes: with every strategy trained and
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
