"""The data commands end to end: `inspect-data` and `prepare`, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sample_rows import CHAT_MULTI, CHAT_OK, NO_ANSWER, jsonl, many_problems

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


def test_a_template_of_another_family_is_named_by_inspect_data(tiny_path, tmp_path):
    """Qwen's qwen2_5 on the tiny model, as a user runs it: the cause (its markers are not tokens
    here), not the stop-token advice to use a _training variant, which it already is."""
    path = jsonl(tmp_path, [CHAT_OK, CHAT_MULTI])
    argv = [sys.executable, "-m", "inspector", "inspect-data", str(path), "--model", str(tiny_path),
            "--chat-template", "qwen2_5", "--num-proc", "1"]  # fmt: skip

    def run(*more):
        return subprocess.run([*argv, *more], capture_output=True, text=True, timeout=300, cwd=tmp_path)

    text = run("--fail-on", "template-not-for-this-model")
    assert text.returncode == 1, text.stderr[-2000:]
    assert "template-not-for-this-model (1)" in text.stdout and "<|im_end|> → " in text.stdout
    assert "use this model's own chat template, or one made for it" in text.stdout
    assert "stop-token-not-trained" not in text.stdout and "_training variants" not in text.stdout
    data = json.loads(run("--json").stdout)
    (problem,) = [p for p in data["problems"] if p["kind"] == "template-not-for-this-model"]
    assert problem["row"] is None and "<|im_start|> → " in problem["detail"]
    assert "stop-token-not-trained" not in data["problem_counts"]


def test_labels_names_a_template_of_another_family(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, [CHAT_OK])
    chatml = tmp_path / "chatml.jinja"  # Qwen's markers, without qwen2_5's system prompt (the tiny context is 128)
    chatml.write_text("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
    argv = ["labels", "--model", str(tiny_path), "--data", str(path), "--chat-template", str(chatml)]
    assert main([*argv, "--json"]) == 0
    out, err = capsys.readouterr()
    (problem,) = json.loads(out)["problems"]
    assert problem["kind"] == "template-not-for-this-model" and "<|im_end|> → " in problem["detail"]
    assert "causallm-inspect: template-not-for-this-model: the chat template writes <|im_start|>, <|im_end|>" in err
    assert main(argv) == 0 and "template-not-for-this-model" in capsys.readouterr().err
    assert main(["labels", "--model", str(tiny_path), "--json"]) == 0  # the article's examples: no template
    assert json.loads(capsys.readouterr().out)["problems"] == []


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
    # and those that build TRL trainers when their lesson opens
    for name in ("chat-template", "packing", "truncation", "weights", "tool-calls"):
        assert f"lesson demo {name}: stored" in out
    assert len(list(replay.store_dir().glob("*.json"))) == 9  # two bursts, seven lesson demos


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
