"""The recorder's one import for users: `from inspector.recorder import RecorderCallback` (also
`from inspector import RecorderCallback`). Loads transformers (the callback is a TrainerCallback),
never textual.

    trainer = SFTTrainer(..., callbacks=[RecorderCallback(to="recording", steps=3, stop_on_problem=True)])
"""

from inspector.core.recorder.callback import RecorderCallback, RecorderStop
from inspector.core.recorder.record_files import Recording, open_recording

__all__ = ["RecorderCallback", "RecorderStop", "Recording", "open_recording"]
