#!/usr/bin/env python3
"""How long each lesson that trains takes live: its bursts and its demo run headless as
`causallm-inspect lesson N --json` runs them (`LessonRun.compute`), on one loaded model, timed.

    python3 scripts/lesson_times.py                  # measure every lesson that trains, print
    python3 scripts/lesson_times.py --write          # and write each one's `live:` front matter key
    python3 scripts/lesson_times.py --lessons 3,10   # only these (numbers or ids)
    python3 scripts/lesson_times.py --model PATH     # another model (default: the embedded Gemma 3 270M)

The key holds the wall seconds (the demo's part apart, as `demo`, where the lesson trains bursts
too), the model and machine they were measured on (`--on` names the machine, default "N-core
CPU" or the GPU's name; ", busy" is added where other programs used more than BUSY of the
machine's CPU time while the lesson ran (from /proc/stat, less this process's own), so that a
speaker reads those seconds as pessimistic) and the day. The app's lesson pane and `lesson N --plain` show it. Only
the front matter changes: the `live:` line is replaced, or added before the closing `---`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "live:"
BUSY = 0.25  # the share of the machine's CPU time other programs used above which it was busy
FENCE = "---"


def with_live(text: str, line: str) -> str:
    """The lesson file's text with its front matter's `live:` line replaced by `line` (or added last)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != FENCE or FENCE not in (x.strip() for x in lines[1:]):
        raise ValueError("the file has no front matter")
    end = next(i for i in range(1, len(lines)) if lines[i].strip() == FENCE)
    head = [x for x in lines[1:end] if not x.startswith(KEY)]
    return "\n".join([lines[0], *head, line, *lines[end:]])


def live_line(parts: dict[str, float], setup: str, day: datetime.date) -> str:
    """`live: {seconds: 35, setup: "...", date: 2026-12-07}`, with `demo` where the lesson trains bursts too."""
    seconds = max(1, round(sum(parts.values())))
    demo = f", demo: {max(1, round(parts['demo']))}" if "demo" in parts and len(parts) > 1 else ""
    quoted = setup.replace("\\", "\\\\").replace('"', '\\"')
    return f'{KEY} {{seconds: {seconds}{demo}, setup: "{quoted}", date: {day.isoformat()}}}'


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    return f"{cores()}-core {'Apple GPU' if device == 'mps' else 'CPU'}"


def cpu_seconds() -> tuple[float, float | None]:
    """The CPU time this process has used (all its threads), and the whole machine's (None where
    /proc/stat cannot be read)."""
    t = os.times()
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal: all but idle and iowait are busy
        machine = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        machine = None
    return t.user + t.system, machine


def others_share(before: tuple[float, float | None], after: tuple[float, float | None], wall: float) -> float | None:
    """The share of the machine's CPU time that other programs used between `before` and `after`."""
    if before[1] is None or after[1] is None or wall <= 0:
        return None
    others = (after[1] - before[1]) - (after[0] - before[0])
    return max(0.0, others / (wall * (os.cpu_count() or 1)))


def model_words(loaded) -> str:
    return "Gemma 3 270M" if loaded.source == "embedded" else Path(loaded.name).name or loaded.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write each lesson's live: key into its front matter")
    parser.add_argument("--lessons", default=None, metavar="LIST", help="comma-separated numbers or ids (default: every lesson that trains)")
    parser.add_argument("--model", default=None, help="the model (default: the embedded Gemma 3 270M)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the app's choice)")
    parser.add_argument("--on", default=None, help='the machine, as the lessons name it (default e.g. "2-core CPU")')
    options = parser.parse_args(argv)

    from inspector.cli import build_parser
    from inspector.cli.lesson import LessonRun
    from inspector.cli.options import check_data_early, load
    from inspector.cli.prepare import chosen_lessons
    from inspector.core.lessons.facts import trains
    from inspector.core.lessons.model import lessons_dir, load_lessons

    lessons = load_lessons()
    if options.lessons:
        chosen = chosen_lessons(options.lessons, lessons)
    else:
        chosen = [(i + 1, lesson) for i, lesson in enumerate(lessons) if trains(lesson)]
    common = [*(["--model", options.model] if options.model else []), *(["--device", options.device] if options.device else [])]
    args = build_parser().parse_args(["lesson", "1", "--json", *common])
    examples = check_data_early(args)
    loaded, markers = load(args)
    import trl  # noqa: F401  (imported once before the clock runs, as the app has by the time a lesson trains)

    setup = f"{model_words(loaded)}, {options.on or machine(loaded.device)}"
    day = datetime.date.today()
    for number, lesson in chosen:
        if not trains(lesson):
            print(f"lesson {number} ({lesson.id}): trains nothing, no live time to measure", flush=True)
            continue
        run = LessonRun(args, lesson, loaded, markers, examples)
        cpu = cpu_seconds()
        start = time.perf_counter()
        with run.lab:
            parts = run.compute()
        total = time.perf_counter() - start
        others = others_share(cpu, cpu_seconds(), total)
        busy = not loaded.device.startswith(("cuda", "mps")) and others is not None and others > BUSY
        line = live_line(parts, setup + (", busy" if busy else ""), day)
        detail = ", ".join(f"{k} {v:.1f} s" for k, v in parts.items())
        said = "" if others is None else f"; other programs used {others:.0%} of the CPU"
        print(f"lesson {number} ({lesson.id}): {sum(parts.values()):.1f} s ({detail}; {total:.1f} s with the views{said})",
              flush=True)
        if options.write:
            path = Path(str(lessons_dir())) / lesson.source
            path.write_text(with_live(path.read_text(encoding="utf-8"), line), encoding="utf-8")
            print(f"  wrote {line}", flush=True)
    if options.write:
        load_lessons()  # every lesson still reads
    return 0


if __name__ == "__main__":
    from inspector.core.errors import InspectorError

    try:
        sys.exit(main())
    except InspectorError as exc:
        print(f"lesson_times.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
