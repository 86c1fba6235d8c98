"""The app's recording (`causallm-inspect --run DIR`): the batch view's steps read from it, with the
tokenizer of the run (or of --model), loaded once on its own, whatever model the lab loads.

The folder is opened again at each step asked for, so a recording that a run is still writing shows
its new steps; a step is read whole (every rank) or refused in one line (`step_view.recorded_step`).
"""

from __future__ import annotations

import threading
from typing import Any

from inspector.core.batches.step_types import StepView


class RecordingSource:
    """A recording folder and the tokenizer that reads its tokens."""

    def __init__(self, folder: str, tokenizer: str, *, trust_remote_code: bool = False) -> None:
        self.folder = folder
        self.tokenizer_name = tokenizer  # `step_view.tokenizer_name`: --model, else the run's own
        self.trust_remote_code = trust_remote_code
        self._tokenizer: Any = None
        self._label = tokenizer
        self._lock = threading.Lock()

    def open(self) -> Any:
        """The recording as it is now (`record_files.Recording`); an InspectorError where it is not one."""
        from inspector.core.recorder.record_files import open_recording

        return open_recording(self.folder)

    def settings(self) -> dict[str, Any]:
        """The run's values the batch view's fields show: SFTConfig's names, and the world size."""
        rec = self.open()
        args = rec.run.get("args") or {}
        return {
            "packing": args.get("packing"),
            "packing_strategy": args.get("packing_strategy"),
            "max_length": args.get("max_length"),
            "per_device_train_batch_size": rec.run.get("per_device_train_batch_size"),
            "gradient_accumulation_steps": rec.run.get("gradient_accumulation_steps"),
            "world_size": rec.world_size,
            "steps": rec.steps,
        }

    def step(self, step: int) -> StepView:
        """Recorded step `step`, every rank's micro-batches. Loads the tokenizer once: off the UI thread."""
        from inspector.core.recorder.step_view import recorded_step

        rec = self.open()
        rec.micro_batches(step, 0)  # a step not recorded is said before the tokenizer loads
        with self._lock:
            if self._tokenizer is None:
                from inspector.core.models import load_model

                loaded = load_model(self.tokenizer_name, device="cpu", tokenizer_only=True, trust_remote_code=self.trust_remote_code)
                self._tokenizer, self._label = loaded.tokenizer, loaded.name
        return recorded_step(rec, step, self._tokenizer, tokenizer_label=self._label)
