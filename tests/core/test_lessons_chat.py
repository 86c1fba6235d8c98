"""Lessons 14 and 15's computations on the tiny model: the reasoning conversation turn by turn
under TRL's templates, and the parts of a tool call each strategy and turn policy trains."""

from __future__ import annotations

from inspector.core.lessons.tool_calls import PARTS, tool_calls_view
from inspector.core.lessons.traces import reasoning_view


def test_reasoning_turn_by_turn_training_beside_inference(tiny):
    v = reasoning_view(tiny.tokenizer)
    assert [len(tokens) for _, tokens in v.markers] == [6, 7]  # plain text on this tokenizer
    assert [same for _, _, same in v.swaps] == [True, True]  # TRL trains with its _training variants
    by_name = {t.template: t for t in v.templates}
    original, training, deepseek = (by_name[n].row.turns for n in ("qwen3", "qwen3_training", "deepseek_r1_distill_training"))
    assert [t.reasoning_rendered for t in original] == [False, True]  # turn 1's reasoning dropped
    assert [t.context_matches_inference for t in original] == [True, True]
    assert [(t.trained, t.reasoning_trained) for t in training] == [(37, 24), (37, 24)]
    assert [t.context_matches_inference for t in training] == [True, False]
    assert (len(training[1].training_only), len(training[1].inference_only)) == (26, 0)
    assert by_name["qwen3_training"].differing[1].strip() == "<think>\nDog in Spanish is perro.\n</think>"
    assert [t.prefilled for t in deepseek] == ["<｜Assistant｜><think>\n", "<think>\n"]
    assert (len(v.empty_block), v.empty_trained) == (15, 15)
    counts = {(c.template, c.policy): (c.rows, c.tokens, c.trained, c.reasoning_trained, c.matching, c.turns)
              for c in v.counts}
    assert counts == {
        ("qwen3_training", "all"): (1, 178, 74, 48, 1, 2),
        ("qwen3_training", "split"): (2, 243, 74, 48, 2, 2),
        ("deepseek_r1_distill_training", "all"): (1, 165, 124, 48, 0, 2),
        ("deepseek_r1_distill_training", "split"): (2, 226, 88, 34, 2, 2),  # the prefilled <think> is the prompt's
    }


def test_tool_call_parts_under_each_strategy_and_policy(tiny):
    v = tool_calls_view(tiny.tokenizer, tiny.model)
    assert v.trl_error is None
    rows = {c.label: tuple(f"{c.trained[p]}/{c.total[p]}" for p in PARTS) for c in v.counts}
    every = ("7/7", "22/22", "47/47", "0/56", "30/30", "25/59")  # the call whole, the result masked
    one = ("0/7", "0/22", "0/47", "0/56", "15/30", "13/59")  # the final answer only
    assert rows == {
        "copy, all": ("7/7", "22/22", "47/47", "56/56", "30/30", "59/59"),
        "mask, all": every, "mask, last": one, "mask, final": one,
        "trl, all": every, "trl, last": one, "trl, final": one,  # TRL's own labels agree with the mask
    }
    assert (v.flag_mask, v.flag_trl, v.call_tokens) == (0, 76, 76)  # "weight": 0 honoured by the mask only
    assert (v.cut_last, v.cut_final) == (103, 0)
    assert any("end-of-turn token" in w for w in v.trl_warnings)  # what TRL said, kept off the terminal
