"""Running the app: the process's exit once it quits, and where screenshots go. Nothing here
imports torch."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from textual.app import App


def screenshot_folder() -> Path:
    """Where Ctrl+P → Screenshot saves: the Downloads folder where there is one, else the working folder."""
    import os

    from platformdirs import user_downloads_path

    downloads = user_downloads_path()
    if downloads.is_dir() and os.access(downloads, os.W_OK):
        return downloads
    return Path.cwd()


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
