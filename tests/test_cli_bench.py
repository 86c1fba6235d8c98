"""`causallm-inspect bench` end to end: its JSON fields, its tables, its refusals (a CLI test: it drives the command)."""

from __future__ import annotations

import json

import pytest

from inspector.cli import main


def test_bench_json_has_the_documented_fields(capsys, tiny_path):
    code = main(["bench", "--model", str(tiny_path), "--strategies", "mask,trl", "--options",
                 "default,padded-batch,stock", "--epochs", "2", "--lr", "0.01", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["peak_gflops"] > 0 and data["warm_load_s"] > 0 and data["help_s"] > 0 and data["first_paint_s"] > 0
    # Each strategy's stock row runs first, right before the default one.
    assert [(r["strategy"], r["option"]) for r in data["results"]] == [
        ("mask", "stock"), ("mask", "default"), ("mask", "padded-batch"),
        ("trl", "stock"), ("trl", "default"), ("trl", "padded-batch"),
    ]
    stock_rows = {r["strategy"]: r for r in data["results"] if r["option"] == "stock"}
    for r in data["results"]:
        stock = stock_rows[r["strategy"]]
        assert len(r["losses"]) == r["steps"]
        if r["option"] == "stock":
            assert r["speedup_vs_stock"] is None and r["max_loss_diff_vs_stock"] is None
        else:
            assert r["speedup_vs_stock"] == stock["step_s"]["median"] / r["step_s"]["median"]
        if r["option"] == "default":  # the fast path: the stock losses, step by step
            assert 0 <= r["max_loss_diff_vs_stock"] <= 1e-4
        if r["option"] == "padded-batch":  # other steps: no loss comparison
            assert r["max_loss_diff_vs_stock"] is None
    data["results"] = [r for r in data["results"] if r["option"] != "stock"]
    for r in data["results"]:
        assert {"strategy", "option", "step_s", "tokens_per_s", "gflops"} <= set(r)
        step = r["step_s"]
        assert step["min"] <= step["median"] <= step["max"]
        phases = r["forward_s"]["median"] + r["backward_s"]["median"] + r["optimizer_s"]["median"]
        assert phases <= step["max"] * 1.5  # the phases are parts of the step
        assert r["gflop_per_step"] > 0 and r["tokens_per_s"] > 0
    single, padded = data["results"][0], data["results"][1]
    assert padded["tokens_per_step"] > 4 * single["tokens_per_step"]  # five examples in one step
    assert padded["steps"] == 2 and single["steps"] == 10


def test_bench_rejects_unknown_options(capsys):
    assert main(["bench", "--options", "warp-speed"]) == 2
    assert "--options has unknown entries: warp-speed" in capsys.readouterr().err


def test_data_scale_bench(capsys, tiny_path):
    assert main(["bench", "--data-rows", "200", "--model", str(tiny_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"] == 200
    assert data["200"]["rows_per_s"] > 0 and data["200"]["peak_rss_mb"] > 0
    assert data["200"]["problems"] == {"no-trained-tokens": 3}  # rows 1, 98, 195 have no answer
    many = data["all_cores"]
    assert many["processes"] == data["cores"] >= 1 and many["rows_per_s"] > 0
    assert many["problems"] == data["200"]["problems"] and many["same_report"] is True


def test_memory_bench_json_has_the_documented_fields(capsys, tiny_path):
    code = main(["bench", "--memory", "--model", str(tiny_path), "--strategies", "mask,trl", "--epochs", "1",
                 "--lr", "0.01", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["epochs"] == 1 and data["device"] == "cpu"
    assert [(s["stage"], s["strategy"], s["continued"]) for s in data["stages"]] == [
        ("mask burst", "mask", False), ("trl burst", "trl", False), ("mask continued", "mask", True)
    ]
    for s in data["stages"]:
        assert s["peak_mb"] >= s["after_mb"] * 0.5 > 0 and s["seconds"] > 0 and isinstance(s["holdout"], str)
        assert s["peak_mb"] <= data["peak_mb"]
    assert data["idle_mb"] > 0 and data["reset_mb"] > 0 and data["process_peak_mb"] >= data["peak_mb"] * 0.99
    assert data["after_all_mb"] == data["stages"][1]["after_mb"]
    assert set(data["targets"]) == {"after_all_mb", "peak_mb", "reset_over_idle_mb"}
    assert set(data["met"]) == {"after_all", "peak", "reset"} and all(isinstance(v, bool) for v in data["met"].values())


def test_memory_bench_table_names_every_stage_and_target(capsys, tiny_path):
    assert main(["bench", "--memory", "--model", str(tiny_path), "--strategies", "copy", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    for line in ("idle", "copy burst", "copy continued", "reset", "every strategy trained, idle",
                 "peak during a burst", "reset: idle + 512"):
        assert line in out


def test_bench_profile_lists_the_top_operators_of_a_step(capsys, tiny_path):
    assert main(["bench", "--profile", "--model", str(tiny_path), "--strategies", "mask", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(p["strategy"], p["option"], p["step"]) for p in data["profiles"]] == [
        ("mask", "stock", 2), ("mask", "default", 2)
    ]
    for p in data["profiles"]:
        names = [op["name"] for op in p["operators"]]
        assert "aten::mm" in names and len(names) == 15 and p["step_s"] > 0
        assert all(op["self_s"] <= op["total_s"] + 1e-9 and op["calls"] > 0 for op in p["operators"])
    assert main(["bench", "--profile", "--model", str(tiny_path), "--strategies", "copy"]) == 0
    out = capsys.readouterr().out
    assert "copy stock: step 2" in out and "copy default: step 2" in out and "aten::mm" in out


def test_bench_label_process_compares_with_in_process_on_the_same_labels(capsys, tiny_path):
    assert main(["bench", "--label-process", "--model", str(tiny_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == 5 and report["same_labels"] is True
    assert report["in_process_s"] > 0 and report["label_process_s"] > 0 and report["target_ratio"] == 2.0
    assert report["ratio"] == pytest.approx(report["label_process_s"] / report["in_process_s"])


def test_recorder_bench_reports_the_recorder_s_cost(capsys, tiny_path):
    """`bench --recorder`: steps with and without RecorderCallback, and its own work in a step (no number
    is asserted: the bench reports them)."""
    assert main(["bench", "--recorder", "--model", str(tiny_path), "--device", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps_per_run"] == 8 and data["runs"] == 2 and data["recorded_steps"] == list(range(1, 9))
    assert data["recorded_bytes"] > 0 and data["target_percent"] == 3
    for name in ("without_s", "with_s", "own_s"):
        assert 0 < data[name]["min"] <= data[name]["median"] <= data[name]["max"]
    assert data["own_s"]["median"] < data["with_s"]["median"]  # its own work is a part of the step
    assert data["own_percent"] == data["own_s"]["median"] / data["without_s"]["median"] * 100
    assert data["met"] == (data["own_percent"] < 3)


def test_recorder_cost_in_words(tiny):
    from inspector.core.data.chat_format import ARTICLE_MARKERS
    from inspector.core.data.examples import article_examples, format_examples
    from inspector.core.training.bench_recorder import format_recorder_cost, recorder_cost

    formatted = format_examples(article_examples(ARTICLE_MARKERS), tiny.tokenizer, ARTICLE_MARKERS, tiny.name)
    cost = recorder_cost(tiny, formatted, steps=3, runs=1)
    text = format_recorder_cost(cost)
    assert cost.recorded_steps == [1, 2, 3] and "each run recorded steps 1, 2, 3" in text
    assert f"= {cost.own_percent:.1f}% of a step without it (target under 3%: {'met' if cost.met else 'NOT MET'})" in text
