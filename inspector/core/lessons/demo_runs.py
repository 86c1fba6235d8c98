"""Short training runs that lessons start on request: timing a step of each strategy, and
training label variants side by side (the closing `eos` masked).

Each run trains a copy of the model (the original is left untouched) in a session made by
`training.start.start_session`, the function the Lab's live bursts make theirs with: the
run's turn markers and `max_length` are required there, so a demo's held-out question is
asked in the markers the bursts use. The demos' settings and callbacks are their own (no
burst source, no replay, no locks: the Lab's demos take the locks around the whole demo).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.data.chat_format import TurnMarkers, FormattedExample
from inspector.core.training.burst import BurstSettings, EpochLog
from inspector.core.training.start import start_session
from inspector.core.training.step_times import wait_for_device

# (name, strategy, BurstSettings changes). The last two show where a step's time goes.
TIMING_VARIANTS: tuple[tuple[str, str, dict], ...] = (
    ("copy", "copy", {}),
    ("mask", "mask", {}),
    ("mask, LM head at trained positions only", "mask", {"head_trained_only": True}),
    ("mask, embedding frozen", "mask", {"train_embeddings": False}),
)

# The variant that stands for TRL's fused LM head (`fused_head_note`).
TRAINED_HEAD = TIMING_VARIANTS[2][0]

TIMING_EPOCHS = 2  # ten steps per variant on the article's five examples, nine of them timed

Progress = Callable[[str], None]


@dataclass(frozen=True)
class StepTiming:
    name: str
    strategy: str
    median_s: float  # seconds per optimizer step, warm-up step left out
    min_s: float
    max_s: float
    steps: int  # steps timed
    tokens_per_step: float  # tokens run through the model per step
    trained_per_step: float  # of those, tokens whose label is scored
    times: tuple[float, ...] = ()  # the seconds of each timed step, in order


def _step_timer(device: str) -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of each optimizer step: forward, backward and the AdamW update."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            wait_for_device(device)
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()


def measure_step_times(
    model: Any,
    tokenizer: Any,
    examples: Sequence[FormattedExample],
    *,
    template: TurnMarkers,
    max_length: int | None,
    device: str = "cpu",
    epochs: int = TIMING_EPOCHS,
    learning_rate: float | None = None,
    seed: int = 1,
    variants: Sequence[tuple[str, str, dict]] = TIMING_VARIANTS,
    progress: Progress = lambda msg: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[StepTiming]:
    """Seconds per training step of each variant, each on a fresh copy of the model.

    The first step of each run warms up (allocations, kernel choice) and is not counted.
    """
    out: list[StepTiming] = []
    for name, strategy, change in variants:
        if should_stop():
            break
        progress(f"timing {name}")
        settings = BurstSettings(epochs=epochs, learning_rate=learning_rate, seed=seed, max_new_tokens=1, **change)
        timer = _step_timer(device)
        session = start_session(model, tokenizer, examples, strategy, settings, device=device, template=template,
                                max_length=max_length)
        with session:
            session.run(extra_callbacks=[timer], should_stop=should_stop)
            lengths = [len(ex.rows) for ex in session.labeled]
            trained = [ex.trained_tokens for ex in session.labeled]
        del session
        gc.collect()
        timed = timer.times[1:] or timer.times
        if not timed:
            continue
        out.append(
            StepTiming(
                name=name,
                strategy=strategy,
                median_s=statistics.median(timed),
                min_s=min(timed),
                max_s=max(timed),
                steps=len(timed),
                tokens_per_step=statistics.mean(lengths),
                trained_per_step=statistics.mean(trained),
                times=tuple(timed),
            )
        )
    return out


def fused_head_note() -> str:
    """What the variant `TRAINED_HEAD` stands for: TRL's SFTTrainer (1.16) adds a fused LM head, read
    off the TRL installed (its version, and whether it has `add_fused_lm_head`). Nothing of TRL is timed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("trl")
        from trl.trainer.utils import add_fused_lm_head  # noqa: F401
    except PackageNotFoundError:
        return f"{TRAINED_HEAD!r}: TRL is not installed here; TRL 1.16's SFTTrainer computes the LM head this way"
    except ImportError:
        return (
            f"{TRAINED_HEAD!r}: the TRL installed ({installed}) has no add_fused_lm_head; TRL 1.16's SFTTrainer"
            " adds one that computes the LM head this way"
        )
    return (
        f"{TRAINED_HEAD!r} is what TRL 1.16's SFTTrainer does (TRL {installed} is installed): its fused LM head"
        ' (add_fused_lm_head, loss_type="nll", the default) computes log-probabilities only where the next'
        " label is not -100, on a CUDA or XPU device with Triton (elsewhere at every position). Timed here with"
        " a Trainer that runs the LM head at those positions (logits_to_keep), not with TRL's kernel."
    )


@dataclass
class EosRun:
    """Greedy answers to the held-out prompt per epoch, for normal and eos-masked labels."""

    eos: str
    prompt: str
    untrained: str
    answers: dict[str, list[EpochLog]] = field(default_factory=dict)  # variant -> one log per epoch
    trained_labels: dict[str, list[int]] = field(default_factory=dict)  # variant -> labels of example 1

    def stops(self, answer: str) -> bool:
        """The answer ended with the model's eos (generation stopped by itself)."""
        return answer.endswith(self.eos)


EOS_VARIANTS = ("mask", "mask, eos masked")


def label_variants_run(
    model: Any,
    tokenizer: Any,
    examples: Sequence[FormattedExample],
    variants: Sequence[tuple[str, Callable[[Any], Any] | None]],
    *,
    template: TurnMarkers,
    max_length: int | None,
    device: str = "cpu",
    epochs: int = 3,
    learning_rate: float | None = None,
    seed: int = 1,
    max_new_tokens: int = 16,
    on_epoch: Callable[[str, EpochLog], None] = lambda variant, log: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> EosRun:
    """Train `mask` once per variant, each on a fresh copy of the model, its labels changed by
    the variant's function (None: as they are) before the first step; after every epoch the
    copy answers the held-out prompt (in `template`'s markers) greedily with room for `max_new_tokens`."""
    from inspector.core.training.session import greedy_answer

    settings = BurstSettings(epochs=epochs, learning_rate=learning_rate, seed=seed, max_new_tokens=max_new_tokens)
    run: EosRun | None = None
    for variant, change in variants:
        if should_stop():
            break
        session = start_session(model, tokenizer, examples, "mask", settings, device=device, template=template,
                                max_length=max_length)
        with session:
            if run is None:
                untrained = greedy_answer(session.model, tokenizer, session.prompt_ids, max_new_tokens)
                run = EosRun(tokenizer.eos_token, session.prompt.text, untrained)
            if change is not None:
                # Made before the first burst, the trainer reads these labels.
                session.labeled = [change(lab) for lab in session.labeled]
            run.trained_labels[variant] = session.labeled[0].labels
            logs: list[EpochLog] = []
            run.answers[variant] = logs

            def epoch_done(log: EpochLog, variant: str = variant, logs: list[EpochLog] = logs) -> None:
                logs.append(log)
                on_epoch(variant, log)

            session.run(on_epoch=epoch_done, should_stop=should_stop)
        del session
        gc.collect()
    assert run is not None or should_stop()
    return run if run is not None else EosRun(tokenizer.eos_token, "", "")


def eos_padding_run(
    model: Any,
    tokenizer: Any,
    examples: Sequence[FormattedExample],
    **options: Any,
) -> EosRun:
    """Train `mask` twice on copies of the model, once with every eos label set to -100
    (`options` as `label_variants_run` takes them)."""
    from inspector.core.lessons.pitfalls import eos_masked

    variants = ((EOS_VARIANTS[0], None), (EOS_VARIANTS[1], lambda lab: eos_masked(lab, tokenizer)))
    return label_variants_run(model, tokenizer, examples, variants, **options)
