"""`predict --every-epoch`: the rows after every epoch of a burst, as JSON or a text heat map."""

from __future__ import annotations

import json

from inspector.cli import main
from inspector.core.training.learning import means
from inspector.core.training.predictions import PredictionRow

BURST = ("--strategy", "mask", "--epochs", "2", "--lr", "0.01")


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_epoch_json_starts_untrained_and_marks_the_answer(capsys, tiny_path):
    code, out, _ = _run(capsys, "predict", "--model", str(tiny_path), "--json")
    assert code == 0
    untrained = json.loads(out)["positions"]
    code, out, _ = _run(capsys, "predict", "--model", str(tiny_path), *BURST, "--every-epoch", "--json")
    assert code == 0
    found = json.loads(out)
    assert [e["epoch"] for e in found["epochs"]] == [0, 1, 2]
    assert found["epochs"][0]["positions"] == untrained  # epoch 0 is the untrained predict
    assert found["epochs"][0]["loss"] is None and found["epochs"][2]["loss"] > 0
    answer = {p["position"] for p in found["epochs"][0]["positions"] if p["answer"]}
    # The held-out example's answer: " bueno" and the eos after it, predicted from the two positions before.
    texts = [p["target"] for p in found["epochs"][0]["positions"] if p["answer"]]
    assert len(answer) == 2 and "bueno" in texts[0]
    last = [PredictionRow.from_dict({k: v for k, v in p.items() if k != "answer"}) for p in found["epochs"][2]["positions"]]
    first = [PredictionRow.from_dict({k: v for k, v in p.items() if k != "answer"}) for p in untrained]
    assert means(last, frozenset(answer))[1] > means(first, frozenset(answer))[1]  # mask raises the answer's
    assert found["summary"].startswith("mask: prompt ") and found["summary"].endswith("(epoch 0 -> 2)")


def test_every_epoch_prints_a_heat_map_line_per_epoch_and_the_summary(capsys, tiny_path):
    code, out, _ = _run(capsys, "predict", "--model", str(tiny_path), *BURST, "--every-epoch")
    assert code == 0
    lines = out.splitlines()
    heat = [line for line in lines if line.startswith("epoch ")]
    assert [line.split("|")[0].split()[1] for line in heat] == ["0", "1", "2"]
    assert len({len(line) for line in heat}) == 1
    marks = next(line for line in lines if line.startswith("answer "))
    assert marks.count("^") == 2 and len(marks) == len(heat[0])
    assert lines[-1].startswith("mask: prompt ")


def test_every_epoch_without_a_burst_says_what_to_add(capsys, tiny_path):
    code, _, err = _run(capsys, "predict", "--model", str(tiny_path), "--every-epoch")
    assert code == 2 and "--strategy" in err and "Traceback" not in err


def test_lesson_4_prints_the_learning_view_as_text_and_json(capsys, tiny_path):
    code, out, _ = _run(capsys, "lesson", "4", "--plain", "--model", str(tiny_path))
    assert code == 0
    section = out.split("epoch by epoch: p(true next token)", 1)[1]
    assert "copy:" in section and "mask:" in section
    assert [line.split("|")[0].split()[1] for line in section.splitlines() if line.startswith("epoch ")] == ["0", "1", "2", "3"] * 2
    assert section.count("(epoch 0 -> 3)") == 2
    code, out, _ = _run(capsys, "lesson", "4", "--json", "--model", str(tiny_path))
    found = json.loads(out)
    untrained = [p["p_target"] for p in found["predictions"]["untrained"]]
    for strategy in ("copy", "mask"):
        epochs = found["learning"][strategy]["epochs"]
        assert [e["epoch"] for e in epochs] == [0, 1, 2, 3]
        assert epochs[0]["p_target"] == untrained
        # The last epoch's rows are the trained model's, which the predictions give too.
        assert epochs[-1]["p_target"] == [p["p_target"] for p in found["predictions"][strategy]]
