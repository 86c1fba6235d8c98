"""Simulated ranks and steps: what the Trainer's own data loader gives process r of W, and which of
its micro-batches make optimizer step n.

A simulated rank r of W gets the loader accelerate's `prepare_data_loader` builds with
`num_processes=W, process_index=r` (no process is started). A step is the Trainer's: its
`gradient_accumulation_steps` micro-batches (fewer for the last step of an epoch), reached with
accelerate's `skip_first_batches`, as the Trainer does when it resumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Recorded:
    """A batch sampler that notes the indices of every batch it hands out, in order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[Any]:
        for batch in self.inner:
            self.batches.append([int(i) for i in batch])
            yield batch

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextmanager
def _as_rank(world_size: int, rank: int) -> Iterator[None]:
    """While inside, the Trainer's accelerator prepares its data loader as process `rank` of `world_size`."""
    if world_size == 1:
        yield
        return
    import accelerate.accelerator as module

    real = module.prepare_data_loader

    def sharded(*args: Any, **kwargs: Any) -> Any:
        kwargs.update(num_processes=world_size, process_index=rank)
        return real(*args, **kwargs)

    module.prepare_data_loader = sharded
    try:
        yield
    finally:
        module.prepare_data_loader = real


def rank_loader(trainer: Any, world_size: int, rank: int) -> Any:
    """The Trainer's own training data loader, as process `rank` of `world_size` would get it."""
    from transformers import set_seed

    set_seed(trainer.args.seed)  # as right after Trainer.__init__, which seeds the sampler
    with _as_rank(world_size, rank):
        return trainer.get_train_dataloader()


def take_step(loader: Any, step: int, accumulation: int, steps_per_epoch: int) -> list[tuple[list[int], dict[str, Any]]]:
    """The micro-batches of optimizer step `step` (1-based) from a Trainer's data loader, each with the
    dataset indices its batch sampler gave: the first (step-1)*accumulation batches are skipped by
    accelerate's `skip_first_batches` (indices only, nothing is collated)."""
    from accelerate.data_loader import SkipBatchSampler, skip_first_batches

    skip = (step - 1) * accumulation
    count = accumulation
    if step == steps_per_epoch:
        count = len(loader) - skip
    skipping = skip_first_batches(loader, skip)
    holder = skipping.batch_sampler if isinstance(skipping.batch_sampler, SkipBatchSampler) else skipping.sampler
    recorded = _Recorded(holder.batch_sampler)
    holder.batch_sampler = recorded
    out = []
    iterator = iter(skipping)
    for j in range(count):
        batch = next(iterator)
        out.append((recorded.batches[skip + j], batch))
    iterator.close()
    if hasattr(skipping, "end"):
        skipping.end()
    return out
