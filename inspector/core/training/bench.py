"""The benchmark behind `causallm-inspect bench`: where a training step's time goes.

For the current model and device, in one run: the machine's own fp32 matmul peak, the warm
load time of the model, and for each strategy and speed option the seconds per optimizer
step split into forward, backward (with gradient clipping) and optimizer, tokens/s, and the
achieved GFLOP/s (matmul FLOPs of one step counted by torch's FlopCounterMode, divided by
the median step time). Steps are timed inside the real Trainer/SFTTrainer bursts the app
runs, through callbacks and forward hooks; the first step of each run is a warm-up and not
counted.

Each strategy's `stock` row is the plain Trainer / SFTTrainer as the article runs them; every
other row carries its speed-up over it and, where it trains the same steps, the largest
relative difference of a step's loss from it.

`bench_memory.memory_bench` (`causallm-inspect bench --memory`) follows resident memory
through the app's bursts instead; `profile.profile_step` (`bench --profile`) lists the top
operators of one step.
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
    "stock": ("the plain Trainer / SFTTrainer as the article runs them", {"stock": True}),
    "default": ("the fast path: fused AdamW with clipping inside, tied gradient in one buffer", {}),
    "foreach-adamw": ("torch's default (foreach) AdamW instead of fused", {"optimizer": "foreach"}),
    "frozen-embedding": ("the tied embedding / LM head matrix frozen", {"train_embeddings": False}),
    "lora": ("LoRA adapters (rank 16, all linear layers) through peft", {"lora": True}),
    "head-trained-only": ("LM head only at trained positions (copy/mask): other sums", {"head_trained_only": True}),
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
    losses: list[float] = field(default_factory=list)  # every step's loss, the warm-up's included
    speedup_vs_stock: float | None = None  # the stock row's median step over this one's
    max_loss_diff_vs_stock: float | None = None  # largest relative difference of a step's loss, same steps only

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
        note = "not for trl: TRL's fused LM head computes its own loss"
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
        losses=[log.loss for log in result.steps],
    )


def compare_with_stock(results: Sequence[BenchResult]) -> None:
    """Give each row its speed-up over its strategy's `stock` row and, where both trained the
    same steps, the largest relative difference of a step's loss."""
    stock = {r.strategy: r for r in results if r.option == "stock"}
    for r in results:
        base = stock.get(r.strategy)
        if base is None or r is base:
            continue
        if r.step_s.median > 0:
            r.speedup_vs_stock = base.step_s.median / r.step_s.median
        if len(r.losses) == len(base.losses) and r.losses:
            r.max_loss_diff_vs_stock = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(r.losses, base.losses))


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
    # The stock row runs right before the default one, so that both see the same load.
    ordered = sorted(options, key=lambda o: {"stock": 0, "default": 1}.get(o, 2))
    for strategy in strategies:
        for option in ordered:
            r = run_one(
                loaded.model, loaded.tokenizer, examples, strategy, option, settings, loaded.device, lora_learning_rate
            )
            report.results.append(r)
            compare_with_stock(report.results)
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
        f"{'tok/s':>7} {'GFLOP/s':>8} {'% peak':>7} {'x stock':>7} {'loss diff':>9}  held-out",
    ]
    for r in report.results:
        d = 2 if r.step_s.median >= 0.1 else 4
        span = f"{r.step_s.median:.{d}f} ({r.step_s.min:.{d}f}-{r.step_s.max:.{d}f})"
        pct = 100 * r.gflops / report.peak_gflops if report.peak_gflops else 0
        speedup = f"{r.speedup_vs_stock:.2f}" if r.speedup_vs_stock is not None else ""
        diff = f"{r.max_loss_diff_vs_stock:.1e}" if r.max_loss_diff_vs_stock is not None else ""
        lines.append(
            f"{r.strategy:<8} {r.option:<18} {span:<20} {r.forward_s.median:>6.{d}f} {r.backward_s.median:>6.{d}f} "
            f"{r.optimizer_s.median:>6.{d}f} {r.tokens_per_s:>7.1f} {r.gflops:>8.1f} {pct:>6.1f}% {speedup:>7} "
            f"{diff:>9}  {r.holdout!r}"
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
