"""The benchmark's machinery on the tiny model: phases add up, FLOPs are counted, JSON has its keys."""

from __future__ import annotations

import json

from inspector.cli import main


def test_bench_json_has_the_documented_fields(capsys, tiny_path):
    code = main(["bench", "--model", str(tiny_path), "--strategies", "mask,trl", "--options", "default,padded-batch",
                 "--epochs", "2", "--lr", "0.01", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["peak_gflops"] > 0 and data["warm_load_s"] > 0 and data["help_s"] > 0 and data["first_paint_s"] > 0
    assert [(r["strategy"], r["option"]) for r in data["results"]] == [
        ("mask", "default"), ("mask", "padded-batch"), ("trl", "default"), ("trl", "padded-batch")
    ]
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
