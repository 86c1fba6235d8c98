"""One rank of tests/test_recorder_torchrun.py, started by torchrun: `causallm-inspect record` as a
user runs it, with a spy on TRL's SFTTrainer that keeps the batches its data loader yields
(`Trainer.get_batch_samples` collects them), written to LOADER_DIR/loader-RANK.json at the end.

    torchrun --standalone --nproc_per_node 2 tests/recorder_worker.py record --config ... --to ...
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    from trl import SFTTrainer

    real = SFTTrainer.get_batch_samples
    yielded = []

    def spy(self, epoch_iterator, num_batches, device):
        batches, count = real(self, epoch_iterator, num_batches, device)
        kept = [{k: v.tolist() for k, v in b.items() if hasattr(v, "tolist")} for b in batches]
        yielded.append({"batches": kept, "num_items_in_batch": None if count is None else float(count)})
        return batches, count

    SFTTrainer.get_batch_samples = spy
    from inspector.cli import main as cli

    code = cli(sys.argv[1:])
    out = Path(os.environ["LOADER_DIR"]) / f"loader-{os.environ['RANK']}.json"
    out.write_text(json.dumps(yielded))
    return code


if __name__ == "__main__":
    sys.exit(main())
