"""`causallm-inspect lesson N` and `export N` on the tiny model: every lesson runs headless,
and every exported script runs on its own (no `inspector` import) and prints what the lesson
shows: the same numbers, computed with plain transformers and TRL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from inspector.cli import main

LESSONS = 15


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model gains nothing from threads on a busy 2-core machine
    yield
    torch.set_num_threads(before)


def headless(capsys, n, tiny_path) -> str:
    code = main(["lesson", str(n), "--plain", "--model", str(tiny_path)])
    out, _ = capsys.readouterr()
    assert code == 0
    return out


def export(capsys, n, tiny_path, tmp_path, *extra) -> tuple:
    target = tmp_path / f"lesson{n}.{'ipynb' if '--notebook' in extra else 'py'}"
    code = main(["export", str(n), "--model", str(tiny_path), "--device", "cpu", "-o", str(target), *extra])
    _, err = capsys.readouterr()
    assert code == 0 and target.is_file() and f"wrote lesson {n}" in err
    return target


def run_script(path, *args) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, env=env, timeout=180, cwd=path.parent
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def line_with(text: str, start: str) -> str:
    """The first line of `text` that starts with `start` (leading spaces ignored)."""
    for line in text.splitlines():
        if line.strip().startswith(start):
            return line.strip()
    raise AssertionError(f"no line starts with {start!r} in:\n{text[-2000:]}")


def trl_version() -> str:
    import trl

    return trl.__version__


def sft_default() -> int | None:
    """SFTConfig's default max_length on the TRL installed (1024 in TRL 1.16)."""
    import dataclasses

    from trl import SFTConfig

    return next(f.default for f in dataclasses.fields(SFTConfig) if f.name == "max_length")


# What each lesson's headless run must show, beyond its prose.
SHOWS = {
    1: [
        "Lesson 1: What a causal LM is trained on",
        "copy (labels copied from input_ids): 22 of 23 tokens trained",
        "(the same: the model shifts inside)",
        "22 positions scored; the label at position 0 is never a target.",
    ],
    2: [
        "the tokenizer adds nothing in front",
        "positions scored: alone 22 · right 22 · left 23",
        "with left padding the last pad is scored on the first real token",
    ],
    3: ["======== training: copy, 3 epochs", "epoch   3  loss", "untrained: prompt", "copy: prompt"],
    4: [
        "training: copy",
        "training: mask",
        "mask: prompt",
        "mask, position by position",
        "under copy: 22 of 23 tokens scored, each weighs 1/22 = 0.0455 of the loss",
        "under mask:  2 of 23 tokens scored, each weighs 1/2 = 0.5000 of the loss",
        "an answer token weighs 11.0× more under mask than under copy",
        "seconds per training step",
        "mask, LM head at trained positions only",
        "mask, embedding frozen",
        "mask vs copy: ",
        "'mask, LM head at trained positions only' is what TRL 1.16's SFTTrainer does",
    ],
    5: [
        "trl (TRL SFTTrainer, completion-only loss): 2 of 23 tokens trained",
        "mask and trl agree on every position",
        "old collator         [-100 ×21, 331, -100]",
        "is MASKED by the old collator",
    ],
    6: [
        "has no chat template",
        "with {% generation %} markers: 26 of 149 tokens",
        "without the markers: 0 of 149",
        "TRL, without markers: raises ValueError",
    ],
    7: [
        "vocabulary 354 → 356",
        "model.resize_token_embeddings(356): embedding rows 354 → 356; the LM head is tied to it: the same rows",
        "the new rows start at the average token (mean_resizing=True, the default)",
        "before: 23 tokens, mask labels [-100 ×21, 331, 1]",
        "after:  15 tokens, mask labels [-100 ×13, 331, 1]",
    ],
    8: [
        "trl (TRL SFTTrainer, completion-only loss): 2 of 44 tokens trained",
        "mask labels: [-100 ×21, 331, 1, -100 ×19, 330, 1]",
        "positions where mask and trl differ: [21, 22]",
    ],
    9: [
        "'Assistant:'           alone [266 288 87 29]  ✗ not found  (0 of 5 examples)",
        "The first that fails: 'Assistant:'",
        "found in 5 of 5 examples, 3 labels trained",
        "after the marker and its space: …#␣Assistant:␣ | perro</s>",
        "✗ not a prefix: at token 20 the prompt alone has ␣, the whole ␣perro; TRL warns",
        "1 of 5 splits merges tokens across the boundary on this tokenizer",
    ],
    10: [
        "the example padded beside a longer one (44 pads)",
        "transformers' DataCollatorForLanguageModeling: [331, -100 ×45] → eos masked ✗",
        "TRL's DataCollatorForLanguageModeling: [331, 1, -100 ×44] → eos trained ✓",
        "mask, eos masked   trains [-100 ×21, 331, -100]",
        "mask               epoch  3",
        "mask, eos masked   epoch  3",
    ],
    11: [
        "======== batch: step 1 as TRL's SFTTrainer builds it",
        "no attention_mask, position_ids restart at each segment",
        "bfd (max_length 144): the held-out segment is after other examples in its row",
        "the keys it sent: input_ids, labels, position_ids, cu_seq_lens_q, cu_seq_lens_k, max_length_q, max_length_k,"
        " seq_idx",
        "labels at the 5 segment boundaries: all -100",
        "the trainer's forward looked at earlier rows: none; the plain call: 1, 2, 3, 4, 5",
        "found: inside the bfd pack the trainer's forward equals the example alone",
        "wrapped: the held-out tokens attend to rows 4, 5 even in the trainer's forward",
        "padding over an epoch of 8 examples: packed (bfd) 4 micro-batches, 196 tokens sent, 0 of them padding",
        "packing saves 6 padding tokens here",
    ],
    12: [
        "row 1 (keeps all): 23 tokens → kept, 2 of 2 trained tokens, its eos trained",
        "row 2 (loses its eos): 25 tokens → kept, 3 of 4 trained tokens, its eos is gone",
        "row 3 (loses every trained token): 27 tokens → DROPPED by TRL",
        "rows dropped: 1 of 3",
        "row 2 is kept and trains its answer, never the stop: lesson 10 shows what that does",
        "row 3 has no trained token left: without packing TRL drops it",
        "packing bfd_split: 4 sequences, 5 pieces, every token kept; 2 train nothing (25 tokens",
        "row 2's cut eos under bfd_split: keeps it as the first token of a piece, whose label is not trained",
        "row 2's cut eos under wrapped: trains it",
        f"SFTConfig's default max_length on TRL {trl_version()}: {sft_default()}; 0 of the 5 training rows are longer",
    ],
    13: [
        "one optimizer step: 4 micro-batches (2 accumulation steps × 2 simulated devices); each trained token weighs 1/28",
        "found: the Trainer's gradient equals the full-batch gradient of the same examples within float error; "
        "the per-micro-batch one does not",
        "num_items_in_batch 188",
        "num_items_in_batch: used (LlamaForCausalLM's forward accepts loss kwargs)",
        "per_micro_batch vs full batch  cosine 0.964644  norm ratio 0.971162",
    ],
    14: [
        "think markers on the model in use: '<think>' is 6 tokens (< · t · h · in · k · >), '</think>' is 7",
        "TRL's assistant_only_loss on qwen3: get_training_chat_template gives qwen3_training: ✓ it trains with that file",
        "turn 1 (message 2): its reasoning DROPPED by the template: nothing to train · ✓ same context as at inference",
        "turn 2 (message 4): 37 trained, 24 of them reasoning · ≠ context differs: 26 tokens only in training, "
        "0 only at inference",
        "earlier reasoning (message 2) is in the training context, not at inference",
        "inference prefills a think opener '<｜Assistant｜><think>\\n' that training trains as the turn's start",
        "15 tokens, 15 of them trained as the start of its answer",
        "qwen3_training, split: 2 rows, 243 tokens read, 74 trained (48 reasoning), 2 of 2 trained turns in inference's context",
    ],
    15: [
        "copy, all             7/7      22/22      47/47      56/56      30/30      59/59",
        "mask, all             7/7      22/22      47/47       0/56      30/30      25/59",
        "trl, final            0/7       0/22       0/47       0/56      15/30      13/59",
        "TRL warned: The chat template does not include the assistant turn's end-of-turn token in the loss mask",
        'the call marked "weight": 0: the mask trains 0 of its 76 tokens; TRL\'s SFTTrainer trains 76: it has no such field',
        "last trains 103 tokens (the call's turn), final 0: there is no final answer",
    ],
}


@pytest.mark.parametrize("n", range(1, LESSONS + 1))
def test_every_lesson_runs_headless(capsys, tiny_path, n):
    out = headless(capsys, n, tiny_path)
    for expected in SHOWS[n]:
        assert expected in out, f"lesson {n} should show {expected!r}"
    assert ("======== training" in out) == (n in (3, 4))  # lesson 10's demo trains in place of its view
    assert ("======== batch" in out) == (n in (11, 13))  # the lessons whose live view is the batch view
    if n == 4:  # the timing compares medians, and never advises running the command that runs
        demo = out.split("======== demo:")[1]
        assert "causallm-inspect lesson" not in demo
        verdicts = [line for line in demo.splitlines() if " vs copy: " in line]
        assert len(verdicts) == 3
        verdict = re.compile(r"vs copy: (cannot conclude: |no clear difference \(|\d+% (faster|slower) \()")
        assert all(verdict.search(v) for v in verdicts), verdicts


def test_a_lesson_by_id_and_as_json(capsys, tiny_path):
    assert main(["lesson", "template-pitfall", "--json", "--model", str(tiny_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["lesson"] == {
        "number": 9,
        "id": "template-pitfall",
        "title": "The template that was not found",
        "view": "labels",
    }
    assert data["labels"]["mask"]["trained_tokens"] == 2
    assert "✗ not found" in data["demo"]["text"]


@pytest.mark.parametrize("wanted", ["0", "16", "nope"])
def test_a_bad_lesson_number_lists_the_valid_ones(capsys, wanted):
    for command in ("lesson", "export"):
        assert main([command, wanted]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Choose a number from 1 to 15" in err and "template-pitfall" in err


def test_export_to_stdout_fills_in_the_model(capsys, tiny_path):
    assert main(["export", "7", "--model", str(tiny_path)]) == 0
    out = capsys.readouterr().out
    assert f"MODEL = {str(tiny_path)!r}" in out and "import inspector" not in out
    compile(out, "lesson7.py", "exec")
    assert main(["export", "7"]) == 0
    assert "MODEL = None" in capsys.readouterr().out  # the embedded Gemma


def test_export_refuses_a_model_folder_that_does_not_exist(capsys, tmp_path):
    assert main(["export", "1", "--model", str(tmp_path / "nothing-here")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_an_exported_notebook_runs(capsys, tiny_path, tmp_path):
    target = export(capsys, 7, tiny_path, tmp_path, "--notebook")
    notebook = json.loads(target.read_text())
    cells = notebook["cells"]
    assert notebook["nbformat"] == 4 and cells[0]["cell_type"] == "markdown"
    assert "Templates as special tokens" in "".join(cells[0]["source"])
    code = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    script = tmp_path / "from_notebook.py"
    script.write_text(code)
    assert "after:  15 tokens, mask labels [-100 ×13, 331, 1]" in run_script(script, "-f", "kernel.json")


def _summary(text: str, name: str) -> str:
    """The learning view's summary line of a strategy: "copy: prompt 0.18 -> 0.86, answer ..."."""
    return next(line for line in text.splitlines() if line.startswith(f"{name}: prompt ") and " -> " in line)


def _ints(line: str) -> list[str]:
    return re.findall(r"(?<![\d.])\d+(?![\d.])", line)


def _gradient_figures(line: str) -> list[str]:
    return re.findall(r"(?:cosine|norm ratio) (\d+\.\d+)", line)


def _numbers(line: str) -> list[str]:
    return re.findall(r"\d+\.\d{4}", line)


@pytest.mark.parametrize("n", range(1, LESSONS + 1))
def test_every_exported_script_runs_and_shows_what_the_lesson_shows(capsys, tiny_path, tmp_path, n):
    lesson = headless(capsys, n, tiny_path)
    script = run_script(export(capsys, n, tiny_path, tmp_path), "--epochs", "1")
    if n == 1:
        for start in (
            "model(input_ids, labels=labels).loss",
            "logits[:-1] vs labels[1:]",
            "labels shifted by hand too",
        ):
            assert _numbers(line_with(script, start)) == _numbers(line_with(lesson, start))
    elif n == 2:
        assert _numbers(line_with(script, "alone:")) == _numbers(line_with(lesson, "its loss:"))[:1]
        assert _numbers(line_with(script, "right-padded:")) == _numbers(line_with(lesson, "its loss:"))[1:2]
        assert _numbers(line_with(script, "left-padded:")) == _numbers(line_with(lesson, "its loss:"))[2:]
        assert "left-padded: loss" in script and ", 23 positions scored" in line_with(script, "left-padded:")
    elif n in (3, 4):
        # Epoch 1 of the lesson's three-epoch burst is the script's one-epoch run, to the digit.
        assert line_with(script, "epoch   1") == line_with(lesson, "epoch   1")
        assert line_with(script, "untrained: prompt") == line_with(lesson, "untrained: prompt")
        # The learning view as text: the same heat map lines, epoch 0 and 1, and epoch 0's means.
        for start in ("epoch   0 |", "epoch   1 |", "answer    |"):
            assert line_with(script, start) == line_with(lesson, start)
        for name in ("copy", "mask") if n == 4 else ("copy",):
            ours, theirs = (_summary(out, name) for out in (script, lesson))
            assert ours.split(" -> ")[0] == theirs.split(" -> ")[0] and ours.endswith("(epoch 0 -> 1)")
        if n == 4:
            assert "seconds per training step" in script and "mask, embedding frozen" in script
            assert line_with(script, "mask labels of example 1") == "mask labels of example 1: 2 of 23 tokens trained"
            for start in ("under copy:", "under mask:", "an answer token weighs", "measured on the model in use"):
                assert line_with(script, start) == line_with(lesson, start)
    elif n == 5:
        for start in ("create_special_mask  [", "old collator         ["):
            assert line_with(script, start).startswith(line_with(lesson, start))
        assert "TRL and the mask agree on every position" in script
        assert "the final </s>: mask trains it, the old collator MASKS it" in script
    elif n == 6:
        for start in ("with {% generation %} markers", "without the markers"):
            assert line_with(lesson, start).startswith(line_with(script, start))
        assert "TRL, with markers: 26 labels trained, the same tokens as the mask" in script
        assert "TRL, without markers: raises ValueError" in script
    elif n == 7:
        for start in ("before:", "after:"):
            assert line_with(script, start) == line_with(lesson, start)
        assert "embedding matrix now (356, 32)" in script
        assert "the LM head is tied to the embedding: the same new rows" in script
        for start in ("its 2 new rows vs the mean", "with mean_resizing=False"):  # the same seeded rows
            assert line_with(script, start) == line_with(lesson, start)
    elif n == 8:
        assert line_with(script, "positions where") == line_with(lesson, "positions where")
        assert "trained by the mask only: ␣perro </s>" in script
    elif n == 9:
        assert line_with(script, "'Assistant:'").replace(",", "") == line_with(lesson, "'Assistant:'")
        assert "old collator with the template as text: 0 labels trained" in script
        assert line_with(script, "fix:").endswith("found in 5 of 5 examples, 3 labels trained")
        splits = [x.strip() for x in lesson.splitlines() if x.strip().startswith(("✓ a prefix", "✗ not a prefix"))]
        assert len(splits) == 5
        assert [x.strip() for x in script.splitlines() if x.strip().startswith(("✓ a prefix", "✗ not a prefix"))] == splits
        assert line_with(script, "1 of 5 splits merges") == line_with(lesson, "1 of 5 splits merges").split(":")[0]
    elif n == 10:
        starts = ("this tokenizer's pad", "transformers' DataCollator", "TRL's DataCollator")
        for start in ("mask               epoch  1", "mask, eos masked   epoch  1", *starts):
            assert line_with(script, start) == line_with(lesson, start)
    elif n == 11:  # the same segment, the same forward passes: the same digits
        assert "the held-out one is at [115,138)" in script and "attention_mask sent: False" in script
        sent = line_with(lesson, "the keys it sent:").split(": ")[1]  # bfd's, read off TRL's batch
        assert line_with(script, "the keys the collator sent:") == f"the keys the collator sent: {sent}"
        same_packing_figures(lesson, script)
    elif n == 12:
        same_truncation_figures(lesson, script)
    elif n == 13:
        same_weights_figures(lesson, script)
    elif n == 14:
        same_reasoning_figures(lesson, script)
    elif n == 15:
        same_tool_call_figures(lesson, script)


# --- lessons 11-13: the figures the lesson and its script share (the embedded model's test uses them too)


def same_packing_figures(lesson: str, script: str) -> None:
    dps = [x.strip() for x in lesson.splitlines() if x.strip().startswith("max |dp| vs alone:")]
    figures = re.compile(r"\d\.\d\de[-+]\d\d")
    assert figures.findall(line_with(script, "max |dp| vs alone:")) == figures.findall(dps[0])
    assert figures.findall(line_with(script, "wrapped max |dp|")) == figures.findall(dps[1])  # bfd's, then wrapped's
    for start in ("packed micro-batch loss (eval mode)", "packed micro-batch loss (train mode)"):
        assert line_with(lesson, start).startswith(line_with(script, start))  # the lesson adds the difference
    rows = line_with(lesson, "wrapped: the held-out tokens attend to rows").split("rows ")[1].split(" even")[0]
    assert line_with(script, "wrapped max |dp|").endswith(f"rows before it in the block: {rows}")
    padding = _ints(line_with(lesson, "padding over an epoch"))
    assert _ints(line_with(script, "padding, packed (bfd)")) == padding[1:4]
    assert _ints(line_with(script, "padding, unpacked")) == padding[4:]


def same_truncation_figures(lesson: str, script: str) -> None:
    """The cut rows as TRL prepares them, the packed pieces, the cut eos and SFTConfig's default max_length."""
    assert line_with(script, "max_length").startswith(line_with(lesson, "max_length").split(", no packing")[0])
    for row in ("row 1", "row 2", "row 3"):  # row, tokens, trained tokens kept, of
        assert _ints(line_with(script, f"{row}:")) == _ints(line_with(lesson, f"{row} ("))
    for start in ("rows dropped", "packing bfd_split", "packing wrapped", "SFTConfig's default max_length"):
        assert line_with(script, start) == line_with(lesson, start)
    fates = [x.strip() for x in lesson.splitlines() if "'s cut eos under " in x]
    assert fates == [x.strip() for x in script.splitlines() if "'s cut eos under " in x]


def same_weights_figures(lesson: str, script: str) -> None:
    assert line_with(script, "one optimizer step").split("; ")[1] == line_with(lesson, "one optimizer step").split(
        ": num_items")[0].split("; ")[1]
    for name in ("trainer vs full batch", "per_micro_batch vs full batch"):
        assert _gradient_figures(line_with(script, name)) == _gradient_figures(line_with(lesson, name))
    assert _ints(line_with(script, "copy labels")) == _ints(line_with(lesson, "copy labels"))[-1:]
    assert line_with(script, "num_items_in_batch:") == line_with(lesson, "num_items_in_batch:")


# --- lessons 14-15: the panel's figures, computed again by the script without causallm-inspect

_TURN_FIGURES = re.compile(
    r"(\d+) trained, (\d+) of them reasoning|in the text, (\d+) tokens|(dropped)|(same context)"
    r"|(\d+) tokens only in training, (\d+) only at inference",
    re.IGNORECASE,
)


def _turn_figures(line: str) -> list[tuple[str, ...]]:
    return [tuple(g.lower() for g in m.groups() if g) for m in _TURN_FIGURES.finditer(line)]


def _block_turns(text: str, start: str) -> list[str]:
    """The turn lines of one template's block of the panel (the lines after the one that starts with `start`)."""
    lines = [x.strip() for x in text.splitlines()]
    at = next(i for i, x in enumerate(lines) if x.startswith(start))
    return [x for x in lines[at + 1 : at + 3] if x.startswith("turn ")]


def same_reasoning_figures(lesson: str, script: str) -> None:
    opener = _ints(line_with(lesson, "think markers on the model in use"))[:2]
    assert [_ints(line_with(script, f"think marker '{m}'"))[0] for m in ("<think>", "</think>")] == opener
    assert "get_training_chat_template, qwen3: qwen3_training yes" in script
    assert "get_training_chat_template, deepseek_r1_distill: deepseek_r1_distill_training yes" in script
    for name in ("qwen3", "qwen3_training", "deepseek_r1_distill_training"):
        ours = [_turn_figures(line_with(script, f"{name} turn {n}:")) for n in (1, 2)]
        assert ours == [_turn_figures(x) for x in _block_turns(lesson, f"{name} (")], name
        for policy in ("all", "split"):
            if name != "qwen3":
                assert _ints(line_with(script, f"{name}, {policy}:")) == _ints(line_with(lesson, f"{name}, {policy}:"))
    empty = re.compile(r"(\d+) tokens[ ,(].*?(\d+) of them trained")
    assert empty.search(line_with(script, "empty think block:")).groups() == \
        empty.search(line_with(lesson, "a turn with no reasoning").split("),", 1)[1]).groups()


def same_tool_call_figures(lesson: str, script: str) -> None:
    for row in ("copy, all", "mask, all", "mask, last", "mask, final", "trl, all", "trl, last", "trl, final"):
        assert line_with(script, row) == line_with(lesson, row), row
    assert _ints(line_with(script, "the call marked")) == _ints(line_with(lesson, "the call marked"))
    assert _ints(line_with(script, "cut after the call")) == _ints(line_with(lesson, "the conversation cut after"))
