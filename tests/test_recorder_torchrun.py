"""`causallm-inspect record` under `torchrun --nproc_per_node 2` on CPU (gloo), the tiny model and bfd
packing, two optimizer steps: each rank's recording equals what its own data loader yielded, micro-batch
by micro-batch, and the audit, before the first optimizer step, finds the rows accelerate's even_batches
repeats (11 packed sequences over 2 ranks) and nothing else. About 20 s on two cores; then `accelerate launch` of two CPU processes records both ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sample_rows import jsonl

from inspector.cli import main
from inspector.core.recorder.record_files import open_recording

pytestmark = pytest.mark.torchrun

ROOT = Path(__file__).resolve().parents[1]
ROWS = [{"prompt": f"How do you say word {i} in Spanish?", "completion": " palabra" * (1 + i % 4)} for i in range(12)]
KEYS = ("input_ids", "labels", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k")


def test_two_processes_record_what_each_data_loader_yielded(tiny_path, tmp_path, capsys):
    config = tmp_path / "sft.yaml"
    config.write_text(
        "\n".join(
            [
                f"model_name_or_path: {tiny_path}",
                "datasets:",
                "  - path: json",
                f"    data_files: {jsonl(tmp_path, ROWS)}",
                f"output_dir: {tmp_path / 'out'}",
                "use_cpu: true",
                "packing: true",
                "packing_strategy: bfd",
                "max_length: 48",
                "per_device_train_batch_size: 1",
                "gradient_accumulation_steps: 2",
                "max_steps: 2",
                "seed: 3",
                "report_to: none",
                'save_strategy: "no"',
                'logging_strategy: "no"',
                "disable_tqdm: true",
            ]
        )
        + "\n"
    )
    to = tmp_path / "rec"
    env = {**os.environ, "LOADER_DIR": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(ROOT / "tests" / "recorder_worker.py"), "record", "--config", str(config), "--to", str(to), "--steps", "2"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rec = open_recording(to)
    assert rec.world_size == 2 and rec.steps == [1, 2] and rec.ended == [0, 1] and rec.incomplete == {}
    assert rec.run["args"]["packing_strategy"] == "bfd" and rec.run["average_tokens_across_devices"]
    for rank in (0, 1):
        yielded = json.loads((tmp_path / f"loader-{rank}.json").read_text())
        assert len(yielded) == 2
        for step, got in enumerate(yielded, 1):
            recorded = rec.micro_batches(step, rank)
            assert [{k: mb[k] for k in KEYS} for mb in recorded] == [{k: b[k] for k in KEYS} for b in got["batches"]]
            assert all(mb["num_items_in_batch"] == got["num_items_in_batch"] for mb in recorded)
        # and `batch --run DIR --json` shows, rank by rank, what that rank's loader yielded
        for step, got in enumerate(yielded, 1):
            assert main(["batch", "--run", str(to), "--step", str(step), "--rank", str(rank), "--json"]) == 0
            shown = json.loads(capsys.readouterr().out)["micro_batches"]
            assert [{k: mb[k] for k in KEYS[:3]} | {k: mb["recorded"][k] for k in KEYS[3:]} for mb in shown] == [
                {k: b[k] for k in KEYS} for b in got["batches"]]
    audit = rec.audit
    assert audit["problems"] == ["rows once per epoch"] and not audit["stopped"]
    (twice,) = [c for c in audit["checks"] if c["name"] == "rows once per epoch"]
    assert "1 dataset row is handed out more than once" in twice["detail"] and "even_batches" in twice["detail"]
    # the count the Trainer used is the step's trained tokens on both ranks, each weighing 1/N
    assert audit["total_trained"] == rec.micro_batches(1, 1)[0]["num_items_in_batch"]
    assert all(r["weight_x_n"] == pytest.approx(1, rel=1e-5) for r in audit["micro_batches"])
    assert "audit of step 1, before its optimizer step (2 ranks" in done.stdout
    # and `batch --config`, simulating the two ranks in one process, shows the same micro-batches
    for step in (1, 2):
        assert main(["batch", "--config", str(config), "--world-size", "2", "--step", str(step), "--json"]) == 0
        view = json.loads(capsys.readouterr().out)
        simulated = {(mb["rank"], mb["micro_step"]): mb for mb in view["micro_batches"]}
        for rank in (0, 1):
            for mb in rec.micro_batches(step, rank):
                same = simulated[(rank, mb["micro_step"])]
                assert {k: mb[k] for k in KEYS[:3]} == {k: same[k] for k in KEYS[:3]}


def test_accelerate_launch_records_every_rank(tiny_path, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` with `use_cpu: true` starts two CPU processes
    (gloo); each records its own steps. (`--cpu --num_processes 2` starts one: accelerate's multi-CPU
    launcher needs MPI.)"""
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"model_name_or_path: {tiny_path}\ndatasets:\n  - path: json\n    data_files: {jsonl(tmp_path, ROWS)}\n"
        f"output_dir: {tmp_path / 'out'}\nuse_cpu: true\nmax_length: 48\nper_device_train_batch_size: 2\n"
        "max_steps: 1\nreport_to: none\nsave_strategy: \"no\"\nlogging_strategy: \"no\"\ndisable_tqdm: true\n"
    )
    to = tmp_path / "rec"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "HF_HOME": str(tmp_path / "hf")}  # no accelerate config of this machine's
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "inspector", "record", "--config", str(config),
            "--to", str(to), "--steps", "1"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rec = open_recording(to)
    assert rec.world_size == 2 and rec.steps == [1] and rec.ended == [0, 1]
    assert rec.run["distributed_type"].endswith("MULTI_CPU") and rec.audit["problems"] == []
    shown = [row for rank in (0, 1) for mb in rec.micro_batches(1, rank) for row in mb["input_ids"]]
    assert len(shown) == 4  # two rows on each rank
    assert "audit of step 1, before its optimizer step (2 ranks" in done.stdout
