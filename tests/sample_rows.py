"""Data rows the data tests share: conversations with and without problems, written as JSONL."""

from __future__ import annotations

import json

CHAT_OK = {"messages": [{"role": "user", "content": "dog?"}, {"role": "assistant", "content": "perro"}]}
CHAT_MULTI = {"messages": [
    {"role": "user", "content": "water?"}, {"role": "assistant", "content": "agua"},
    {"role": "user", "content": "tree?"}, {"role": "assistant", "content": "árbol"},
]}
NO_ANSWER = {"messages": [{"role": "user", "content": "cat?"}]}
# The answer's end-of-turn comes after a newline: the token closing the answer is not special.
LATE_EOS = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}\n</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def jsonl(tmp_path, rows, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


def many_problems(tmp_path, n=230):
    """Rows with problems spread through the file: bad JSON, no answer, empty answers, wrong types."""
    good = [CHAT_OK, CHAT_MULTI]
    bad = ["not json", NO_ANSWER, {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]},
           {"prompt": "x", "completion": "y"}, {"messages": "oops"}]
    rows = [bad[i % len(bad)] if i % 7 == 3 else good[i % 2] for i in range(n)]
    return jsonl(tmp_path, rows)

# Twelve examples in custom turn markers, more than the 8 training rows (the `rows12` fixture):
# the front ends' agreement tests.
WORDS12 = ["dog", "cat", "good", "house", "water", "red", "blue", "one", "two", "three", "sun", "moon"]
MARKERS12 = ["--human-marker", "### User:", "--assistant-marker", "### Bot:"]
