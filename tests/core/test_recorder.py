"""The recorder in one process: what it records is what the Trainer's data loader yielded, the audit
runs before the first optimizer step and finds a planted problem, `stop_on_problem` stops the run
there, and a recording is read whole or refused in one line. The two-process run is in
tests/test_recorder_torchrun.py."""

from __future__ import annotations

import json

import pytest
from sample_rows import jsonl

from inspector.core.errors import InspectorError

ROWS = [{"prompt": f"How do you say word {i} in Spanish?", "completion": " palabra" * (1 + i % 4)} for i in range(12)]
TOKEN_KEYS = ("input_ids", "labels", "position_ids", "cu_seq_lens_q")


def trainer_for(tiny_path, tmp_path, callback, **values):
    """TRL's SFTTrainer on the tiny model, packed (bfd), two micro-batches per step, with a spy on the
    batches its data loader yields (`Trainer.get_batch_samples` collects them)."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    yielded = []

    class Spied(SFTTrainer):
        def get_batch_samples(self, epoch_iterator, num_batches, device):
            batches, count = super().get_batch_samples(epoch_iterator, num_batches, device)
            yielded.append(([{k: v.tolist() for k, v in b.items() if hasattr(v, "tolist")} for b in batches], count))
            return batches, count

    settings = dict(packing=True, max_length=48, per_device_train_batch_size=1, gradient_accumulation_steps=2, max_steps=2, seed=3)
    settings.update(values)
    args = SFTConfig(
        output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, save_strategy="no", logging_strategy="no",
        disable_tqdm=True, **settings,
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    dataset = load_dataset("json", data_files=str(jsonl(tmp_path, ROWS)), split="train")
    trainer = Spied(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=[callback] if callback else None)
    return trainer, yielded


def test_each_micro_batch_is_recorded_as_the_data_loader_yielded_it(tiny_path, tmp_path):
    """With activation checkpointing on: one record per micro-batch, one forward each."""
    from inspector.recorder import RecorderCallback, open_recording

    to = tmp_path / "rec"
    trainer, yielded = trainer_for(tiny_path, tmp_path, RecorderCallback(to, steps=2), activation_checkpointing=True)
    trainer.train()
    rec = open_recording(to)
    assert rec.steps == [1, 2] and rec.world_size == 1 and rec.ended == [0] and rec.incomplete == {}
    assert rec.run["gradient_accumulation_steps"] == 2 and rec.run["args"]["packing_strategy"] == "bfd"
    assert rec.run["versions"]["trl"] and rec.run["stop_tokens"] == {"1": "</s>"}
    for step, (batches, count) in enumerate(yielded, 1):
        got = rec.micro_batches(step, 0)
        assert len(got) == len(batches) == 2
        for mb, batch in zip(got, batches):
            assert {k: mb[k] for k in TOKEN_KEYS} == {k: batch[k] for k in TOKEN_KEYS}
            assert mb["attention_mask"] is None and mb["forward_calls"] == 1
            assert mb["num_items_in_batch"] == float(count) and mb["num_items_source"] == "trainer"
            assert mb["other_inputs"]["use_cache"] is False and mb["other_inputs"]["fused_lm_head"] is True
            assert mb["loss"] * count == pytest.approx(mb["ce_sum"], rel=1e-5)  # TRL: summed loss ÷ the step's count
    audit = rec.audit
    assert audit["step"] == 1 and audit["problems"] == [] and audit["total_trained"] == yielded[0][1]
    assert all(r["weight_x_n"] == pytest.approx(1, rel=1e-5) for r in audit["micro_batches"])
    assert dict(trainer.model._forward_pre_hooks) == {} and "training_step" not in vars(trainer)  # all put back


class MaskEos:
    """A user's collator that masks the eos: the model never learns to stop."""

    def __init__(self, inner, eos):
        self.inner, self.eos = inner, eos

    def __call__(self, examples):
        out = self.inner(examples)
        out["labels"][out["input_ids"] == self.eos] = -100
        return out


def test_a_collator_that_masks_the_eos_stops_the_run_before_its_first_optimizer_step(tiny_path, tmp_path, capsys):
    import torch

    from inspector.recorder import RecorderCallback, RecorderStop, open_recording

    to = tmp_path / "rec"
    trainer, _ = trainer_for(tiny_path, tmp_path, RecorderCallback(to, stop_on_problem=True))
    trainer.data_collator = MaskEos(trainer.data_collator, trainer.processing_class.eos_token_id)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(RecorderStop) as stopped:
        trainer.train()
    assert "before the first optimizer step" in str(stopped.value) and "</s> (1) appears" in str(stopped.value)
    assert trainer.state.global_step == 0
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())  # no weight moved
    table = capsys.readouterr().out
    assert "stop tokens trained             PROBLEM" in table and "the run stops here" in table
    rec = open_recording(to)
    assert rec.steps == [1] and rec.audit["stopped"] and rec.audit["problems"] == ["stop tokens trained"]
    assert dict(trainer.model._forward_pre_hooks) == {}


def test_a_loss_that_is_each_micro_batch_s_mean_shows_in_the_weights(tiny_path, tmp_path):
    """A model that takes no loss kwargs gets no num_items_in_batch: SFTTrainer divides each micro-batch
    by its own count and the Trainer by the accumulation steps, so tokens weigh unequally."""
    from inspector.recorder import RecorderCallback, open_recording

    to = tmp_path / "rec"
    trainer, yielded = trainer_for(tiny_path, tmp_path, RecorderCallback(to, steps=1), max_steps=1)
    trainer.model_accepts_loss_kwargs = False
    trainer.train()
    audit = open_recording(to).audit
    assert yielded[0][1] is None and audit["problems"] == ["every trained token weighs 1/N"]
    n = audit["total_trained"]
    for r in audit["micro_batches"]:  # each micro-batch's mean ÷ 2 accumulation steps: weight 1/(2·n_mb)
        assert r["weight_x_n"] == pytest.approx(n / (2 * r["trained"]), rel=1e-5)


def _fake(tmp_path, world, steps_per_rank):
    from inspector.core.recorder import record_files as files

    root = tmp_path / "fake"
    files.write_json(root / files.RUN_FILE, {"format": files.FORMAT, "format_version": files.FORMAT_VERSION, "world_size": world})
    for rank, steps in enumerate(steps_per_rank):
        files.rank_folder(root, rank).mkdir(parents=True)
        for step in steps:
            row = {"step": step, "micro_step": 0, "rank": rank, "input_ids": [[1, 2, 3]], "other_inputs": "{}"}
            files.write_step(root, rank, step, [row])
    return root


def test_a_recording_is_read_whole_or_refused_in_one_line(tmp_path):
    from inspector.core.recorder.record_files import open_recording

    root = _fake(tmp_path, 2, [[1, 2], [1]])  # rank 1 was killed before it wrote step 2
    (root / "rank-00001" / ".step-000002.parquet.99.tmp").write_bytes(b"PAR1 cut short")  # its file never renamed
    rec = open_recording(root)
    assert rec.steps == [1] and rec.incomplete == {2: [1]} and rec.micro_batches(1, 1)[0]["input_ids"] == [[1, 2, 3]]
    with pytest.raises(InspectorError, match="step 2 of .* was not recorded by rank 1 .*whole steps: 1"):
        rec.micro_batches(2, 0)
    with pytest.raises(InspectorError, match="step 5 was not recorded"):
        rec.micro_batches(5, 0)
    with pytest.raises(InspectorError, match="is not a recording: it has no run.json"):
        open_recording(tmp_path)
    run = json.loads((root / "run.json").read_text())
    (root / "run.json").write_text(json.dumps({**run, "world_size": 3}))
    with pytest.raises(InspectorError, match="lacks rank 2's folder"):
        open_recording(root)


def test_the_callback_refuses_bad_settings_and_a_used_folder(tiny_path, tmp_path):
    from inspector import RecorderCallback  # the package's own name for it, loaded on first use

    with pytest.raises(InspectorError, match="steps 0 is not a number of steps"):
        RecorderCallback(tmp_path, steps=0)
    with pytest.raises(InspectorError, match="share_band"):
        RecorderCallback(tmp_path, share_band=(0.9, 0.1))
    root = _fake(tmp_path, 1, [[1]])
    trainer, _ = trainer_for(tiny_path, tmp_path, RecorderCallback(root))
    with pytest.raises(InspectorError, match="already holds a recording"):
        trainer.train()


@pytest.mark.parametrize(
    "sent, implementation, apart",
    [
        ({}, "sdpa", True),  # no mask, no cache: transformers' block-causal mask from position_ids
        ({"other": {"use_cache": True}}, "sdpa", False),  # with a cache it reads no sequences from position_ids
        ({"attention_mask": [[1] * 6]}, "sdpa", False),  # a 2D mask hides padding only
        ({"other": {"use_cache": True}, "cu_seq_lens_q": [0, 3, 6]}, "flash_attention_2", True),
        ({"attends_from": [[0, 0, 0, 3, 3, 3]]}, "sdpa", True),  # a 4D block mask, as recorded
        ({"attends_from": [[0, 0, 0, 0, 0, 0]]}, "eager", False),
    ],
)
def test_the_audit_judges_packed_attention_from_what_the_model_got(sent, implementation, apart):
    import numpy as np

    from inspector.core.recorder.audit import judge
    from inspector.core.recorder.capture import MicroRecord
    from inspector.core.recorder.rank_stats import rank_stats

    rec = MicroRecord(1, 0, 0, other_inputs=sent.get("other", {}))
    rec.arrays = {"input_ids": np.array([[5, 6, 1, 7, 8, 1]]), "labels": np.array([[-100, 6, 1, -100, 8, 1]]),
                  "position_ids": np.array([[0, 1, 2, 0, 1, 2]])}
    rec.arrays.update({k: np.array(v) for k, v in sent.items() if k != "other"})
    stats = rank_stats([rec], rank=0, stop_ids=[1], shifts=True, implementation=implementation, config_use_cache=False,
                       epoch=([[0]], "given"))
    audit = judge([stats], step=1, backward_divides_by=1, stop_tokens={1: "</s>"})
    (check,) = [c for c in audit.checks if c.name == "packed sequences kept apart"]
    assert (check.status == "ok") is apart, check.detail
    assert audit.micro_batches[0]["sequences"] == 2 and audit.micro_batches[0]["trained"] == 4


def test_the_recorder_changes_nothing_in_the_run(tiny_path, tmp_path):
    """Into a second epoch (3 steps each): the same batches and the same weights with and without it."""
    import torch

    from inspector.recorder import RecorderCallback

    runs = []
    for callback in (RecorderCallback(tmp_path / "rec", steps=1, every=3), None):
        folder = tmp_path / str(len(runs))
        folder.mkdir()
        trainer, yielded = trainer_for(tiny_path, folder, callback, max_steps=4, per_device_train_batch_size=2)
        trainer.train()
        runs.append((yielded, trainer.model.state_dict()))
    (with_it, weights), (without, plain) = runs
    assert with_it == without and all(torch.equal(weights[k], plain[k]) for k in plain)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--to", "{tmp}/r"], "record needs the run's config"),
        (["--config", "{cfg}", "--to", "{tmp}/r", "--steps", "0"], "--steps 0 is not a number of steps"),
        (["--config", "{cfg}", "--to", "{tmp}/r", "--model", "{tmp}/nothing"], "the model folder {tmp}/nothing does not exist"),
        (["--config", "{cfg}", "--to", "{tmp}/fake"], "{tmp}/fake already holds a recording"),
    ],
)
def test_record_refuses_bad_input_in_one_line(capsys, tmp_path, argv, message):
    from inspector.cli import main

    _fake(tmp_path, 1, [[1]])
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"datasets:\n  - path: json\n    data_files: {jsonl(tmp_path, ROWS)}\nmodel_name_or_path: {tmp_path}\nuse_cpu: true\n")
    assert main(["record", *(a.format(tmp=tmp_path, cfg=cfg) for a in argv)]) == 2
    lines = [x for x in capsys.readouterr().err.strip().splitlines() if not x.startswith("…")]
    assert len(lines) == 1 and message.format(tmp=tmp_path) in lines[0]


def test_record_names_a_missing_chat_template(tiny_path, tmp_path, capsys):
    """Conversational data and a tokenizer without a chat template (the tiny model has none): one line
    naming the config key to set, not SFTTrainer's error."""
    from inspector.cli import main

    chats = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}] * 2
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"datasets:\n  - path: json\n    data_files: {jsonl(tmp_path, chats)}\nmodel_name_or_path: {tiny_path}\n"
                   f"use_cpu: true\noutput_dir: {tmp_path / 'out'}\nreport_to: none\n")
    assert main(["record", "--config", str(cfg), "--to", str(tmp_path / "r")]) == 2
    lines = [x for x in capsys.readouterr().err.strip().splitlines() if not x.startswith("…")]
    assert len(lines) == 1 and "has no chat template, and the data is conversational" in lines[0]
    assert "set chat_template_path in the config" in lines[0].lower()
