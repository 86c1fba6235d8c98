"""Keep library chatter (progress bars per dataset map, info logs) off the user's screen.

Our own progress goes through the `progress` callbacks; the GGUF conversion keeps
transformers' progress bar in a terminal, since it is the one step that takes a while.
TRL's FutureWarning for `truncation_mode: keep_end` is left out too: the batch view and
inspect-data say it in one line of their own (`batches.steps.keep_end_note`).
"""

from __future__ import annotations

import os
import warnings

_done = False


def quiet_libraries() -> None:
    global _done
    if _done:
        return
    _done = True
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", message=r"The `'keep_end'` truncation mode is deprecated", category=FutureWarning)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
