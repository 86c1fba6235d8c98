"""causallm-inspect: see which tokens a causal LM is trained on, and what it learns.

Importing the package is cheap: no torch, no transformers, no textual.

Words used throughout:

- the article: the blog post the lessons follow (its three label strategies, its examples,
  its `create_special_mask`); "the article's examples" are its five Spanish translations.
- strategy: how labels are made from input_ids: copy, mask (the human part -100), trl
  (TRL's SFTTrainer, completion-only loss), custom (the user's label function).
- burst: a few epochs of one strategy on a model; the next burst continues where it stopped.
- stock: the plain Trainer / SFTTrainer as the article runs them, beside the default fast path.
- the Lab (`inspector.core.lab`): the model, the examples and each strategy's burst source,
  which every front end (the app, `train`, `predict`, `lesson N`) drives.
- prepared run: a burst recorded by `causallm-inspect prepare`; a replay shows it again,
  paced by its recorded seconds, instead of training live.
- park: between bursts a session's optimizer state waits on disk, not in memory.
- label process: the child process the user's label function runs in (`core.labels.process`).

Offline means offline: before any Hugging Face library is imported (the CLI, the app and the
bench all import this package first), the process says it is offline and sends no usage
data. Without these, TRL's trainers send a usage ping to the Hub from a background thread.
`setdefault`: a user's own value stays.

`RecorderCallback` (a TrainerCallback: `inspector.recorder`) is loaded on first use, so the package
stays cheap to import.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("RecorderCallback", "RecorderStop"):
        import importlib

        return getattr(importlib.import_module("inspector.recorder"), name)
    raise AttributeError(f"module 'inspector' has no attribute {name!r}")
