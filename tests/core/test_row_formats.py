"""Data as people have it: ShareGPT, Alpaca, OpenAI content parts, a BOM, compressed files."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pytest

from inspector.core.data.readers import classify, iter_records, messages_of
from inspector.core.errors import InspectorError
from inspector.core.reports.data_report import format_report, inspect_data

SHAREGPT = {
    "system": "Be brief.",
    "conversations": [
        {"from": "human", "value": "dog?"},
        {"from": "gpt", "value": "perro"},
        {"from": "human", "value": "weather?"},
        {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": "sunny"},
        {"from": "gpt", "value": "It is sunny."},
    ],
}
SHAREGPT_ROLES = {"conversations": [{"role": "user", "content": "water?"}, {"role": "assistant", "content": "agua"}]}
ALPACA = {
    "instruction": "Translate to Spanish",
    "input": "tree",
    "output": "árbol",
    "system": "You translate.",
    "history": [["Translate to Spanish: dog", "perro"]],
}


def write(tmp_path, name, rows, opener=open, prefix=""):
    p = tmp_path / name
    with opener(p, "wt", encoding="utf-8") as f:
        f.write(prefix + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return p


def only(path, **kw):
    (rec,) = list(iter_records(path, **kw))
    return rec


def test_sharegpt_roles_tool_calls_and_system(tmp_path):
    rec = only(write(tmp_path, "s.jsonl", [SHAREGPT]))
    assert rec.format == "sharegpt" and classify(rec.data) == ("messages", None)
    msgs = messages_of("messages", rec.data)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "tool", "assistant"]
    assert msgs[0]["content"] == "Be brief."
    call = msgs[4]["tool_calls"][0]["function"]
    assert call == {"name": "get_weather", "arguments": {"city": "Paris"}} and msgs[4]["content"] == ""
    assert msgs[5] == {"role": "tool", "content": "sunny"}


def test_sharegpt_with_role_and_content_keys(tmp_path):
    rec = only(write(tmp_path, "s.jsonl", [SHAREGPT_ROLES]))
    assert messages_of("messages", rec.data) == [
        {"role": "user", "content": "water?"}, {"role": "assistant", "content": "agua"},
    ]


def test_sharegpt_unknown_role_is_named(tmp_path):
    row = {"conversations": [{"from": "narrator", "value": "x"}]}
    rec = only(write(tmp_path, "s.jsonl", [row]))
    assert rec.data is None and "'narrator'" in rec.error and rec.format == "sharegpt"


def test_alpaca_instruction_input_system_and_history(tmp_path):
    rec = only(write(tmp_path, "a.jsonl", [ALPACA]))
    assert rec.format == "alpaca"
    assert messages_of("messages", rec.data) == [
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Translate to Spanish: dog"},
        {"role": "assistant", "content": "perro"},
        {"role": "user", "content": "Translate to Spanish\ntree"},
        {"role": "assistant", "content": "árbol"},
    ]


def test_alpaca_without_input(tmp_path):
    rec = only(write(tmp_path, "a.jsonl", [{"instruction": "Say hola", "output": "hola"}]))
    assert messages_of("messages", rec.data) == [
        {"role": "user", "content": "Say hola"}, {"role": "assistant", "content": "hola"},
    ]


def test_openai_text_parts_are_joined_and_other_parts_named(tmp_path):
    parts = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "dog"}, {"type": "text", "text": "in Spanish?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "perro"}]},
    ]}
    image = {"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]},
        {"role": "assistant", "content": "a cat"},
    ]}
    first, second = iter_records(write(tmp_path, "o.jsonl", [parts, image]))
    assert first.format == "openai"
    assert [m["content"] for m in messages_of("messages", first.data)] == ["dog\nin Spanish?", "perro"]
    assert second.data is None and "type 'image_url'" in second.error and "message 1 (user)" in second.error


def test_a_byte_order_mark_is_not_part_of_row_one(tmp_path):
    rec = only(write(tmp_path, "bom.jsonl", [{"text": "x"}], prefix="\ufeff"))
    assert rec.error is None and rec.data == {"text": "x"}
    csv = tmp_path / "bom.csv"
    csv.write_text("\ufefftext\nhello\n", encoding="utf-8")
    assert only(csv).data == {"text": "hello"}


@pytest.mark.parametrize("suffix, opener", [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)])
def test_compressed_files_are_read(tmp_path, suffix, opener):
    p = write(tmp_path, "d.jsonl" + suffix, [SHAREGPT_ROLES, {"conversations": "no"}], opener)
    first, second = iter_records(p)
    assert first.data is not None and second.data is None
    csv = tmp_path / ("d.csv" + suffix)
    with opener(csv, "wt", encoding="utf-8") as f:
        f.write("prompt,completion\nhi,hola\n")
    assert only(csv).data == {"prompt": "hi", "completion": "hola"}


def test_a_broken_or_unreadable_compressed_file_is_an_error(tmp_path):
    bad = tmp_path / "d.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(InspectorError, match="could not be decompressed as gzip"):
        list(iter_records(bad))
    zst = tmp_path / "d.jsonl.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd")
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(InspectorError, match="install zstandard"):
            list(iter_records(zst))
    packed = tmp_path / "x.parquet.gz"
    packed.write_bytes(b"x")
    with pytest.raises(InspectorError, match=r"unknown data format \.parquet\.gz"):
        list(iter_records(packed))


def test_format_overrides_detection(tmp_path):
    p = write(tmp_path, "o.jsonl", [ALPACA, SHAREGPT_ROLES])
    forced = list(iter_records(p, row_format="sharegpt"))
    assert forced[0].data is None and "conversations" in forced[0].error
    assert forced[1].format == "sharegpt" and forced[1].data is not None
    with pytest.raises(InspectorError, match="--format nope"):
        list(iter_records(p, row_format="nope"))


def test_report_says_which_format_it_found(tiny, tmp_path):
    p = write(tmp_path, "s.jsonl.gz", [SHAREGPT_ROLES, SHAREGPT_ROLES], gzip.open)
    report = inspect_data(p, tiny, num_proc=1)
    assert report.format == "jsonl, gzip" and report.row_formats == {"sharegpt": 2}
    assert report.examples == 2
    assert "(jsonl, gzip; rows in ShareGPT format)" in format_report(report)
    assert report.to_dict()["row_formats"] == {"sharegpt": 2}


def test_sharegpt_and_alpaca_in_a_csv(tmp_path):
    import csv

    p = tmp_path / "d.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["conversations", "instruction", "output", "history"])
        w.writerow([json.dumps(SHAREGPT_ROLES["conversations"]), "", "", ""])
    rec = only(p)
    assert rec.format == "sharegpt" and messages_of("messages", rec.data)[1] == {"role": "assistant", "content": "agua"}
    q = tmp_path / "a.csv"
    with q.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["instruction", "input", "output", "history"])
        w.writerow(["Say hola", "", "hola", json.dumps([["dog?", "perro"]])])
    assert [m["content"] for m in messages_of("messages", only(q).data)] == ["dog?", "perro", "Say hola", "hola"]
