"""What the audit needs from every rank: each rank's values gathered with torch.distributed, and the
dataset indices each rank's data loader hands out over the epoch.

`gather` is a collective: every rank calls it at the same point (the audit runs on all of them,
so they all reach the same verdict). `epoch_indices` walks the loader's batch sampler (indices
only: no row is read, nothing collated) and puts back every random state that walk touched:
the samplers' generators and epochs, and torch's global generator, so the run's own shuffle and
dropout are the same with or without the recorder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def gather(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (just this one's where no process group is running)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return [value]
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def _samplers(loader: Any) -> list[Any]:
    """The loader's batch sampler and every sampler under it."""
    seen: list[Any] = []
    todo = [getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None)]
    while todo:
        obj = todo.pop()
        if obj is None or any(obj is s for s in seen) or len(seen) > 16:
            continue
        seen.append(obj)
        todo += [getattr(obj, "batch_sampler", None), getattr(obj, "sampler", None)]
    return seen


@contextmanager
def _states_kept(loader: Any) -> Iterator[None]:
    import torch

    kept = []
    for s in _samplers(loader):
        own = getattr(s, "__dict__", {})
        generator = own.get("generator")
        state = generator.get_state() if isinstance(generator, torch.Generator) else None
        kept.append((s, "generator" in own, generator, state, own.get("epoch")))
    global_state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(global_state)
        for s, had, generator, state, epoch in kept:
            if had:
                s.generator = generator
            else:
                getattr(s, "__dict__", {}).pop("generator", None)
            if state is not None:
                generator.set_state(state)
            if epoch is not None:
                s.epoch = epoch


def epoch_indices(loader: Any) -> tuple[list[list[int]] | None, str]:
    """This rank's batches of dataset indices over the current epoch, and how they were read (or why not)."""
    if loader is None:
        return None, "the Trainer passed no training data loader to its callbacks"
    batch_sampler = getattr(loader, "batch_sampler", None)
    if batch_sampler is None:
        return None, f"{type(loader).__name__} has no batch sampler (an iterable dataset): its rows have no indices"
    if type(batch_sampler).__name__ == "DataLoaderDispatcher" or getattr(loader, "_dispatch_batches", False):
        return None, "dispatch_batches: rank 0 reads every batch and sends slices, so no rank's sampler says what it gets"
    batches: list[list[int]] = []
    with _states_kept(loader):
        try:
            for batch in batch_sampler:
                batches.append([int(i) for i in batch])
        except TypeError as exc:  # a sampler of keys that are not whole numbers
            return None, f"the batch sampler gives no dataset indices ({exc})"
    return batches, f"read off {type(batch_sampler).__name__}"
