#!/usr/bin/env python3
"""The app's keyboard soak, longer than the suite runs it: more keys, more seeds.

    python scripts/soak.py                           # seeds 1-5, 5000 keys each, on the tiny model
    python scripts/soak.py --seeds 10 --presses 20000
    python scripts/soak.py --seed 7                  # one seed again (a failure names its seed)
    python scripts/soak.py --model /path/to/model    # another model (the tiny one is made on the spot)

Each seed is a random walk of key presses over every lesson and view (tests/ui/soak.py),
with bursts, demos and animations running; then the app must answer a key and, left alone,
handle no messages and tick no timer of its own. Exits 1 if a seed found a problem.
Run it with the project's environment (`python3 run.py test` made .venv/):
`.venv/bin/python scripts/soak.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "ui")]


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="run seeds 1..N (default 5)")
    p.add_argument("--seed", type=int, action="append", help="run this seed (repeatable); overrides --seeds")
    p.add_argument("--presses", type=int, default=5000, help="keys per seed (default 5000)")
    p.add_argument("--model", help="a model folder (default: the suite's tiny model, made in a temporary folder)")
    return p.parse_args(argv)


async def one(model: str, seed: int, presses: int) -> list[str]:
    import soak
    from ui_helpers import FAST_LR, DispatchCounter

    from inspector.app import InspectorApp

    counter = DispatchCounter()
    uninstall = counter.install()
    started = time.monotonic()

    def progress(report: soak.SoakReport) -> None:
        print(f"  seed {seed}: {report.presses} keys, {time.monotonic() - started:.0f} s", flush=True)

    try:
        app = InspectorApp(model=model, device="cpu", learning_rate=FAST_LR, runs="live")
        report, settled = await soak.soak(app, counter, seed, presses, progress)
    except AssertionError as exc:
        return [str(exc)]
    finally:
        uninstall()
    print(
        f"  {report.summary()}; a key answered in {settled['answered_s']:.2f} s; "
        f"idle: {sum(settled['idle_counts'].values())} messages, {settled['idle_cpu_s']:.3f} s CPU",
        flush=True,
    )
    return soak.check(report, settled)


def main(argv: list[str]) -> int:
    args = parse(argv)
    seeds = args.seed or list(range(1, args.seeds + 1))
    with tempfile.TemporaryDirectory(prefix="causallm-soak-") as tmp:
        os.environ["CAUSALLM_INSPECT_CACHE"] = str(Path(tmp) / "cache")  # leave the user's cache alone
        import torch

        torch.set_num_threads(1)  # as in the suite: the tiny model gains nothing from threads
        model = args.model
        if model is None:
            import tiny_model

            model = str(tiny_model.build(Path(tmp) / "tiny"))
        failed = 0
        for seed in seeds:
            print(f"seed {seed}: {args.presses} keys on {model}", flush=True)
            problems = asyncio.run(one(model, seed, args.presses))
            for line in problems:
                print(f"  PROBLEM {line}", flush=True)
            failed += bool(problems)
    print(f"{len(seeds) - failed} of {len(seeds)} seeds clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
