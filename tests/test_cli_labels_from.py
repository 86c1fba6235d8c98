"""`--labels-from FILE[:FUNCTION]` on the headless commands: the custom strategy, and errors in the user's code."""

from __future__ import annotations

import json

import pytest

from inspector.cli import main

RIGHT = '''
def make_labels(example, tokenizer):
    human_text = True
    for idx, tok_id in enumerate(example["labels"]):
        if human_text:
            example["labels"][idx] = -100
            if tok_id == tokenizer.bos_token_id and idx > 0:
                human_text = False
        elif tok_id == tokenizer.eos_token_id:
            human_text = True
    return example
'''


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def right(tmp_path):
    f = tmp_path / "mask.py"
    f.write_text(RIGHT, encoding="utf-8")
    return f


def test_labels_from_defaults_to_custom_and_counts_the_difference(capsys, tiny_path, right):
    code, out, _ = run(capsys, "labels", "--model", str(tiny_path), "--labels-from", str(right), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["strategy"] == "custom" and data["function"] == "make_labels" and data["file"] == str(right)
    assert all(e["differs_from"] == {"reference": "mask", "positions": [], "count": 0} for e in data["examples"])
    code, mask_out, _ = run(capsys, "labels", "--model", str(tiny_path), "--strategy", "mask", "--json")
    assert [e["tokens"] for e in data["examples"]] == [e["tokens"] for e in json.loads(mask_out)["examples"]]
    code, out, _ = run(capsys, "labels", "--model", str(tiny_path), "--labels-from", str(right), "--reference", "copy")
    assert code == 0
    assert "example 1: make_labels (custom: your own label function): 2 of 23 tokens trained" in out
    assert "differs from copy at 21 positions: positions 0, 1, 2" in out


def test_a_function_named_after_the_colon(capsys, tiny_path, tmp_path):
    f = tmp_path / "m.py"
    f.write_text(RIGHT.replace("make_labels", "create_special_mask"), encoding="utf-8")
    code, out, _ = run(capsys, "labels", "--model", str(tiny_path), "--labels-from", f"{f}:create_special_mask")
    assert code == 0 and "example 1: create_special_mask (custom" in out


@pytest.mark.parametrize(
    "code_text, expected",
    [
        ("def make_labels(example, tokenizer)\n    return example\n", ["syntax error at {f}, line 1", "SyntaxError"]),
        (
            "def make_labels(example, tokenizer):\n    return example['labels'][:3]\n",
            ["wrong return at {f}, line 1 (example 1)", "returned 3 labels for 23 tokens"],
        ),
        (
            "def make_labels(example, tokenizer):\n    return example['nope']\n",
            ["exception at {f}, line 2 (example 1)", 'File "{f}", line 2, in make_labels', "KeyError: 'nope'"],
        ),
    ],
    ids=["syntax", "wrong-return", "exception"],
)
@pytest.mark.parametrize("command", ["labels", "train", "predict"])
def test_errors_in_the_users_code_exit_2_with_file_and_line(capsys, tiny_path, tmp_path, code_text, expected, command):
    f = tmp_path / "broken.py"
    f.write_text(code_text, encoding="utf-8")
    argv = [command, "--model", str(tiny_path), "--labels-from", str(f)]
    if command != "labels":
        argv += ["--strategy", "custom", "--epochs", "1"]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    for e in expected:
        assert e.format(f=f) in err
    assert "inspector/" not in err  # the traceback is trimmed to the user's frames


def test_custom_without_labels_from_is_refused(capsys, tiny_path):
    for argv in (["labels"], ["train", "--epochs", "1"]):
        code, _, err = run(capsys, *argv, "--model", str(tiny_path), "--strategy", "custom")
        assert code == 2 and "--strategy custom needs your label function" in err and "--labels-from" in err


def test_train_custom_gives_the_losses_of_mask(capsys, tiny_path, right):
    losses = {}
    for strategy in ("mask", "custom"):
        code, out, _ = run(
            capsys, "train", "--model", str(tiny_path), "--strategy", strategy, "--labels-from", str(right),
            "--epochs", "2", "--lr", "0.01", "--json",
        )
        assert code == 0
        data = json.loads(out)
        losses[strategy] = [s["loss"] for s in data["steps"]]
    assert data["function"] == "make_labels" and len(data["fingerprint"]) == 12
    assert losses["custom"] == losses["mask"]


def test_predict_after_a_custom_burst(capsys, tiny_path, right):
    code, out, _ = run(
        capsys, "predict", "--model", str(tiny_path), "--strategy", "custom", "--labels-from", str(right),
        "--epochs", "1", "--lr", "0.01",
    )
    assert code == 0 and "teacher-forced predictions, after make_labels, 1 epochs" in out


def test_inspect_data_reports_the_custom_strategy(capsys, tiny_path, tmp_path, right):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "\n\n### Human: hi\n\n### Assistant: hola"}) + "\n", encoding="utf-8")
    no_eos = tmp_path / "no_eos.py"
    no_eos.write_text(RIGHT.replace("    return example", "    example['labels'][-1] = -100\n    return example"))
    code, out, _ = run(capsys, "inspect-data", str(data), "--model", str(tiny_path), "--labels-from", str(right), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["strategies"]["custom"]["trained_tokens"] == report["strategies"]["mask"]["trained_tokens"]
    code, out, _ = run(
        capsys, "inspect-data", str(data), "--model", str(tiny_path), "--labels-from", str(no_eos),
        "--fail-on", "eos-not-trained", "--json",
    )
    assert code == 1
    assert [(p["kind"], p["strategy"]) for p in json.loads(out)["problems"]] == [("eos-not-trained", "custom")]


def test_the_help_says_the_code_runs_in_a_separate_process(capsys):
    with pytest.raises(SystemExit):
        main(["labels", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "separate process" in out and "loaded only when named here" in out


HOSTILE = {
    # (the file, what stopped it, the lines it may be caught at: a loop at its test or its body)
    "loop": ("def make_labels(example, tokenizer):\n    while True:\n        pass\n", "time limit", (2, 3)),
    "exits": ("import sys\ndef make_labels(example, tokenizer):\n    sys.exit()\n", "exit", (3,)),
    "os_exit": ("import os\ndef make_labels(example, tokenizer):\n    os._exit(0)\n", "exit", (3,)),
    "segfault": ("import ctypes\ndef make_labels(example, tokenizer):\n    ctypes.string_at(0)\n", "crash", (3,)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_code_that_would_end_the_command_ends_it_with_one_line_and_exit_2(tiny_path, tmp_path, name):
    # A subprocess, as a user runs it: the command itself must survive to say what happened.
    import subprocess
    import sys

    body, kind, at = HOSTILE[name]
    f = tmp_path / f"{name}.py"
    f.write_text(body, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "inspector", "labels", "--model", str(tiny_path), "--labels-from", str(f),
         "--labels-timeout", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("… loading")]
    assert len(lines) == 1, done.stderr
    assert any(f"{kind} at {f}, line {n}" in lines[0] for n in at) and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_function_that_trains_nothing_is_refused_before_any_step(capsys, tiny_path, tmp_path):
    f = tmp_path / "nothing.py"
    f.write_text("def make_labels(example, tokenizer):\n    return [-100] * len(example['input_ids'])\n")
    code, out, err = run(capsys, "train", "--model", str(tiny_path), "--strategy", "custom", "--labels-from", str(f), "--epochs", "1")
    assert code == 2
    assert "your label function make_labels trains no token of any of the 5 examples" in err and "step" not in out
    assert len([x for x in err.splitlines() if x.strip()]) <= 2


def test_examples_that_train_nothing_are_named_and_the_rest_trained(capsys, tiny_path, tmp_path):
    f = tmp_path / "some.py"
    f.write_text(
        "def make_labels(example, tokenizer):\n"
        "    if 'perro' in example['text']:\n"
        "        return [-100] * len(example['input_ids'])\n"
        "    return list(example['input_ids'])\n"
    )
    code, out, err = run(capsys, "train", "--model", str(tiny_path), "--strategy", "custom", "--labels-from", str(f), "--epochs", "1", "--json")
    assert code == 0, err
    assert "note: custom: example 1 of 5 trains no token (every label -100): left out, the other 4 are trained." in err
    assert len(json.loads(out)["steps"]) == 4
