"""`bench --batch-rows N`: the batch view on a large `trl sft` config, cold and then from datasets' cache.

A generated N-row prompt/completion JSONL and a YAML config (bfd packing, accumulation) are
written to a temporary folder, which is also datasets' cache for the run. The first build
tokenizes, labels and packs (TRL's preparation, and the provenance packing); later builds
read all of it from the cache, and the target is any step shown in under 5 s beyond the
model load: the first, the middle and the last step of the epoch are timed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

TARGET_S = 5.0
WORDS = ("dog", "water", "hello", "tree", "mother", "good", "cat", "house", "book", "sun")


def write_config(folder: Path, rows: int) -> Path:
    """An N-row prompt/completion JSONL and the `trl sft` YAML config that trains on it."""
    data = folder / "rows.jsonl"
    with data.open("w", encoding="utf-8") as f:
        for i in range(rows):
            word = WORDS[i % len(WORDS)]
            answer = " ".join([word] * (1 + i % 7))
            f.write(json.dumps({"prompt": f"Row {i}: how do you say {word} in Spanish?", "completion": f" {answer}"}) + "\n")
    config = folder / "sft.yaml"
    config.write_text(
        "datasets:\n"
        "  - path: json\n"
        f"    data_files: {data}\n"
        "packing: true\n"
        "packing_strategy: bfd\n"
        "max_length: 512\n"
        "per_device_train_batch_size: 4\n"
        "gradient_accumulation_steps: 4\n"
        "seed: 1\n",
        encoding="utf-8",
    )
    return config


def batch_scale_bench(rows: int, loaded: Any, folder: Path, device: str = "cpu") -> dict[str, Any]:
    """Seconds to show steps of a `rows`-row config: cold (preparing), then warm (datasets' cache)."""
    import datasets

    from inspector.core.batches.setup import config_setup
    from inspector.core.batches.steps import inspect_step
    from inspector.core.batches.trainer import sft_trainer

    config = write_config(folder, rows)
    own_cache = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = folder / "datasets-cache"  # read by load_dataset at each call
    out: dict[str, Any] = {"rows": rows, "target_s": TARGET_S, "runs": []}
    try:
        last = None
        for label, step in (("cold", 1), ("warm", 1), ("warm", "middle"), ("warm", "last")):
            start = time.perf_counter()
            with _tmp(folder) as tmp:
                setup = config_setup(str(config), {}, output_dir=tmp, device=device)
                with sft_trainer(loaded.model, loaded.tokenizer, setup) as trainer:
                    built = time.perf_counter() - start
                    n = step if isinstance(step, int) else None
                    if n is None:
                        n = max(1, last // 2) if step == "middle" else last
                    view = inspect_step(trainer, setup, step=n)
                    last = view.steps_per_epoch
            seconds = time.perf_counter() - start
            out["runs"].append(
                {
                    "cache": label,
                    "step": n,
                    "seconds": round(seconds, 2),
                    "build_s": round(built, 2),
                    "step_s": round(seconds - built, 2),
                    "steps_per_epoch": view.steps_per_epoch,
                    "prepared_rows": view.prepared_rows,
                    "within_target": label == "cold" or seconds < TARGET_S,
                }
            )
    finally:
        datasets.config.HF_DATASETS_CACHE = own_cache
    warm = [r["seconds"] for r in out["runs"] if r["cache"] == "warm"]
    out["warm_max_s"] = max(warm)
    out["met"] = max(warm) < TARGET_S
    return out


def _tmp(folder: Path) -> Any:
    import tempfile

    return tempfile.TemporaryDirectory(dir=folder, prefix="output-")


def format_batch_bench(result: dict[str, Any], model: str) -> str:
    lines = [f"batch view on a {result['rows']:,}-row trl sft config (bfd packing, max_length 512), model {model}:"]
    for r in result["runs"]:
        lines.append(
            f"   {r['cache']:<4} step {r['step']:>6} of {r['steps_per_epoch']}: {r['seconds']:6.2f} s "
            f"(config, dataset and SFTTrainer {r['build_s']:.2f} s, then the step {r['step_s']:.2f} s), "
            f"{r['prepared_rows']:,} packed sequences"
        )
    verdict = "met" if result["met"] else "NOT met"
    lines.append(f"   target: any step from the cache in under {result['target_s']:.0f} s beyond the model load: {verdict} "
                 f"(slowest {result['warm_max_s']:.2f} s)")
    return "\n".join(lines)
