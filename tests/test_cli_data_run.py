"""`inspect-data` with the run's settings, as a user runs it: `--max-length` and SFTConfig flags, a
`trl sft` YAML config, text and --json, and --fail-on for the new problem kinds."""

from __future__ import annotations

import json

from sample_rows import jsonl

from inspector.cli import main

ROWS = [
    {"prompt": "How do you say dog?", "completion": " perro"},
    {"prompt": "How do you say this very long long long long long long long long long long question?", "completion": " hola"},
    {"prompt": "How do you say water?", "completion": " agua agua agua agua agua agua"},  # max_length 20 cuts its eos
    {"prompt": "How do you say hi?", "completion": " bueno"},
]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_max_length_text_and_json(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, ROWS)
    code, out, _ = run(capsys, "inspect-data", str(path), "--model", str(tiny_path), "--max-length", "20")
    assert code == 0
    assert "the run's settings (max_length 20, truncation_mode keep_start, packing False" in out
    assert "TRL prepares 3 rows" in out
    assert "heaviest rows: row 3 (100% of step " in out
    assert "answer-loses-stop-token: 1 (rows 3)" in out
    assert "dropped-by-truncation: 1 (rows 2)" in out
    code, out, _ = run(capsys, "inspect-data", str(path), "--model", str(tiny_path), "--max-length", "20", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["problem_counts"]["answer-loses-stop-token"] == 1 and data["problem_counts"]["dropped-by-truncation"] == 1
    assert [p["row"] for p in data["problems"] if p["kind"] == "dropped-by-truncation"] == [2]
    assert data["run"]["prepared_rows"] == 3 and data["run"]["settings"]["max_length"] == 20
    assert {s["row"] for s in data["run"]["shares"]} == {1, 3, 4}
    assert data["run"]["shares"][0] == {"row": 3, "step": data["run"]["shares"][0]["step"], "share": 1.0, "trained_tokens": 3}


def test_fail_on_the_run_problems(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, ROWS)
    base = ["inspect-data", str(path), "--model", str(tiny_path)]
    assert run(capsys, *base, "--max-length", "20", "--fail-on", "answer-loses-stop-token")[0] == 1
    assert run(capsys, *base, "--max-length", "200", "--fail-on", "answer-loses-stop-token,dropped-by-truncation")[0] == 0
    code, _, err = run(capsys, *base, "--fail-on", "answer-loses-stop-tokens")
    assert code == 2 and "unknown problems: answer-loses-stop-tokens" in err


def test_a_trl_sft_config(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, ROWS)
    config = tmp_path / "sft.yaml"
    config.write_text("packing: true\npacking_strategy: wrapped\nmax_length: 16\nper_device_train_batch_size: 1\n")
    code, out, _ = run(capsys, "inspect-data", str(path), "--model", str(tiny_path), "--config", str(config), "--json")
    data = json.loads(out)
    assert code == 0
    assert data["run"]["settings"]["packing_strategy"] == "wrapped"
    assert 2 in [p["row"] for p in data["problems"] if p["kind"] == "prompt-only-chunk"]
    assert data["problem_counts"]["packing-crosses-examples"] >= 1
    code, _, _ = run(capsys, "inspect-data", str(path), "--model", str(tiny_path), "--config", str(config),
                     "--packing-strategy", "bfd", "--fail-on", "packing-crosses-examples")  # fmt: skip
    assert code == 0  # the flag wins over the config: bfd keeps the examples apart


def test_without_settings_nothing_changes(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, ROWS)
    code, out, _ = run(capsys, "inspect-data", str(path), "--model", str(tiny_path), "--json")
    data = json.loads(out)
    assert code == 0 and "run" not in data


def test_the_config_names_the_model_and_a_bad_key_is_refused(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, ROWS)
    config = tmp_path / "sft.yaml"
    config.write_text(f"model_name_or_path: {tiny_path}\nmax_length: 20\n")
    code, out, _ = run(capsys, "inspect-data", str(path), "--config", str(config), "--fail-on", "dropped-by-truncation")
    assert code == 1 and "dropped-by-truncation: 1 (rows 2)" in out
    config.write_text("max_lenght: 20\n")
    code, _, err = run(capsys, "inspect-data", str(path), "--model", str(tiny_path), "--config", str(config))
    assert code == 2 and "max_lenght (did you mean max_length?)" in err


def test_packing_that_splits_rows_truncates_no_answer(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, ROWS)
    base = ["inspect-data", str(path), "--model", str(tiny_path), "--max-length", "16", "--json"]
    data = json.loads(run(capsys, *base, "--packing", "--packing-strategy", "wrapped")[1])
    assert "truncated-answer" not in data["problem_counts"] and data["problem_counts"]["prompt-only-chunk"] >= 1
    data = json.loads(run(capsys, *base, "--packing")[1])  # bfd cuts what does not fit
    assert data["problem_counts"]["truncated-answer"] == 4


def test_the_advice_for_a_lost_stop_token_names_the_max_length_that_keeps_it(capsys, tiny_path, tmp_path):
    path = jsonl(tmp_path, ROWS)
    code, out, _ = run(capsys, "inspect-data", str(path), "--model", str(tiny_path), "--max-length", "20", "--json")
    data = json.loads(out)
    longest = data["run"]["fixes"]["answer-loses-stop-token"].split("at least ")[1].split(" ")[0]
    (line,) = [x for x in data["summary"] if x.startswith("answer-loses-stop-token")]
    assert f"raise max_length to at least {longest} (the longest of those rows)" in line
    assert "bfd_split keeps the cut tokens as another piece" in line and "keep_end" not in line
    # that max_length keeps every stop token: the problem is gone
    code, out, _ = run(capsys, "inspect-data", str(path), "--model", str(tiny_path), "--max-length", longest,
                       "--fail-on", "answer-loses-stop-token")  # fmt: skip
    assert code == 0 and int(longest) > 20


def test_a_config_with_keep_end_is_run_as_trl_runs_it_and_said_deprecated(capsys, tiny_path, tmp_path):
    import trl

    path = jsonl(tmp_path, ROWS)
    config = tmp_path / "sft.yaml"
    config.write_text("max_length: 20\ntruncation_mode: keep_end\n")
    code, out, _ = run(capsys, "inspect-data", str(path), "--model", str(tiny_path), "--config", str(config))
    assert code == 0 and "truncation_mode keep_end" in out
    assert f"truncation_mode keep_end is deprecated by TRL (to be removed in v2.0); TRL {trl.__version__} still runs it" in out
    assert "answer-loses-stop-token" not in out  # keep_end cuts the start: every answer keeps its end
    code, out, _ = run(capsys, "batch", "--model", str(tiny_path), "--config", str(config), "--data", str(path))
    assert code == 0 and out.count("truncation_mode keep_end is deprecated by TRL") == 1
