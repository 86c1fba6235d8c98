"""Resident memory: measuring it, and giving freed memory back to the system.

A trained strategy is a full fp32 copy of the model plus, while it trains, its gradients
and AdamW's two moments. Between bursts `TrainingSession` keeps only the weights (see
`TrainingSession.park`); what it frees reaches the system only once Python's cycle
collector has run (the Trainer, its callbacks and accelerate refer to each other) and
glibc has been asked to return its free heap pages (`malloc_trim`): `release_memory` does
both. Figures are MB of 1024 x 1024 bytes (VmRSS / 1024 on Linux).
"""

from __future__ import annotations

import gc
import sys
import threading

MB = 1024 * 1024


def rss_mb() -> float:
    """This process's resident memory now, in MB (0.0 where it cannot be read)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:  # not Linux: psutil, where installed
        import psutil

        return psutil.Process().memory_info().rss / MB
    except Exception:  # noqa: BLE001 - no way to read it here
        return 0.0


def peak_rss_mb() -> float:
    """The highest resident memory this process has had, in MB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB elsewhere


def trim_heap() -> bool:
    """Ask glibc to hand its free heap pages back to the system; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):  # musl, or no libc.so.6
        return False


def release_memory() -> None:
    """Free what nothing refers to any more (reference cycles too) and return it to the system."""
    gc.collect()
    trim_heap()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()


class PeakSampler:
    """The highest RSS seen while a block runs, sampled by a thread every `interval` seconds.

    `with PeakSampler() as p: ...` then `p.peak_mb`. A spike shorter than the interval can be
    missed: `peak_rss_mb()` in a fresh process is the exact figure for the whole run.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, rss_mb())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakSampler:
        self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
