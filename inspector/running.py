"""Running the app: the process's exit once it quits, where screenshots go, and a worker
error in words. Nothing here imports torch."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from textual.app import App

from inspector.core.errors import InspectorError


def screenshot_folder() -> Path:
    """Where Ctrl+P → Screenshot saves: the Downloads folder where there is one, else the working folder."""
    import os

    from platformdirs import user_downloads_path

    downloads = user_downloads_path()
    if downloads.is_dir() and os.access(downloads, os.W_OK):
        return downloads
    return Path.cwd()


def readable(error: BaseException) -> str:
    """A user-facing line for any worker error: InspectorError as it is, others by type and message."""
    from inspector.core.labels.process.code_errors import LabelCodeError

    if isinstance(error, LabelCodeError):  # the user's own code: where, and their frames
        return error.report()
    if isinstance(error, InspectorError):
        return str(error)
    lines = str(error).strip().splitlines()
    message = lines[0][:300] if lines else ""
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if "out of memory" in str(error).lower() or type(error).__name__ == "OutOfMemoryError":
        text += ". The model does not fit: try --device cpu, fewer epochs, or a smaller model."
    return text


WORKER_THREADS = "inspector-worker"


def run_until_quit(app: App[Any], **run_options: Any) -> int:
    """Run the app; once it has quit, end the process at once if a worker is still busy.

    A thread cannot be interrupted: the model's conversion (one to two minutes), a load or
    a training step would keep the process alive after its window closed, since asyncio
    and Python's exit both wait for them. The terminal is restored by then, bursts have
    been told to stop, and every store is crash-safe (the conversion and prepared runs are
    written to temporary names and renamed last), so a busy worker is ended with the process.
    """
    import asyncio
    import os
    import sys
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix=WORKER_THREADS)
    loop.set_default_executor(executor)
    try:
        app.run(loop=loop, **run_options)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    code = app.return_code or 0
    deadline = time.monotonic() + 0.5  # idle threads take their leave at once
    for thread in threading.enumerate():
        if thread.name.startswith(WORKER_THREADS):
            thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.name.startswith(WORKER_THREADS) and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    loop.close()
    return code
