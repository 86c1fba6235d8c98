"""Data files in every supported format and row type; bad rows named by number."""

from __future__ import annotations

import json

import pytest

from inspector.core.data.examples import format_examples, load_examples
from inspector.core.data.readers import classify, iter_records, parse_columns
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import label_examples

ROWS = [
    {"prompt": 'How do you say "dog" in Spanish?', "completion": "perro"},
    {"prompt": 'How do you say "cat" in Spanish?', "completion": "gato"},
]
CHAT = [
    {"messages": [{"role": "user", "content": "dog?"}, {"role": "assistant", "content": "perro"},
                  {"role": "user", "content": "cat?"}, {"role": "assistant", "content": "gato"}]},
]
# A ChatML-like template with the tiny tokenizer's special tokens, with and without markers.
MARKED = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<s>assistant\n"
    "{% generation %}{{ m['content'] }}</s>{% endgeneration %}\n"
    "{% else %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endif %}{% endfor %}"
)
UNMARKED = MARKED.replace("{% generation %}", "").replace("{% endgeneration %}", "")


def write(tmp_path, name, rows):
    import pandas as pd

    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif name.endswith(".json"):
        path.write_text(json.dumps({"train": rows}))
    elif name.endswith(".csv"):
        pd.DataFrame(rows).to_csv(path, index=False)
    elif name.endswith(".parquet"):
        pd.DataFrame(rows).to_parquet(path)
    else:
        from datasets import Dataset, DatasetDict

        DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(path))
    return path


@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.csv", "d.parquet", "d_dataset"])
def test_every_format_reads_the_same_rows(tmp_path, name):
    path = write(tmp_path, name, ROWS)
    examples = load_examples(path)
    assert [e.row for e in examples] == [1, 2]
    assert [e.kind for e in examples] == ["prompt-completion"] * 2
    assert examples[1].text == '\n\n### Human: How do you say "cat" in Spanish?\n\n### Assistant: gato'


def test_limit_split_and_column_mapping(tmp_path):
    path = write(tmp_path, "d.jsonl", [{"question": r["prompt"], "answer": r["completion"]} for r in ROWS])
    with pytest.raises(InspectorError, match=r"line 1 has none of .*its columns: answer, question; map them with --columns"):
        load_examples(path)
    examples = load_examples(path, columns=parse_columns("prompt=question,completion=answer"), limit=1)
    assert len(examples) == 1 and examples[0].text.endswith("### Assistant: perro")
    with pytest.raises(InspectorError, match="--split test: d.jsonl has no splits"):
        load_examples(path, split="test")
    ds = write(tmp_path, "ds", ROWS)
    with pytest.raises(InspectorError, match="has splits train"):
        load_examples(ds, split="validation")
    with pytest.raises(InspectorError, match="unknown column 'answer'"):
        parse_columns("answer=x")


def test_bad_rows_are_named_by_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n\nnot json\n[1]\n{"messages": [{"role": "user"}]}\n')
    records = list(iter_records(path))
    assert [(r.where, r.error is None) for r in records] == [("line 1", True), ("line 3", False), ("line 4", False), ("line 5", True)]
    assert "not valid JSON" in records[1].error and "JSON list" in records[2].error
    assert classify(records[3].data)[1].startswith('"messages" is not a list of')
    csv = tmp_path / "bad.csv"
    csv.write_text('prompt,completion\n"a","b"\n"c","d","e"\n')
    assert [r.error for r in iter_records(csv)] == [None, "has more fields than the header (2)"]


def test_files_that_are_not_data(tmp_path):
    for name, content, expected in [
        ("x.json", "{broken", "is not valid JSON"),
        ("x.json", '{"a": 1}\n{"b": 2}\n', "one object per line is JSONL"),
        ("x.parquet", "not parquet", "is not a readable Parquet file"),
        ("x.txt", "hello", "unknown data format .txt"),
        ("x.jsonl", "", "is empty"),
    ]:
        p = tmp_path / name
        p.write_text(content)
        with pytest.raises(InspectorError, match=expected):
            load_examples(p)
    (tmp_path / "folder").mkdir()
    with pytest.raises(InspectorError, match="not a saved Hugging Face dataset"):
        load_examples(tmp_path / "folder")


def test_conversations_without_a_chat_template_use_the_articles_format(tiny, tmp_path):
    (ex,) = load_examples(write(tmp_path, "c.jsonl", CHAT))
    assert ex.kind == "messages" and ex.text == "\n\n### Human: dog?\n\n### Assistant: perro\n\n### Human: cat?\n\n### Assistant: gato"
    (fe,) = format_examples([ex], tiny.tokenizer)
    (mask,) = label_examples("mask", [fe], tiny.tokenizer)
    assert [r.text for r in mask.rows if not r.masked] == ["␣perro", "</s>", "␣gato", "</s>"]


def test_conversations_through_a_chat_template(tiny, tmp_path):
    (ex,) = load_examples(write(tmp_path, "c.jsonl", CHAT), chat_template=UNMARKED)
    (fe,) = format_examples([ex], tiny.tokenizer)
    assert fe.kind == "chat" and fe.text.startswith("<s>user\ndog?</s>\n<s>assistant\nperro</s>")
    copy, mask = (label_examples(s, [fe], tiny.tokenizer)[0] for s in ("copy", "mask"))
    assert copy.input_ids[0] == tiny.tokenizer.bos_token_id and copy.input_ids[1] != tiny.tokenizer.bos_token_id
    assert tiny.tokenizer.decode([r.id for r in mask.rows if not r.masked]) == "perro</s>gato</s>"


def test_trl_needs_generation_markers_for_conversations(tiny, tmp_path):
    (ex,) = load_examples(write(tmp_path, "c.jsonl", CHAT), chat_template=UNMARKED)
    with pytest.raises(InspectorError, match=r"no \{% generation %\}"):
        label_examples("trl", format_examples([ex], tiny.tokenizer), tiny.tokenizer, tiny.model)
    (ex,) = load_examples(write(tmp_path, "c.jsonl", CHAT), chat_template=MARKED)
    fes = format_examples([ex], tiny.tokenizer)
    (trl,) = label_examples("trl", fes, tiny.tokenizer, tiny.model)
    (mask,) = label_examples("mask", fes, tiny.tokenizer)
    assert trl.input_ids == mask.input_ids
    assert tiny.tokenizer.decode([r.id for r in trl.rows if not r.masked]) == "perro</s>gato</s>"


def test_a_template_that_tries_to_escape_the_sandbox_is_refused(tiny, tmp_path):
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    (ex,) = load_examples(write(tmp_path, "c.jsonl", CHAT), chat_template=evil)
    with pytest.raises(InspectorError, match="the chat template failed to render"):
        format_examples([ex], tiny.tokenizer)


def test_trl_leaves_the_tokenizers_chat_template_alone(tiny_path, tmp_path):
    from inspector.core.models import load_model

    lm = load_model(str(tiny_path))
    assert lm.tokenizer.chat_template is None
    (ex,) = load_examples(write(tmp_path, "c.jsonl", CHAT), chat_template=MARKED)
    label_examples("trl", format_examples([ex], lm.tokenizer), lm.tokenizer, lm.model)
    assert lm.tokenizer.chat_template is None
