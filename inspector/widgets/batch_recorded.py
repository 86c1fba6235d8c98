"""The batch view on a recorded run (`causallm-inspect --run DIR`): its legend and its summary line.

A recording holds no data rows: each batch row's sequences are told apart by where
`position_ids` restart (`s1`, `s2`, ...), and a label's -100 cannot say why it is -100.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content

if TYPE_CHECKING:
    from inspector.core.batches.step_types import MicroBatch, StepView

RECORDED_LEGEND = (
    "a recording: ▶sN: the batch row's Nth sequence starts here (a recording holds no data rows) · struck grey "
    "labels are -100 ('not recorded': a prompt's -100 and a collator's look the same) · weight: read off the run's loss"
)


def recorded_summary(view: StepView, mb: MicroBatch, b: int, index: int, places: int) -> Content:
    """The summary of batch row `b` of a recorded micro-batch: the step, the rank, its sequences, the run's settings."""
    n = len(mb.segments[b])
    crosses = [f"s{k + 1}" for k, s in enumerate(mb.segments[b]) if s.crosses]
    across = f" · ⚠ {', '.join(crosses)} can attend to the sequences before" if crosses else ""
    steps = ", ".join(map(str, (view.recording or {}).get("recorded_steps") or []))
    s, how = view.settings, str((mb.recorded or {}).get("attention"))  # its first words (`batch --run` has it all)
    packing = f"packing {s['packing_strategy']}" if s.get("packing") else "no packing"
    return Content(
        f"recorded step {view.step} (of {steps}) · micro-batch {mb.micro_step + 1} · rank {mb.rank} of {view.world_size} "
        f"· batch row {b + 1} of {len(mb.texts)}: {n} sequence{'s' if n != 1 else ''} ([ ] {index + 1} of "
        f"{places}){across}\nthe run: {packing}, max_length {s.get('max_length')}, batch "
        f"{s.get('per_device_train_batch_size')} × {s.get('gradient_accumulation_steps')} accumulated · attention: "
        f"{how.split(':')[0].split(' (')[0]}\n{view.normalisation}"
    )
