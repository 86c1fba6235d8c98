"""`causallm-inspect prepare`, its core: record a talk. Run every burst and the lessons' demos
that train or make HF trainers once through the Lab, live, as the app would run them, and
store what they report for a replay. It sits above the Lab (it drives one), the run store
(`core.runs.store`) below it; the command reaches the store only through `ready_store`.

The bursts are the Lab's own (`Lab.burst`, each strategy on a fresh copy of the untrained
model, in the Lab's turn markers and training rows); what a replay shows of them (per-step
losses and seconds, the held-out answers, the teacher-forced rows of the watched texts
after every epoch) is what the Lab's live source recorded (`Lab.epoch_rows`). `store` only keeps the files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.core.runs import store
from inspector.core.training.burst import DEFAULT_SEED, BurstSettings

if TYPE_CHECKING:
    from inspector.core.lab.lab import Lab
    from inspector.core.lab.sources import StepProgress
    from inspector.core.lessons.model import Lesson
    from inspector.core.training.burst import EpochLog

Progress = Callable[[str], None]


def ready_store() -> Path:
    """The folder the runs are stored in, checked writable now (before minutes of training, not after)."""
    from inspector.core.models import writable_folder

    folder = store.store_dir()
    writable_folder(folder)
    return folder


def prepare_runs(
    lab: Lab,
    strategies: Sequence[str],
    settings: BurstSettings,
    *,
    texts: Sequence[str] = (),
    progress: Progress = lambda msg: None,
) -> list[store.PreparedRun]:
    """Each strategy's live burst of `settings` through the lab, stored. After every epoch the
    teacher-forced rows of the held-out text and of each of `texts` are stored with it, so a
    replay can show them for any of them. The lab is reset after each strategy (its copy freed)."""
    if lab.in_place:
        raise RuntimeError("prepare trains copies: give it a lab that does not train in place")
    versions = store.library_versions()
    fingerprint = store.model_fingerprint(lab.model)
    held_out = lab.predicted_text()
    targets = list(dict.fromkeys([held_out, *texts]))
    for text in targets:
        lab.watch(text)
    runs = []
    for strategy in strategies:
        progress(f"{strategy}: training {settings.epochs} epochs")
        step_seconds: list[float] = []
        elapsed = [0.0]

        def on_step(p: StepProgress, step_seconds: list[float] = step_seconds, elapsed: list[float] = elapsed) -> None:
            step_seconds.append(p.elapsed - elapsed[0])
            elapsed[0] = p.elapsed

        def on_epoch(log: EpochLog, strategy: str = strategy) -> None:
            progress(f"{strategy}: epoch {log.epoch}, loss {log.loss:.4f}, held-out {log.holdout!r}")

        result = lab.burst(strategy, settings, on_step=on_step, on_epoch=on_epoch,
                           tell=lambda text, severity: progress(text))
        assert result is not None  # live: a burst always reports
        predictions: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for text in targets:
            for epoch, rows in lab.epoch_rows(strategy, text).items():
                predictions.setdefault(str(epoch), {})[text] = [r.to_dict() for r in rows]
        spec = store.run_spec(fingerprint, lab.formatted, strategy, settings, held_out, versions)
        run = store.PreparedRun(
            key=store.spec_key(spec),
            strategy=strategy,
            model=lab.model.name,
            epochs=settings.epochs,
            result=result.to_dict(),
            predictions=predictions,
            step_seconds=step_seconds,
            spec=spec,
            created=time.time(),
        )
        store.save(run)
        runs.append(run)
        lab.reset()
    return runs


def prepare_demo(
    lab: Lab,
    lesson: Lesson,
    *,
    epochs: int | None = None,
    learning_rate: float | None = None,
    seed: int = DEFAULT_SEED,
    progress: Progress = lambda msg: None,
) -> store.PreparedDemo:
    """The lesson's demo run once through the lab, live, and stored under the context the app
    builds for it with these burst settings (`epochs` None: the lesson's)."""
    again = "close other programs and run causallm-inspect prepare again"
    ctx = lab.demo_context(lesson, epochs=epochs, learning_rate=learning_rate, seed=seed, again=again)
    assert lesson.demo is not None
    spec = store.demo_spec(store.model_fingerprint(lab.model), ctx, lesson.demo, store.library_versions())
    outcome = lab.demo(lesson, epochs=epochs, learning_rate=learning_rate, seed=seed, progress=progress, again=again)
    demo = store.PreparedDemo(
        key=store.spec_key(spec),
        name=outcome.name,
        title=outcome.title,
        text=outcome.text,
        seconds=outcome.seconds,
        spec=spec,
        created=time.time(),
    )
    store.save(demo)
    return demo


def prepare_demos(
    lab: Lab,
    lessons: Sequence[Lesson],
    *,
    learning_rate: float | None = None,
    seed: int = DEFAULT_SEED,
    progress: Progress = lambda msg: None,
) -> list[store.PreparedDemo]:
    """Every lesson demo that trains or makes HF trainers (`DemoSpec.prepared`: the slow ones,
    those asked for and those computed when their lesson opens), with the settings the app
    shows for its lesson."""
    from inspector.core.lessons.demos import DEMOS

    out = []
    for lesson in lessons:
        if lesson.demo is None or not DEMOS[lesson.demo].prepared or not lab.formatted:
            continue
        progress(f"lesson demo {lesson.demo}: running it once")
        out.append(prepare_demo(lab, lesson, learning_rate=learning_rate, seed=seed, progress=progress))
    return out
