"""causallm-inspect: see which tokens a causal LM is trained on, and what it learns.

Importing the package is cheap: no torch, no transformers, no textual.

Offline means offline: before any Hugging Face library is imported (the CLI, the app and the
bench all import this package first), the process says it is offline and sends no usage
data. Without these, TRL's trainers send a usage ping to the Hub from a background thread.
`setdefault`: a user's own value stays.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
