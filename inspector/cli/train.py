"""`causallm-inspect train`: a training burst, with the loss and the held-out answer per epoch.

The burst is the Lab's, as the app runs it, on the loaded model itself (one burst: no copy).
`run_burst` is also how `predict` trains before it predicts.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING, Any

from inspector.cli.options import (
    burst_options,
    check_data_early,
    common,
    dump,
    label_function,
    labels_from_option,
    load,
    per_step,
)
from inspector.cli.turns import say_flags_ignored, use_policy_rows

if TYPE_CHECKING:
    from collections.abc import Callable

    from inspector.core.data.chat_format import TurnMarkers
    from inspector.core.data.examples import Example
    from inspector.core.lab import Lab
    from inspector.core.labels.process.parent import LabelFunction
    from inspector.core.models import LoadedModel
    from inspector.core.training.burst import BurstResult, BurstSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="a training burst: loss and held-out answer per epoch")
    common(p)
    burst_options(p, required_strategy=True)
    labels_from_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    custom = label_function(args, [args.strategy])
    examples = check_data_early(args)
    loaded, template = load(args)
    lab, result = run_burst(args, loaded, template, examples, verbose=not args.json, custom=custom)
    lab.close()
    if args.json:
        from dataclasses import asdict

        extra = {}
        if args.strategy == "custom" and custom is not None:
            extra = {"function": custom.name, "file": custom.file, "fingerprint": custom.fingerprint}
        dump(
            {
                "model": loaded.name,
                "device": loaded.device,
                "settings": asdict(_settings(args)),
                **extra,
                **result.to_dict(),
            }
        )
        return 0
    if result.stopped:
        print(f"stopped on request after step {result.steps[-1].step if result.steps else 0}")
    from inspector.core.labels.strategies import display_name

    print(
        f"{display_name(args.strategy, custom)}: {len(result.steps)} steps in {result.train_runtime:.1f} s{per_step(result)}, "
        f"{result.tokens_per_second:.0f} tokens/s, {result.trained_tokens} of {result.input_tokens} tokens trained"
    )
    if result.epoch_loss is not None:
        print(f"epoch loss {result.epoch_loss:.4f} (the mean step loss of the last epoch, as the app's table shows it)")
    print(f"wall time of the burst: {result.wall_seconds:.1f} s, held-out answers included")
    return 0


class _StopFlag:
    """Ctrl-C during a burst stops it between steps; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.stop = False

    def __enter__(self) -> _StopFlag:
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("\n… stopping after this step (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._old)


def _settings(args: argparse.Namespace) -> BurstSettings:
    from inspector.core.training.burst import BurstSettings

    return BurstSettings(
        epochs=args.epochs,
        learning_rate=args.lr,
        seed=args.seed,
        holdout=args.holdout,
        lora=args.lora,
        train_embeddings=not args.freeze_embeddings,
        head_trained_only=args.head_trained_only,
        batching=args.batching,
        optimizer=args.optimizer,
        threads=args.threads,
        compile=args.compile,
        stock=args.stock,
    )


def run_burst(
    args: argparse.Namespace,
    loaded: LoadedModel,
    template: TurnMarkers,
    examples: list[Example],
    *,
    verbose: bool,
    custom: LabelFunction | None = None,
    before: Callable[[Lab], None] | None = None,
) -> tuple[Lab, BurstResult]:
    """The burst of the burst options, through a Lab that trains the loaded model in place (on
    every example given); Ctrl-C stops it between steps. `before(lab)` runs before the burst
    (what must be computed on the untrained model). The caller closes the lab."""
    from inspector.core.lab import Lab

    settings = _settings(args)
    lab = Lab.around(loaded, examples, template, train_rows=len(examples), custom=custom, in_place=True)
    say_flags_ignored(examples, [args.strategy])
    try:
        use_policy_rows(lab, args, flags=args.strategy != "trl")  # the rows --turn-policy trains
    except BaseException:
        lab.close()
        raise
    total = 0

    def on_start(epochs: int, steps: int, label: str) -> None:
        nonlocal total
        total = steps
        if verbose:  # the labels are made (a label function that fails has said so): the model is untrained yet
            prompt, answer = lab.holdout(settings)
            print(f"held-out prompt: {prompt!r}")
            print(f"untrained answer: {answer!r}")

    def on_step(progress: Any) -> None:
        if sys.stderr.isatty():
            log = progress.log
            print(f"\r… {args.strategy}: step {progress.done}/{total}  loss {log.loss:.4f}", end="", file=sys.stderr,
                  flush=True)

    def on_epoch(log: Any) -> None:
        if sys.stderr.isatty():
            print("\r", end="", file=sys.stderr)
        if verbose:
            print(f"epoch {log.epoch:>3}  loss {log.loss:8.4f}  held-out: {log.holdout!r}", flush=True)

    def tell(text: str, severity: str) -> None:
        print(f"note: {text}", file=sys.stderr)

    try:
        if before is not None:
            before(lab)
        with _StopFlag() as flag:
            result = lab.burst(args.strategy, settings, on_start=on_start, on_step=on_step, on_epoch=on_epoch,
                               should_stop=lambda: flag.stop, tell=tell)
    except BaseException:
        lab.close()
        raise
    assert result is not None  # only a replay has nothing more to show, and a command trains live
    return lab, result
