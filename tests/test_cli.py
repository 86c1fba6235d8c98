"""The headless commands, as a script would call them: output, JSON shape, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from inspector.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_labels_json_has_tokens_and_trained_counts(capsys, tiny_path):
    code, out, _ = run(capsys, "labels", "--model", str(tiny_path), "--strategy", "mask", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["strategy"] == "mask"
    assert len(data["examples"]) == 5
    first = data["examples"][0]
    assert first["row"] == 1
    assert first["trained_tokens"] == 2
    tok = first["tokens"][-1]
    assert set(tok) >= {"position", "id", "text", "label", "masked"}
    assert tok["text"] == "</s>" and not tok["masked"]
    assert [t["masked"] for t in first["tokens"]].count(False) == 2


def test_labels_plain_is_a_table(capsys, tiny_path):
    code, out, _ = run(capsys, "labels", "--model", str(tiny_path), "--strategy", "copy")
    assert code == 0
    assert "example 1: copy (labels copied from input_ids): 22 of 23 tokens trained" in out
    assert "␣perro" in out


def test_labels_from_jsonl_text_and_prompt_completion_rows(capsys, tiny_path, tmp_path):
    texts = tmp_path / "t.jsonl"
    texts.write_text(
        json.dumps({"text": '\n\n### Human: How do you say "cat" in Spanish?\n\n### Assistant: gato'}) + "\n\n"
        + json.dumps({"text": '\n\n### Human: How do you say "dog" in Spanish?\n\n### Assistant: perro'}) + "\n"
    )
    code, out, _ = run(capsys, "labels", "--model", str(tiny_path), "--data", str(texts), "--json")
    assert code == 0
    assert [e["row"] for e in json.loads(out)["examples"]] == [1, 3]  # numbered as lines of the file
    pc = tmp_path / "pc.jsonl"
    pc.write_text(json.dumps({"prompt": 'How do you say "dog" in Spanish?', "completion": "perro"}) + "\n")
    code, out, _ = run(capsys, "labels", "--model", str(tiny_path), "--data", str(pc), "--json")
    ex = json.loads(out)["examples"]
    assert ex[0]["text"] == '\n\n### Human: How do you say "dog" in Spanish?\n\n### Assistant:<s> perro</s>'
    assert [t["text"] for t in ex[0]["tokens"] if not t["masked"]] == ["␣perro", "</s>"]


def test_a_file_mixing_row_types_is_refused_at_the_first_odd_row(capsys, tiny_path, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text(json.dumps({"text": "\n\n### Human: a\n\n### Assistant: b"}) + "\n" + json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    msg = _error(capsys, "labels", "--model", str(tiny_path), "--data", str(f))
    assert "mixed.jsonl line 2 is prompt/completion but the rows before it are language modeling (text)" in msg


def test_trl_labels_on_the_command_line(capsys, tiny_path):
    code, out, _ = run(capsys, "labels", "--model", str(tiny_path), "--strategy", "trl", "--json")
    assert code == 0
    assert [e["trained_tokens"] for e in json.loads(out)["examples"]] == [2, 2, 2, 2, 2]


def test_train_json_reports_epochs_runtime_and_speed(capsys, tiny_path):
    code, out, _ = run(capsys, "train", "--model", str(tiny_path), "--strategy", "mask", "--epochs", "2", "--lr", "0.01", "--json")
    assert code == 0
    data = json.loads(out)
    assert [e["epoch"] for e in data["epochs"]] == [1, 2]
    assert all({"epoch", "loss", "holdout"} <= set(e) for e in data["epochs"])
    assert data["epochs"][1]["loss"] < data["epochs"][0]["loss"]
    assert data["train_runtime"] > 0 and data["tokens_per_second"] > 0
    assert data["trained_tokens"] == 20


def test_train_plain_prints_each_epoch(capsys, tiny_path):
    code, out, _ = run(capsys, "train", "--model", str(tiny_path), "--strategy", "copy", "--epochs", "2", "--lr", "0.01")
    assert code == 0
    assert "epoch   1" in out and "epoch   2" in out and "held-out:" in out
    assert "untrained answer:" in out


def test_predict_untrained_and_after_a_burst(capsys, tiny_path):
    code, out, _ = run(capsys, "predict", "--model", str(tiny_path), "--json")
    assert code == 0
    untrained = json.loads(out)
    assert untrained["state"] == "untrained"
    pos = untrained["positions"]
    assert set(pos[0]) >= {"position", "input", "target", "predicted", "correct", "p_target"}
    assert pos[-1]["target"] is None
    code, out, _ = run(capsys, "predict", "--model", str(tiny_path), "--strategy", "copy", "--epochs", "3", "--lr", "0.01", "--json")
    trained = json.loads(out)
    assert trained["state"] == "after copy, 3 epochs"
    # copy trains every position: the prompt is predicted better than by the random model
    assert trained["accuracy"] > untrained["accuracy"]


def test_models_lists_the_embedded_model_and_cache(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CAUSALLM_INSPECT_CACHE", str(tmp_path / "c"))
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "Gemma 3 270M" in out and str(tmp_path / "c") in out and "not converted yet" in out
    code, out, _ = run(capsys, "models", "--json")
    assert json.loads(out)["embedded"]["converted"] is False


# --- bad input: one line, exit 2 ----------------------------------------------------------------


def _error(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("causallm-inspect: error:")
    assert "Traceback" not in err
    return lines[-1]


def test_unknown_hub_model_offline(capsys):
    msg = _error(capsys, "labels", "--model", "nobody/no-such-model-xyz")
    assert "not in the Hugging Face cache" in msg and "never downloads" in msg


def test_folder_that_is_not_a_model(capsys, tmp_path):
    assert "has no config.json" in _error(capsys, "labels", "--model", str(tmp_path))


def test_missing_gguf_file(capsys, tmp_path):
    assert "does not exist" in _error(capsys, "labels", "--model", str(tmp_path / "x.gguf"))


def test_file_that_is_not_a_gguf(capsys, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    assert "could not be read as a GGUF model" in _error(capsys, "labels", "--model", str(bad))


def test_pickle_only_model_folder_is_refused(capsys, tiny_path, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_path, folder)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    assert "no safetensors weights" in _error(capsys, "labels", "--model", str(folder))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty"),
        ("{not json}\n", "line 1 is not valid JSON"),
        ('{"text": "ok\\n\\n### Assistant: a"}\n[1, 2]\n', "line 2 is a JSON list, not an object"),
        ('{"prompt": "p"}\n', 'line 1 has "prompt" but no "completion"'),
        ('{"txt": "x"}\n', 'line 1 has none of "text", "prompt"/"completion", "messages" (its columns: txt'),
        ('{"text": 5}\n', '"text" is a int, not a string'),
        ('{"text": "\\n\\n### Human: hello"}\n', "line 1: the text has no assistant turn"),
    ],
)
def test_bad_data_files(capsys, tiny_path, tmp_path, content, expected):
    f = tmp_path / "data.jsonl"
    f.write_text(content)
    assert expected in _error(capsys, "labels", "--model", str(tiny_path), "--data", str(f))


def test_missing_data_file(capsys, tmp_path):
    assert "does not exist" in _error(capsys, "labels", "--data", str(tmp_path / "none.jsonl"))


def test_example_longer_than_context(capsys, tiny_path, tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_text(json.dumps({"prompt": "dog " * 300, "completion": "perro"}) + "\n")
    assert "longer than the model's context of 128" in _error(capsys, "labels", "--model", str(tiny_path), "--data", str(f))


def test_bad_options(capsys, tiny_path):
    assert "--epochs must be at least 1" in _error(capsys, "train", "--model", str(tiny_path), "--strategy", "mask", "--epochs", "0")
    assert "unknown device" in _error(capsys, "labels", "--model", str(tiny_path), "--device", "tpu")


@pytest.mark.parametrize("argv", [["--train-rows", "0"], ["prepare", "--train-rows", "-2"], ["--train-rows", "x"]])
def test_train_rows_must_be_a_count(capsys, argv):
    from inspector.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)  # the app never opens: the parser refuses the value
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--train-rows" in err and ("at least 1" in err or "whole number" in err)


def test_help_does_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "from inspector.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "bad = [m for m in ('torch', 'transformers', 'textual', 'trl') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_core_does_not_import_textual():
    code = (
        "import sys, pkgutil, importlib, inspector.core as c\n"
        "BURST_ONLY = {'inspector.core.training.tied_head', 'inspector.core.training.trl_head',\n"
        "              'inspector.core.recorder.callback', 'inspector.core.recorder.sft_run'}\n"
        "for m in pkgutil.walk_packages(c.__path__, 'inspector.core.'):\n"
        "    if m.name not in BURST_ONLY: importlib.import_module(m.name)\n"
        "print('textual' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # No textual ever; torch only inside the functions that need it (and in tied_head and trl_head,
    # which only a starting burst imports: their classes subclass torch's; and in the recorder's callback,
    # a transformers TrainerCallback, which only a training run imports).
    assert out == ["False", "False"]


def test_custom_markers_and_special_tokens(capsys, tiny_path, tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"text": "\nUser: dog\nBot: perro"}) + "\n")
    code, out, _ = run(
        capsys, "labels", "--model", str(tiny_path), "--data", str(f), "--json",
        "--human-marker", "\\nUser:", "--assistant-marker", "\\nBot:", "--bos-token", "</s>",
    )
    assert code == 0
    ex = json.loads(out)["examples"][0]
    assert ex["text"] == "\nUser: dog\nBot:</s> perro</s>"  # bos == eos, as with gpt2
    assert [t["text"] for t in ex["tokens"] if not t["masked"]] == ["␣perro", "</s>"]


def test_other_markers_without_data_write_the_article_examples_in_them(capsys, tiny_path):
    """--human-marker/--assistant-marker and no --data: the article's five examples in those markers
    (they were refused: the article's '### Human:' text has no 'Bot:')."""
    code, out, _ = run(capsys, "labels", "--model", str(tiny_path), "--json", "--strategy", "mask",
                       "--human-marker", "User:", "--assistant-marker", "Bot:")
    assert code == 0
    examples = json.loads(out)["examples"]
    assert len(examples) == 5
    assert examples[0]["text"].startswith('User: How do you say "dog" in Spanish?Bot:')
    assert "".join(t["text"] for t in examples[0]["tokens"] if not t["masked"]).startswith("␣perro")


def test_special_token_that_is_not_in_the_vocabulary(capsys, tiny_path):
    assert "is not a token of" in _error(capsys, "labels", "--model", str(tiny_path), "--bos-token", "<|nope|>")


def test_train_with_speed_options(capsys, tiny_path):
    code, out, _ = run(
        capsys, "train", "--model", str(tiny_path), "--strategy", "mask", "--epochs", "2", "--json",
        "--lora", "--batching", "padded", "--threads", "1", "--head-trained-only",
    )
    assert code == 0
    data = json.loads(out)
    assert data["settings"]["lora"] is True and data["settings"]["batching"] == "padded"
    assert data["settings"]["learning_rate"] == 1.5e-4  # LoRA's own default rate
    assert len(data["steps"]) == 2  # one padded step per epoch


def test_a_path_that_does_not_exist_is_not_taken_for_a_hub_id(capsys, tmp_path):
    msg = _error(capsys, "labels", "--model", str(tmp_path / "no-such-model"))
    assert "does not exist" in msg and "hf download" not in msg


def test_a_model_that_needs_its_own_code_is_refused_without_the_flag(capsys, tiny_path, tmp_path):
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(tiny_path, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="strange-llm", auto_map={"AutoModelForCausalLM": "modeling_strange.StrangeForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_strange.py").write_text("raise SystemExit('this code must never run')\n")
    msg = _error(capsys, "labels", "--model", str(folder))
    assert "needs custom code from its repository" in msg and "--trust-remote-code" in msg


def test_tokenizer_without_bos_token(capsys, tiny_path, tmp_path):
    import shutil

    folder = tmp_path / "nobos"
    shutil.copytree(tiny_path, folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["bos_token"] = None
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    msg = _error(capsys, "labels", "--model", str(folder))
    assert "has no bos token" in msg and "--bos-token" in msg


def test_a_one_megabyte_row_is_a_clear_error_not_a_hang(capsys, tiny_path, tmp_path):
    f = tmp_path / "big.jsonl"
    f.write_text(json.dumps({"prompt": "dog " * 250_000, "completion": "perro"}) + "\n")  # 1 MB
    msg = _error(capsys, "labels", "--model", str(tiny_path), "--data", str(f))
    assert "example 1 is" in msg and "longer than the model's context of 128" in msg
    code = main(["inspect-data", str(f), "--model", str(tiny_path), "--max-length", "128", "--json"])
    assert code == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["row"], p["kind"]) for p in problems if p["strategy"] == "mask"] == [(1, "truncated-answer")]


def test_data_nested_too_deeply_is_a_bad_row_not_a_traceback(capsys, tiny_path, tmp_path):
    deep = "[" * 5000 + "]" * 5000
    jsonl = tmp_path / "deep.jsonl"
    jsonl.write_text(json.dumps({"text": "x"})[:-1] + f', "extra": {deep}}}\n')
    assert "line 1 is nested too deeply" in _error(capsys, "labels", "--model", str(tiny_path), "--data", str(jsonl))
    whole = tmp_path / "deep.json"
    whole.write_text(deep)
    assert "deep.json is nested too deeply" in _error(capsys, "labels", "--model", str(tiny_path), "--data", str(whole))
    from inspector.cli import main

    assert main(["inspect-data", str(jsonl), "--model", str(tiny_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(p["row"], p["kind"]) for p in report["problems"]] == [(1, "bad-row")]


@pytest.mark.parametrize("command", [["labels"], ["prepare", "--epochs", "1", "--model", "TINY"]])
def test_a_cache_folder_that_cannot_be_made_is_one_clear_line(capsys, tiny_path, tmp_path, monkeypatch, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CAUSALLM_INSPECT_CACHE", str(blocker / "cache"))
    line = _error(capsys, *[str(tiny_path) if a == "TINY" else a for a in command])
    assert f"the cache folder {blocker / 'cache'}" in line and "CAUSALLM_INSPECT_CACHE" in line


def test_glossary_prints_every_term_one_term_or_the_nearest(capsys):
    code, out, _ = run(capsys, "glossary")
    assert code == 0
    assert out.startswith("lesson 1: What a causal LM is trained on\n  causal language model\n")
    assert "\n  micro-batch\n" in out and "lesson 13: " in out
    code, out, _ = run(capsys, "glossary", "Micro-batches")  # any case, a plural
    assert code == 0 and out.startswith("micro-batch  (lesson 11: ") and out.count("\n") > 1
    line = _error(capsys, "glossary", "microbach")
    assert line == ("causallm-inspect: error: no term 'microbach' in the glossary. The nearest: micro-batch; "
                    "`causallm-inspect glossary` lists them all.")
