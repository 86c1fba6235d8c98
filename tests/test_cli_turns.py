"""The turn options on the command line: --turn-policy, --inference-template, `labels --turns`
(text and JSON), each token's role, and the line saying TRL ignores per-message flags."""

from __future__ import annotations

import json
import shutil

import pytest

from inspector.cli import main
from inspector.core.data.trl_templates import shipped

REASONED = [
    {"role": "user", "content": "dog?"},
    {"role": "assistant", "reasoning_content": "the word is dog", "content": "perro"},
    {"role": "user", "content": "cat?"},
    {"role": "assistant", "reasoning_content": "the word is cat", "content": "gato"},
]
TOOLS = [
    {"role": "user", "content": "Weather?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    },
    {"role": "tool", "content": "sunny"},
    {"role": "assistant", "content": "Sunny."},
]
FLAGGED = [
    {"role": "user", "content": "dog?"},
    {"role": "assistant", "content": "perro", "weight": 0},
    {"role": "user", "content": "cat?"},
    {"role": "assistant", "content": "gato"},
]


@pytest.fixture(scope="module")
def model(tiny_path, tmp_path_factory):
    """The tiny model with a longer context: TRL's templates spell `<|im_start|>` and `<think>` in
    bytes with its tokenizer, and a two-turn conversation outgrows its 128 positions (rotary
    positions: the weights are the same)."""
    folder = tmp_path_factory.mktemp("tiny-long") / "model"
    shutil.copytree(tiny_path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 1024
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def rows(tmp_path, *conversations):
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps({"messages": c}) + "\n" for c in conversations))
    return str(f)


def labels(capsys, model, data, *extra):
    code = main(["labels", "--model", model, "--data", data, "--json", "--turns", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), err


def trained(example):
    return [t["position"] for t in example["tokens"] if not t["masked"] and t["position"] > 0]


def test_qwen3_training_trains_turn_two_after_a_reasoning_inference_never_shows(capsys, model, tmp_path):
    data, _ = labels(capsys, model, rows(tmp_path, REASONED), "--chat-template", "qwen3")
    assert data["turn_policy"] == "all"
    assert data["inference_template"] == "qwen3 (TRL's original of qwen3_training)"
    (ex,) = data["examples"]
    first, second = ex["turns"]
    assert [first["context_matches_inference"], second["context_matches_inference"]] == [True, False]
    assert first["differing_positions"] == {"training": [], "inference": []}
    assert second["differing_positions"]["inference"] == []
    assert "earlier reasoning (message 2)" in second["verdict"]
    tokens = ex["tokens"]
    think = [t["position"] for t in tokens if t["role"] == "reasoning" and first["span"][0] <= t["position"] < first["span"][1]]
    # What differs is turn 1's think block, and the line break the template writes after it.
    differing = second["differing_positions"]["training"]
    assert think and set(think) <= set(differing)
    assert [tokens[p]["text"] for p in sorted(set(differing) - set(think))] == ["↵", "↵"]
    text = "".join(tokens[p]["text"] for p in think)
    assert text == "<think>↵the␣word␣is␣dog↵</think>"
    # The inference prompt, rendered here independently by transformers from TRL's original file:
    # the training context without the differing tokens.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    prompt = tok.apply_chat_template(
        REASONED[:3], chat_template=shipped()["qwen3"].read_text(), add_generation_prompt=True, tokenize=False
    )
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    context = [t["id"] for t in tokens[: second["first_trained"]] if t["position"] not in differing]
    assert context == ids and second["inference_prompt_tokens"] == len(ids)
    # Every token of the answers is trained, reasoning included.
    assert second["reasoning_trained"] == second["reasoning_tokens"] > 0


def test_the_training_variant_named_as_inference_template_matches_every_turn(capsys, model, tmp_path):
    data, _ = labels(
        capsys, model, rows(tmp_path, REASONED), "--chat-template", "qwen3", "--inference-template", "qwen3_training"
    )
    assert data["inference_template"] == "qwen3_training (TRL's)"
    assert [t["context_matches_inference"] for t in data["examples"][0]["turns"]] == [True, True]


def test_split_makes_a_row_per_turn_each_in_inference_context(capsys, model, tmp_path):
    data, _ = labels(capsys, model, rows(tmp_path, REASONED), "--chat-template", "qwen3", "--turn-policy", "split")
    parts = data["examples"]
    assert [(e["row"], e["part"], e["parts"]) for e in parts] == [(1, 1, 2), (1, 2, 2)]
    for n, e in enumerate(parts, start=1):
        turns = [t for t in e["turns"] if t["trained"]]
        assert [t["turn"] for t in turns] == [n]
        assert turns[0]["context_matches_inference"] is True
        assert e["trained_tokens"] == turns[0]["trained"]
    # Part 2 is rendered by the inference template: turn 1's reasoning is not in it.
    assert "the word is dog" not in parts[1]["text"] and "the word is cat" in parts[1]["text"]


def test_last_trains_only_the_last_turn(capsys, model, tmp_path):
    data_all, _ = labels(capsys, model, rows(tmp_path, REASONED), "--chat-template", "qwen3")
    data, _ = labels(capsys, model, rows(tmp_path, REASONED), "--chat-template", "qwen3", "--turn-policy", "last")
    (ex,) = data["examples"]
    first, second = ex["turns"]
    assert first["trained"] == 0 and first["context_matches_inference"] is None
    a, b = second["span"]
    assert trained(ex) and all(a <= p < b for p in trained(ex))
    assert trained(ex) == [p for p in trained(data_all["examples"][0]) if a <= p < b]


def test_final_leaves_the_tool_call_untrained_and_trl_agrees(capsys, model, tmp_path):
    data = rows(tmp_path, TOOLS)
    by_strategy = {}
    for strategy in ("mask", "trl"):
        out, _ = labels(capsys, model, data, "--chat-template", "qwen3", "--turn-policy", "final", "--strategy", strategy)
        by_strategy[strategy] = out["examples"][0]
    ex = by_strategy["mask"]
    call, answer = ex["turns"]
    assert call["tool_call_tokens"] > 0 and call["tool_call_trained"] == 0 and call["trained"] == 0
    assert answer["trained"] == ex["trained_tokens"] > 0
    assert {t["role"] for t in ex["tokens"]} >= {"user", "assistant", "tool_call", "tool_result", "reasoning"}
    assert trained(by_strategy["trl"]) == trained(ex)
    everything, _ = labels(capsys, model, data, "--chat-template", "qwen3")
    assert everything["examples"][0]["turns"][0]["tool_call_trained"] == call["tool_call_tokens"]


def test_turns_text_marks_each_differing_token_with_a_word(capsys, model, tmp_path):
    assert main(["labels", "--model", model, "--data", rows(tmp_path, REASONED), "--chat-template", "qwen3", "--turns"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("turns: training beside inference (qwen3 (TRL's original of qwen3_training)):"):]
    lines = section.splitlines()
    assert lines[1].startswith("  turn 1 (message 2): tokens ") and "reasoning 27 of 27 trained" in lines[1]
    assert lines[2] == "    ✓ same: same context as at inference"
    assert lines[4] == "    ✗ differs: earlier reasoning (message 2) is in the training context, not at inference"
    marked = [line for line in lines if "+training" in line]
    assert len(marked) == 29 and all(line.lstrip().startswith("▶") for line in marked)
    assert not [line for line in lines if "+inference" in line]
    assert any("<" in line and "+training" in line for line in marked)


def test_flags_under_trl_are_said_ignored_and_mask_honours_them(capsys, model, tmp_path):
    data = rows(tmp_path, FLAGGED)
    out, err = labels(capsys, model, data, "--chat-template", "qwen3", "--strategy", "trl")
    assert err.count("TRL's SFTTrainer ignores per-message flags") == 1
    assert "1 message in line 1 carries one (it says do not train)" in err
    assert out["examples"][0]["turns"][0]["trained"] > 0
    out, err = labels(capsys, model, data, "--chat-template", "qwen3")
    assert "ignores per-message flags" not in err
    first = out["examples"][0]["turns"][0]
    assert first["trained"] == 0 and first["flag"] == '"weight": 0'


def test_bad_turn_options_are_one_line(capsys, model, tmp_path):
    data = rows(tmp_path, REASONED)
    code = main(["labels", "--model", model, "--data", data, "--inference-template", "no_such_template"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.splitlines() == [
        "causallm-inspect: error: --inference-template no_such_template: no such file, nor a template TRL ships. "
        "Give a .jinja file, or one of the names `causallm-inspect templates` lists (e.g. qwen3)."
    ]
    assert main(["labels", "--model", model, "--chat-template", "no_such_template"]) == 2  # no --data: still checked
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("causallm-inspect: error: --chat-template no_such_template: no such file, nor a template TRL ships")
    with pytest.raises(SystemExit) as exit_:
        main(["labels", "--model", model, "--turn-policy", "every"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "argument --turn-policy: invalid choice: 'every' (choose from 'all', 'last', 'final', 'split')" in err


def test_article_rows_have_roles_and_a_policy_that_changes_nothing_says_so(capsys, tiny_path):
    code = main(["labels", "--model", str(tiny_path), "--json", "--turn-policy", "last"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "--turn-policy last changes nothing here: no row has more than one assistant turn" in err
    first = json.loads(out)["examples"][0]
    roles = [t["role"] for t in first["tokens"]]
    cut = roles.index("assistant")
    assert set(roles[:cut]) == {"user"} and set(roles[cut:]) == {"assistant"}
    assert "".join(t["text"] for t in first["tokens"][cut:]).startswith("↵↵###␣Assistant:")


def test_train_trains_the_rows_the_policy_gives(capsys, model, tmp_path):
    data = rows(tmp_path, REASONED)
    counts = {}
    for policy in ("all", "last"):
        labelled, _ = labels(capsys, model, data, "--chat-template", "qwen3", "--turn-policy", policy)
        code = main(["train", "--model", model, "--data", data, "--chat-template", "qwen3", "--strategy", "mask",
                     "--epochs", "1", "--turn-policy", policy, "--json"])
        assert code == 0
        counts[policy] = (json.loads(capsys.readouterr().out)["trained_tokens"], labelled["examples"][0]["trained_tokens"])
    assert counts["all"][0] == counts["all"][1] and counts["last"][0] == counts["last"][1]
    assert counts["last"][0] < counts["all"][0]


def test_deepseek_prefills_the_think_opener_and_trl_trains_what_mask_trains(capsys, model, tmp_path):
    data = rows(tmp_path, REASONED)
    out = {s: labels(capsys, model, data, "--chat-template", "deepseek_r1_distill", "--strategy", s)[0] for s in ("mask", "trl")}
    ex = out["mask"]["examples"][0]
    assert trained(out["trl"]["examples"][0]) == trained(ex)
    for turn in ex["turns"]:
        assert turn["context_matches_inference"] is False
        assert turn["prefilled"].endswith("<think>\n")
        assert turn["differing_positions"]["training"] == []
        assert turn["inference_prompt_tokens"] == turn["first_trained"] + len(turn["differing_positions"]["inference"])
