"""`causallm-inspect batch` as a user runs it: a `trl sft` YAML config with local data files, flags,
ranks, the attention check, and bad input as one line with exit code 2."""

from __future__ import annotations

import json
import tempfile

import pytest
from sample_rows import jsonl

from inspector.cli import main

ROWS = [{"prompt": f"How do you say word {i} in Spanish?", "completion": " palabra" * (1 + i % 4)} for i in range(12)]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def config(tmp_path, data, **values):
    lines = ["datasets:", "  - path: json", f"    data_files: {data}"]
    lines += [f"{k}: {json.dumps(v)}" for k, v in values.items()]
    path = tmp_path / "sft.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def reference(tiny_path, data, **values):
    """What an SFTTrainer built from the same file and values yields, micro-batch by micro-batch."""
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from inspector.core.models import load_model

    lm = load_model(str(tiny_path), device="cpu")
    dataset = load_dataset("json", data_files=str(data), split="train")
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(output_dir=tmp, report_to="none", bf16=False, use_cpu=True, activation_checkpointing=False, **values)
        trainer = SFTTrainer(model=lm.model, args=args, train_dataset=dataset, processing_class=lm.tokenizer)
        return [{k: v.tolist() for k, v in b.items() if k in ("input_ids", "labels", "position_ids")} for b in trainer.get_train_dataloader()]


def picked(mb):
    return {k: mb[k] for k in ("input_ids", "labels", "position_ids") if mb[k] is not None}


def test_a_trl_sft_config_with_local_data_files(capsys, tiny_path, tmp_path):
    data = jsonl(tmp_path, ROWS)
    values = dict(packing=True, max_length=48, per_device_train_batch_size=2, gradient_accumulation_steps=2, seed=3)
    path = config(tmp_path, data, **values)
    expected = reference(tiny_path, data, **values)
    got = []
    step = 1
    while True:
        code, out, err = run(capsys, "batch", "--config", str(path), "--model", str(tiny_path), "--step", str(step), "--json")
        if code == 2:
            (line,) = [x for x in err.strip().splitlines() if not x.startswith("…")]
            assert "past the end of the epoch" in line
            break
        data_out = json.loads(out)
        assert data_out["settings"]["packing_strategy"] == "bfd" and data_out["settings"]["padding_free"]
        assert sum(w for mb in data_out["micro_batches"] for row in mb["weights"]["trainer"] for w in row) == pytest.approx(1)
        for mb in data_out["micro_batches"]:
            assert mb["step"] == step and mb["rank"] == 0
            assert set(mb) >= {"input_ids", "labels", "position_ids", "segments", "weights", "dropped"}
            assert all(1 <= seg["row"] <= len(ROWS) for row in mb["segments"] for seg in row)
            got.append(picked(mb))
        step += 1
    assert got == expected and step > 2


def test_the_config_and_flags_together_and_two_ranks(capsys, tiny_path, tmp_path):
    data = jsonl(tmp_path, ROWS)
    path = config(tmp_path, data, per_device_train_batch_size=2, max_length=20)
    code, out, _ = run(
        capsys, "batch", "--config", str(path), "--model", str(tiny_path), "--world-size", "2", "--gradient-accumulation-steps", "2", "--json"
    )
    assert code == 0
    data_out = json.loads(out)
    assert data_out["world_size"] == 2 and data_out["settings"]["gradient_accumulation_steps"] == 2
    assert [(mb["rank"], mb["micro_step"]) for mb in data_out["micro_batches"]] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert sum(w for mb in data_out["micro_batches"] for row in mb["weights"]["trainer"] for w in row) == pytest.approx(1)
    dropped = [d for mb in data_out["micro_batches"] for d in mb["dropped"]]
    assert dropped and all(d["tokens"] and d["start"] == 20 for d in dropped)  # truncation to max_length 20


def test_an_unknown_key_is_named(capsys, tiny_path, tmp_path):
    path = config(tmp_path, jsonl(tmp_path, ROWS), packing=True, packing_stratgy="wrapped", epochs=3)
    code, out, err = run(capsys, "batch", "--config", str(path), "--model", str(tiny_path))
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "packing_stratgy (did you mean packing_strategy?)" in line and "epochs" in line and "silently ignore" in line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--step", "99"], "--step 99 is past the end of the epoch: it has 3 optimizer steps"),
        (["--packing", "--packing-strategy", "greedy"], "packing strategy 'greedy' does not exist"),
        (["--max-length", "0"], "max_length 0 is not a length"),
        (["--per-device-train-batch-size", "6"], "per_device_train_batch_size 6 is larger than the dataset"),
        (["--world-size", "0"], "--world-size 0 is not a number of processes"),
        (["--world-size", "100000"], "--world-size 100000 is more than the 5 rows of the data"),  # before the model loads
    ],
)
def test_bad_flags_are_one_line_and_exit_2(capsys, tiny_path, argv, message):
    code, out, err = run(capsys, "batch", "--model", str(tiny_path), *argv)
    assert code == 2 and out == ""
    lines = [line for line in err.strip().splitlines() if not line.startswith("…")]
    assert len(lines) == 1 and message in lines[0], err


def test_a_config_naming_deepspeed_is_simulated_without_it_in_one_note(capsys, tiny_path, tmp_path):
    """DeepSpeed is not installed: its config is left out, said in one note, and the batches are the same."""
    engine = tmp_path / "ds.json"
    engine.write_text('{"zero_optimization": {"stage": 2}}')
    data = jsonl(tmp_path, ROWS)
    path = config(tmp_path, data, deepspeed=str(engine), per_device_train_batch_size=4, seed=3)
    code, out, err = run(capsys, "batch", "--config", str(path), "--model", str(tiny_path), "--json")
    assert code == 0, err
    view = json.loads(out)
    (note,) = [n for n in view["notes"] if "deepspeed" in n]
    assert f"deepspeed: {engine}" in note and "without DeepSpeed or FSDP" in note
    expected = reference(tiny_path, data, per_device_train_batch_size=4, seed=3)[0]
    assert picked(view["micro_batches"][0]) == {k: v for k, v in expected.items() if k in ("input_ids", "labels")}


@pytest.mark.parametrize(
    "text, message",
    [
        ("learning_rate: fast\n", "TRL's parser refuses the config"),
        ("- a list\n", "is not a YAML mapping"),
        ("packing_strategy: greedy\n", "packing strategy 'greedy'"),
        ("datasets:\n  - path: json\n    data_files: missing.jsonl\n", "the data file missing.jsonl does not exist"),
        ("dataset_name: trl-lib/not-in-the-cache\n", "is not in the Hugging Face cache"),
    ],
)
def test_a_config_trl_refuses_is_one_line(capsys, tiny_path, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = run(capsys, "batch", "--config", str(path), "--model", str(tiny_path))
    lines = [line for line in err.strip().splitlines() if not line.startswith("…")]
    assert code == 2 and len(lines) == 1 and message in lines[0], err


def test_the_table_and_the_attention_check(capsys, tiny_path):
    code, out, _ = run(
        capsys, "batch", "--model", str(tiny_path), "--packing", "--max-length", "80", "--per-device-train-batch-size", "1", "--check-attention"
    )
    assert code == 0
    assert "block-causal" in out and "why -100" in out
    assert "per example in step 1:" in out and "attention check (sdpa)" in out
    assert "normalisation: each trained token weighs 1/" in out
    code, out, _ = run(
        capsys, "batch", "--model", str(tiny_path), "--packing", "--max-length", "80", "--per-device-train-batch-size", "1",
        "--check-attention", "--json",
    )
    bfd = json.loads(out)["attention"]
    code, out, _ = run(
        capsys, "batch", "--model", str(tiny_path), "--packing", "--packing-strategy", "wrapped", "--max-length", "80",
        "--per-device-train-batch-size", "1", "--check-attention", "--json",
    )
    wrapped = json.loads(out)["attention"]
    # The tiny model's near-uniform p(next token) moves ~5e-4 when a segment sees another (0.8 on Gemma).
    assert bfd["max_diff"] < 1e-6 < 1e-4 < bfd["max_diff_plain_call"]
    assert wrapped["max_diff"] > 1e-4
    assert any(s["depends_on"] for s in wrapped["segments"]) and not any(s["depends_on"] for s in bfd["segments"])


def test_conversations_with_a_marked_template_and_assistant_only_loss(capsys, tiny_path, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": f"word {i}?"}, {"role": "assistant", "content": "palabra" * (i + 1)}]}
        for i in range(4)
    ]
    data = jsonl(tmp_path, rows)
    code, out, err = run(
        capsys, "batch", "--model", str(tiny_path), "--data", str(data), "--chat-template", "qwen2_5",
        "--assistant-only-loss", "--json",
    )
    assert code == 0, err
    view = json.loads(out)
    reasons = {r for mb in view["micro_batches"] for row in mb["tokens"]["reason"] for r in row}
    assert "not assistant" in reasons and None in reasons
    assert {seg["row"] for mb in view["micro_batches"] for row in mb["segments"] for seg in row} <= {1, 2, 3, 4}


def test_bench_batch_rows_prepares_once_then_reads_the_cache(capsys, tiny_path):
    code, out, _ = run(capsys, "bench", "--batch-rows", "300", "--model", str(tiny_path), "--json")
    assert code == 0
    result = json.loads(out)
    runs = result["runs"]
    assert [r["cache"] for r in runs] == ["cold", "warm", "warm", "warm"]
    last = runs[0]["steps_per_epoch"]
    assert [r["step"] for r in runs] == [1, 1, max(1, last // 2), last]
    assert result["met"] and result["warm_max_s"] < result["target_s"] == 5.0
    code, _, err = run(capsys, "bench", "--batch-rows", "3", "--model", str(tiny_path))
    assert code == 2 and "--batch-rows 3 is too few" in err


def test_a_config_of_conversations_takes_chat_template_for_a_model_without_one(capsys, tiny_path, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"word {i}?"}, {"role": "assistant", "content": "palabra"}]}
            for i in range(4)]
    path = config(tmp_path, jsonl(tmp_path, rows), per_device_train_batch_size=1, seed=3)
    code, _, err = run(capsys, "batch", "--config", str(path), "--model", str(tiny_path))
    (line,) = [x for x in err.strip().splitlines() if not x.startswith("…")]
    assert code == 2 and "has no chat template" in line and "--chat-template NAME" in line
    code, out, err = run(capsys, "batch", "--config", str(path), "--model", str(tiny_path), "--chat-template", "qwen2_5",
                         "--json")
    assert code == 0, err
    tokens = [t for mb in json.loads(out)["micro_batches"] for row in mb["tokens"]["text"] for t in row]
    assert "<|im_start|>" in "".join(tokens).replace("␣", " ") or "im_start" in "".join(tokens)
