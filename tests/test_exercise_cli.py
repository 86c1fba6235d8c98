"""`causallm-inspect exercise N [--check FILE]`: the starter file and the exit codes of the check."""

from __future__ import annotations

import json

from label_functions import LAST_ANSWER, NO_EOS, RIGHT

from inspector.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_exercise_writes_the_starter_and_check_fails_it(capsys, tiny_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "exercise", "4")
    assert code == 0
    starter = tmp_path / "exercise_4_mask.py"
    assert "TODO" in starter.read_text() and "def make_labels(example, tokenizer):" in starter.read_text()
    assert "causallm-inspect exercise 4 --check exercise_4_mask.py" in out
    code, _, err = run(capsys, "exercise", "4")  # never over the user's work
    assert code == 2 and "already exists" in err
    code, out, _ = run(capsys, "exercise", "4", "--check", "--model", str(tiny_path))  # the starter's name by default
    assert code == 1 and "✗ lesson example 1:" in out and "0 of 10 examples pass" in out


def test_check_passes_a_right_function_and_fails_an_off_by_one(capsys, tiny_path, tmp_path):
    right, wrong = tmp_path / "right.py", tmp_path / "wrong.py"
    right.write_text(RIGHT)
    wrong.write_text(NO_EOS)
    code, out, _ = run(capsys, "exercise", "4", "--check", str(right), "--model", str(tiny_path))
    assert code == 0 and "10 of 10 examples pass: all match the reference" in out
    code, out, _ = run(capsys, "exercise", "mask", "--check", str(wrong), "--model", str(tiny_path))
    assert code == 1
    assert "✗ lesson example 1: 1 position differs: position 22 '</s>': expected 1, got -100" in out
    code, out, _ = run(capsys, "exercise", "4", "--check", str(wrong), "--model", str(tiny_path), "--json")
    data = json.loads(out)
    assert code == 1 and data["passed"] is False
    assert data["results"][0]["differences"] == [{"position": 22, "token": "</s>", "expected": 1, "got": -100}]


def test_exercise_8_is_checked_against_trl_and_the_mask_answer_fails_it(capsys, tiny_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "exercise", "8")[0] == 0
    code, out, err = run(capsys, "exercise", "8", "--check", "--model", str(tiny_path))  # the starter: one turn only
    assert code == 1 and "✓ hidden: one turn" in out and "1 of 5 examples pass" in out
    assert "asking TRL's SFTTrainer for the reference" in err
    mask, last = tmp_path / "mask.py", tmp_path / "last.py"
    mask.write_text(RIGHT)
    last.write_text(LAST_ANSWER)
    code, out, _ = run(capsys, "exercise", "8", "--check", str(mask), "--model", str(tiny_path))
    assert code == 1 and "✗ lesson example: 2 positions differ: position 21 '␣perro': expected -100, got" in out
    code, out, _ = run(capsys, "exercise", "multi-turn", "--check", str(last), "--model", str(tiny_path))
    assert code == 0 and "5 of 5 examples pass: all match the reference" in out


def test_check_of_a_file_that_does_not_load_exits_2(capsys, tiny_path, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def make_labels(example, tokenizer):\n    return [\n")
    code, out, err = run(capsys, "exercise", "4", "--check", str(bad), "--model", str(tiny_path))
    assert code == 2 and out == ""
    assert f"syntax error at {bad}, line 2" in err and "SyntaxError" in err
    code, _, err = run(capsys, "exercise", "4", "--check", str(tmp_path / "none.py"), "--model", str(tiny_path))
    assert code == 2 and "there is no file" in err
    code, _, err = run(capsys, "exercise", "3")
    assert code == 2 and "has no exercise" in err


def test_one_error_in_every_case_is_shown_once_with_the_cases_it_hit(capsys, tiny_path, tmp_path):
    f = tmp_path / "raises.py"
    f.write_text('def make_labels(example, tokenizer):\n    return example["labels"][len(example["text"])]\n')
    code, out, _ = run(capsys, "exercise", "4", "--check", str(f), "--model", str(tiny_path))
    assert code == 1
    assert out.count("Traceback (your code only)") == 1 and out.count("IndexError: list index out of range") == 2
    assert "✗ 10 examples (lesson example 1, lesson example 2," in out and "hidden: an empty answer)" in out
    assert "0 of 10 examples pass" in out


def test_a_loop_in_an_exercise_is_stopped_and_said_once(capsys, tiny_path, tmp_path):
    f = tmp_path / "loops.py"
    f.write_text("def make_labels(example, tokenizer):\n    while True:\n        pass\n")
    code, out, err = run(capsys, "exercise", "4", "--check", str(f), "--model", str(tiny_path), "--labels-timeout", "0.5")
    assert code == 1, (out, err)
    assert out.count("time limit at") == 1 and "✗ 10 examples" in out and "--labels-timeout" in out


def test_exercises_11_and_13_name_their_function_and_are_checked_on_the_model(capsys, tiny_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "exercise", "13")
    assert code == 0 and "watch its check in the app" in out
    starter = tmp_path / "exercise_13_weights.py"
    assert "def token_weights(micro_batches):" in starter.read_text()
    code, out, _ = run(capsys, "exercise", "13", "--check", "--model", str(tiny_path))
    assert code == 1 and "0 of 5 steps pass" in out and "micro-batch 0, row 0, position" in out
    head = starter.read_text().split("def token_weights")[0]
    starter.write_text(head + (
        "def token_weights(micro_batches):\n"
        "    n = sum(1 for mb in micro_batches for row in mb['labels'] for x in row[1:] if x != -100)\n"
        "    return [[[1 / n if t and x != -100 else 0.0 for t, x in enumerate(r)] for r in mb['labels']] for mb in micro_batches]\n"
    ))
    code, out, _ = run(capsys, "exercise", "13", "--check", "--model", str(tiny_path), "--json")
    data = json.loads(out)
    assert code == 0 and data["passed"] and data["function"] == "token_weights"
    assert all("cosine 1.000000" in r["detail"] for r in data["results"])
    # A label function given for exercise 11: its name is not the exercise's.
    other = tmp_path / "mine.py"
    other.write_text(RIGHT)
    code, _, err = run(capsys, "exercise", "11", "--check", str(other), "--model", str(tiny_path))
    assert code == 2 and "packed_labels is not defined" in err


def test_a_checked_exercise_given_to_a_command_as_labels_says_what_to_run(capsys, tiny_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "exercise", "11")[0] == 0
    code, _, err = run(capsys, "labels", "--labels-from", "exercise_11_packing.py", "--model", str(tiny_path))
    assert code == 2 and "exercise 11's file" in err and "causallm-inspect exercise 11 --check exercise_11_packing.py" in err


def test_exercise_15_checks_the_final_answer_on_the_tokenizer_alone(capsys, tiny_path, tmp_path, monkeypatch):
    from label_functions import AFTER_THE_TOOLS, FINAL_ANSWER, course

    from inspector.core.lessons import model

    lessons = course()  # lesson 15's file comes from its own branch: a stand-in until then
    monkeypatch.setattr(model, "load_lessons", lambda *a, **k: lessons)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "exercise", "15")
    assert code == 0 and "watch its check in the app" in out
    starter = tmp_path / "exercise_15_tool_calls.py"
    assert "def final_answer_labels(example, tokenizer):" in starter.read_text()
    code, out, err = run(capsys, "exercise", "15", "--check", "--model", str(tiny_path))
    assert code == 1 and "2 of 16 conversations pass" in out and "asking TRL's SFTTrainer" not in err
    assert "✗ example: a tool call, then the answer (qwen3_training): " in out and "which calls a tool" in out
    bug = tmp_path / "bug.py"
    bug.write_text(AFTER_THE_TOOLS)
    code, out, _ = run(capsys, "exercise", "tool-calls", "--check", f"{bug}:final_answer_labels", "--model",
                       str(tiny_path), "--json")
    data = json.loads(out)
    assert code == 1 and data["lesson"] == "tool-calls" and not any(r["passed"] for r in data["results"])
    assert "tool-result-trained" in data["results"][0]["hint"]
    assert "the tool's result" in data["results"][0]["differences"][0]["where"]
    starter.write_text(starter.read_text().split("def final_answer_labels")[0] + FINAL_ANSWER.lstrip())
    code, out, _ = run(capsys, "exercise", "15", "--check", str(starter), "--model", str(tiny_path))
    assert code == 0 and "16 of 16 conversations pass: all match the reference" in out
    # Not a label strategy: given to a command as labels, it says what to run instead.
    code, _, err = run(capsys, "labels", "--labels-from", str(starter), "--model", str(tiny_path))
    assert code == 2 and "exercise 15's file" in err and "causallm-inspect exercise 15 --check" in err
