"""A recording's files: writing each rank's steps whole, and reading them back (the format is in the
package's docstring).

Every file is written to a temporary name beside its place, flushed to disk and renamed over it
(`os.replace`, atomic on one file system): a reader finds each file whole or not at all, so a run
killed at any moment leaves whole steps. Plain pyarrow and json; nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.core.errors import InspectorError

DEFAULT_STEPS = 3  # optimizer steps a recording holds by default: the audited first and two after it
FORMAT = "causallm-inspect recording"
FORMAT_VERSION = 1
RUN_FILE = "run.json"
AUDIT_FILE = "audit.json"
RANK_FILE = "rank.json"
END_FILE = "end.json"
_STEP = re.compile(r"^step-(\d+)\.parquet$")
_RANK = re.compile(r"^rank-(\d+)$")

# The columns of a step file, one row per micro-batch, in this order.
TOKEN_COLUMNS = ("input_ids", "labels", "shift_labels", "position_ids", "attention_mask", "attends_from")
FLAT_COLUMNS = ("attention_mask_shape", "cu_seq_lens_q", "cu_seq_lens_k")


def _schema() -> Any:
    import pyarrow as pa

    rows = pa.list_(pa.list_(pa.int64()))
    flat = pa.list_(pa.int64())
    return pa.schema(
        [
            ("step", pa.int32()),
            ("micro_step", pa.int32()),
            ("rank", pa.int32()),
            *((name, rows) for name in TOKEN_COLUMNS),
            *((name, flat) for name in FLAT_COLUMNS),
            ("num_items_in_batch", pa.float64()),
            ("num_items_source", pa.string()),
            ("loss", pa.float64()),
            ("ce_sum", pa.float64()),
            ("forward_calls", pa.int32()),
            ("other_inputs", pa.string()),
        ]
    )


def rank_folder(root: Path, rank: int) -> Path:
    return root / f"rank-{rank:05d}"


def step_file(root: Path, rank: int, step: int) -> Path:
    return rank_folder(root, rank) / f"step-{step:06d}.parquet"


def _replace_atomically(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """`data` as indented JSON, whole or not at all (values JSON cannot hold are written as text)."""
    text = json.dumps(data, indent=1, ensure_ascii=False, default=str)
    _replace_atomically(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def write_step(root: Path, rank: int, step: int, rows: list[dict[str, Any]]) -> Path:
    """One rank's micro-batches of one optimizer step (`capture.MicroRecord.row()` each), as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=_schema())
    path = step_file(root, rank, step)
    _replace_atomically(path, lambda tmp: pq.write_table(table, tmp))
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InspectorError(f"{path} cannot be read ({exc})", "record the run again") from exc
    if not isinstance(data, dict):
        raise InspectorError(f"{path} is not a recording's JSON object", "record the run again")
    return data


@dataclass
class Recording:
    """A recording folder as found: the run's settings, each rank's steps, what is missing."""

    folder: Path
    run: dict[str, Any]  # run.json
    world_size: int
    steps: list[int]  # the steps every rank recorded whole
    incomplete: dict[int, list[int]] = field(default_factory=dict)  # step -> ranks that lack it (the run stopped)
    ended: list[int] = field(default_factory=list)  # ranks whose run reached on_train_end
    audit: dict[str, Any] | None = None

    def micro_batches(self, step: int, rank: int) -> list[dict[str, Any]]:
        """Rank `rank`'s micro-batches of step `step`, in order, each a dict of the step file's columns."""
        import pyarrow.parquet as pq

        if step not in self.steps:
            if step in self.incomplete:
                missing = ", ".join(map(str, self.incomplete[step]))
                raise InspectorError(
                    f"step {step} of {self.folder} was not recorded by rank {missing} (the run stopped while writing it)",
                    f"read one of the whole steps: {_ranges(self.steps) or 'none'}",
                )
            raise InspectorError(
                f"step {step} was not recorded in {self.folder}", f"read one of the recorded steps: {_ranges(self.steps) or 'none'}"
            )
        if not 0 <= rank < self.world_size:
            raise InspectorError(f"rank {rank} is not in {self.folder} (its run had {self.world_size})", f"pass 0 to {self.world_size - 1}")
        path = step_file(self.folder, rank, step)
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 -- pyarrow raises several kinds for a damaged file
            raise InspectorError(f"{path} cannot be read ({str(exc).splitlines()[0][:200]})", "record the run again") from exc
        rows.sort(key=lambda r: r["micro_step"])
        if [r["micro_step"] for r in rows] != list(range(len(rows))) or any(r["step"] != step or r["rank"] != rank for r in rows):
            raise InspectorError(f"{path} does not hold step {step} of rank {rank} whole", "record the run again")
        for r in rows:
            r["other_inputs"] = json.loads(r["other_inputs"] or "{}")
        return rows


def open_recording(folder: str | Path) -> Recording:
    """The recording in `folder`; one line saying what is wrong where it is not one."""
    root = Path(folder)
    if not root.is_dir():
        raise InspectorError(f"{root} is not a folder", "give the folder `record --to` (or RecorderCallback(to=...)) wrote")
    if not (root / RUN_FILE).is_file():
        raise InspectorError(f"{root} is not a recording: it has no {RUN_FILE}", "give the folder `record --to` wrote")
    run = _read_json(root / RUN_FILE)
    if run.get("format") != FORMAT:
        raise InspectorError(f"{root / RUN_FILE} is not a causallm-inspect recording", "give the folder `record --to` wrote")
    if run.get("format_version") != FORMAT_VERSION:
        raise InspectorError(
            f"{root} is a recording of format {run.get('format_version')}, this causallm-inspect reads format {FORMAT_VERSION}",
            "record the run again with this version",
        )
    world = int(run["world_size"])
    have: dict[int, set[int]] = {}
    ended = []
    for rank in range(world):
        sub = rank_folder(root, rank)
        if not sub.is_dir():
            raise InspectorError(
                f"{root} lacks rank {rank}'s folder ({sub.name}): its run had {world} processes",
                "copy every rank's folder (each process writes its own, maybe on its own machine)",
            )
        have[rank] = {int(m.group(1)) for p in sub.iterdir() if (m := _STEP.match(p.name))}
        if (sub / END_FILE).is_file():
            ended.append(rank)
    extra = sorted(int(m.group(1)) for p in root.iterdir() if (m := _RANK.match(p.name)) and int(m.group(1)) >= world)
    if extra:
        raise InspectorError(
            f"{root} holds rank folders past its world size {world} (rank {extra[0]}): two runs wrote into one folder",
            "record each run into a folder of its own",
        )
    every = set().union(*have.values()) if have else set()
    steps = sorted(s for s in every if all(s in h for h in have.values()))
    incomplete = {s: [r for r, h in have.items() if s not in h] for s in sorted(every) if s not in steps}
    audit = _read_json(root / AUDIT_FILE) if (root / AUDIT_FILE).is_file() else None
    return Recording(root, run, world, steps, incomplete, ended, audit)


def version_differences(run: dict[str, Any]) -> list[str]:
    """The libraries whose version here differs from the run's (`name recorded → here`)."""
    from inspector.core.recorder.run_facts import library_versions

    here = library_versions()
    return [
        f"{name} {was} → {here.get(name)}"
        for name, was in sorted((run.get("versions") or {}).items())
        if name != "python" and here.get(name) != was
    ]


def _ranges(steps: list[int]) -> str:
    out: list[str] = []
    for s in steps:
        if out and out[-1].split("–")[-1] == str(s - 1):
            out[-1] = f"{out[-1].split('–')[0]}–{s}"
        else:
            out.append(str(s))
    return ", ".join(out)
