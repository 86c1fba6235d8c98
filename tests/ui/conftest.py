"""Helpers for the pilot and snapshot tests: an app on the tiny model, and waiting for state."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tiny model gains nothing from threads, and on a busy 2-core machine the thread
    pool's spinning makes a step take a second instead of milliseconds."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_named(tiny_path, tmp_path_factory) -> Path:
    """The tiny model in a folder always called `tiny`, so the header reads the same in snapshots."""
    target = tmp_path_factory.mktemp("named") / "tiny"
    shutil.copytree(tiny_path, target)
    return target


@pytest.fixture
def dispatched():
    """Counts the messages the app's widgets handle, by type (see `ui_helpers.DispatchCounter`)."""
    from ui_helpers import DispatchCounter

    counter = DispatchCounter()
    uninstall = counter.install()
    yield counter
    uninstall()
