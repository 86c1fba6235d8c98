"""The data commands end to end: `inspect-data` and `prepare`, as a user runs them."""

from __future__ import annotations

import json

import pytest
from sample_rows import CHAT_OK, NO_ANSWER, jsonl, many_problems

from inspector.cli import main
from inspector.core.runs import store as replay


def test_cli_json_and_fail_on(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, [CHAT_OK, NO_ANSWER])
    code = main(["inspect-data", str(path), "--model", str(tiny_path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["problems"] == [{"row": 2, "kind": "no-trained-tokens", "detail": "the conversation has no assistant message", "strategy": None}]
    assert set(data["strategies"]) == {"copy", "mask"} and 0 < data["strategies"]["mask"]["trained_fraction"] < 1
    assert main(["inspect-data", str(path), "--model", str(tiny_path), "--fail-on", "no-trained-tokens"]) == 1
    out = capsys.readouterr().out
    assert "no-trained-tokens: 1 (rows 2)" in out
    assert main(["inspect-data", str(path), "--model", str(tiny_path), "--fail-on", "truncated-answer"]) == 0
    capsys.readouterr()
    assert main(["inspect-data", str(path), "--fail-on", "typo"]) == 2
    assert "--fail-on has unknown problems: typo" in capsys.readouterr().err


def test_num_proc_on_the_command_line(capsys, tiny_path, tmp_path):
    path = many_problems(tmp_path, 600)  # three batches of 256: the workers start
    reports = []
    for n in ("1", "2"):
        assert main(["inspect-data", str(path), "--model", str(tiny_path), "--num-proc", n, "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
        reports[-1].pop("seconds")
    assert reports[0] == reports[1]
    with pytest.raises(SystemExit) as exit_:
        main(["inspect-data", str(path), "--model", str(tiny_path), "--num-proc", "0"])
    assert exit_.value.code == 2 and "--num-proc" in capsys.readouterr().err


def test_prepare_command(capsys, tiny_path):
    assert main(["prepare", "--model", str(tiny_path), "--strategies", "copy,mask", "--epochs", "1", "--lr", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "copy: 1 epochs stored" in out and "mask: 1 epochs stored" in out
    assert "lesson demo step-timing: stored" in out and "lesson demo eos-padding: stored" in out
    assert len(list(replay.store_dir().glob("*.json"))) == 4  # two bursts, two lesson demos


def test_prepare_command_json_and_bursts_only(capsys, tiny_path):
    args = ["prepare", "--model", str(tiny_path), "--strategies", "trl", "--epochs", "2", "--lr", "0.01"]
    assert main([*args, "--no-demos", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (run,) = data["runs"]
    assert run["strategy"] == "trl" and run["epochs"] == 2 and len(run["holdouts"]) == 2
    assert data["demos"] == [] and data["store"] == str(replay.store_dir())
    assert len(list(replay.store_dir().glob("*.json"))) == 1


def test_templates_command_lists_them(capsys):
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    assert "qwen2_5" in out and "yes (NAME_training)" in out
    assert main(["templates", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["templates"]}
    assert rows["qwen3"]["training_variant"] and rows["qwen3"]["renders_tool_calls"]
