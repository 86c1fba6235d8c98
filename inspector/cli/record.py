"""`causallm-inspect record`: train as `trl sft --config FILE` does, with the recorder on every rank.

Run it as you run `trl sft`: alone, or under a launcher (`torchrun --nproc_per_node 2
$(which causallm-inspect) record ...`, `accelerate launch`), which starts the processes; each rank
records what its model received into its own folder of DIR, and rank 0 prints the audit of the
first step before its optimizer step. `--stop-on-problem` stops the run there when the audit
finds a problem: every rank exits with code 2, rank 0 names the problems in one line.
"""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from inspector.core.recorder.audit import SHARE_BAND
    from inspector.core.recorder.record_files import DEFAULT_STEPS

    p = sub.add_parser(
        "record",
        help="train as `trl sft --config FILE` does, recording on every rank what the model receives in the first "
        "optimizer steps (input_ids, labels, position_ids, masks, num_items_in_batch, loss) and auditing the first "
        "step before its optimizer step",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="the YAML `trl sft --config FILE` takes (keys that match no field are refused); trains as it says",
    )
    p.add_argument("--to", metavar="DIR", required=True, help="the recording's folder (each rank writes rank-NNNNN/ in it)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, metavar="N", help=f"record the first N optimizer steps (default {DEFAULT_STEPS})")
    p.add_argument("--every", type=int, default=None, metavar="K", help="and every K-th step after them")
    p.add_argument(
        "--stop-on-problem", action="store_true", help="stop before the first optimizer step when the audit finds a problem"
    )
    p.add_argument("--model", metavar="M", default=None, help="model_name_or_path, over the config's (a folder, or a cached hub id)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="stop the run after N optimizer steps (over the config's max_steps)")
    p.add_argument(
        "--share-band",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help=f"the trained share of real tokens that is not a problem (default {SHARE_BAND[0]:g} {SHARE_BAND[1]:g}; "
        "a plain language-model run trains nearly every token: raise HIGH to 1)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inspector.cli.options import status
    from inspector.core.errors import InspectorError
    from inspector.core.recorder.audit import SHARE_BAND
    from inspector.core.recorder.callback import RecorderStop
    from inspector.core.recorder.sft_run import record_sft

    if not args.config:
        raise InspectorError("record needs the run's config", "pass --config FILE (the YAML `trl sft --config` takes)")
    for name in ("steps", "every", "max_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InspectorError(f"--{name.replace('_', '-')} {value} is not a number of steps", "pass 1 or more")
    first = os.environ.get("RANK", "0") == "0"
    say = status if first else (lambda _: None)
    try:
        done = record_sft(
            args.config,
            to=args.to,
            steps=args.steps,
            every=args.every,
            stop_on_problem=args.stop_on_problem,
            model=args.model,
            max_steps=args.max_steps,
            share_band=tuple(args.share_band) if args.share_band else SHARE_BAND,
            progress=say,
        )
    except RecorderStop:
        if first:
            raise
        return 2  # rank 0 says why, once
    steps = done["recorded"]
    print(
        f"rank {done['rank']} of {done['world_size']}: {done['global_step']} optimizer steps, "
        f"recorded {', '.join(map(str, steps)) or 'none'} into {args.to}; model saved to {done['output_dir']}",
        file=sys.stderr if not first else sys.stdout,
    )
    return 0
