"""The `custom` strategy: a user's label function from a file, its checks and its errors."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from label_functions import RIGHT

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.errors import InspectorError
from inspector.core.labels.process.code_errors import LabelCodeError
from inspector.core.labels.process.parent import load_label_function
from inspector.core.labels.process.protocol import LabelSource
from inspector.core.labels.strategies import (
    ALL_STRATEGIES,
    STRATEGIES,
    diff_labels,
    display_name,
    label_example,
    label_examples,
    strategies_with,
)

MULTI = "\n\n### Human: hi\n\n### Assistant: hola\n\n### Human: dog\n\n### Assistant: perro"

# The article's create_special_mask, adapted to (example, tokenizer), the bos a tokenizer prepends kept masked.
ARTICLE_MASK = RIGHT

AS_LIST = '''
def make_labels(example, tokenizer):
    labels, training = [], False
    for i, token in enumerate(example["input_ids"]):
        if training:
            labels.append(token)
            training = token != tokenizer.eos_token_id
        else:
            labels.append(-100)
            training = token == tokenizer.bos_token_id and i > 0
    return labels
'''


def write(tmp_path, text, name="labels.py"):
    f = tmp_path / name
    f.write_text(textwrap.dedent(text), encoding="utf-8")
    return f


def fmt(lm, text=ARTICLE_EXAMPLES[0]):
    return add_special_tokens(text, lm.tokenizer.bos_token, lm.tokenizer.eos_token)


def custom_of(lm, fn, text=ARTICLE_EXAMPLES[0]):
    return label_example("custom", fmt(lm, text), lm.tokenizer, custom=fn)


@pytest.mark.parametrize("code", [ARTICLE_MASK, AS_LIST], ids=["dict", "list"])
@pytest.mark.parametrize("text", [ARTICLE_EXAMPLES[0], MULTI], ids=["one-turn", "two-turns"])
def test_a_right_function_gives_the_mask_labels(tiny, tiny_bos, tmp_path, code, text):
    fn = load_label_function(str(write(tmp_path, code)))
    for lm in (tiny, tiny_bos):
        got = custom_of(lm, fn, text)
        want = label_example("mask", fmt(lm, text), lm.tokenizer)
        assert got.strategy == "custom"
        assert got.labels == want.labels and got.input_ids == want.input_ids
        assert diff_labels(got, want).count == 0


def test_the_function_gets_the_example_and_the_tokenizer(tiny, tmp_path):
    # It runs in the label process: what it saw comes back through what it printed.
    f = write(tmp_path, '''
        import json, os
        def make_labels(example, tokenizer):
            print(json.dumps({"example": dict(example), "pid": os.getpid(), "vocab": len(tokenizer),
                              "decoded": tokenizer.decode(example["input_ids"])}))
            return example["labels"]
    ''')
    fn = load_label_function(str(f))
    fe = fmt(tiny)
    got = label_example("custom", fe, tiny.tokenizer, custom=fn)
    seen = json.loads(fn.printed.text())
    example = seen["example"]
    assert seen["pid"] != os.getpid()
    assert seen["vocab"] == len(tiny.tokenizer)
    assert seen["decoded"] == tiny.tokenizer.decode(got.input_ids)
    assert example["input_ids"] == example["labels"] == got.input_ids
    assert example["attention_mask"] == [1] * len(got.input_ids)
    assert example["text"] == fe.text
    assert got.labels == got.input_ids  # labels copied: the function returned them untouched


def test_a_function_by_another_name(tiny, tmp_path):
    f = write(tmp_path, AS_LIST.replace("make_labels", "create_special_mask"))
    fn = load_label_function(f"{f}:create_special_mask")
    assert fn.name == "create_special_mask" == display_name("custom", fn)
    assert display_name("mask", fn) == "mask"
    assert custom_of(tiny, fn).labels == label_example("mask", fmt(tiny), tiny.tokenizer).labels


def test_tensors_and_arrays_of_ints_are_accepted(tiny, tmp_path):
    f = write(tmp_path, '''
        import numpy, torch
        def as_tensor(example, tokenizer):
            return torch.tensor(example["labels"])
        def as_array(example, tokenizer):
            return {"labels": numpy.array(example["labels"])}
    ''')
    for name in ("as_tensor", "as_array"):
        got = custom_of(tiny, load_label_function(f"{f}:{name}"))
        assert got.labels == got.input_ids and all(type(x) is int for x in got.labels)


WRONG = {
    "none": ("example['labels'] = example['input_ids']", "returned None"),
    "no-labels": ("return {'ids': example['input_ids']}", "returned a dict without 'labels' (keys: ids)"),
    "short": ("return example['labels'][:-1]", "returned 22 labels for 23 tokens"),
    "shifted": ("return example['labels'][1:] + [-100]", None),  # the next token's id: the shift done twice
    "float": ("return [float(x) for x in example['labels']]", "the label at position 0 is a float 202.0, not an int"),
    "bool": ("return [True] * len(example['labels'])", "the label at position 0 is a bool True, not an int"),
    "str": ("return 'labels'", "returned a str, not a list of labels"),
    "batch": ("return [example['labels']]", "returned a list of 1 lists (a batch?)"),
    "float-tensor": ("import torch; return torch.tensor(example['labels'], dtype=torch.float32)", "is a float"),
}


@pytest.mark.parametrize("case", WRONG)
def test_each_wrong_return_is_named(tiny, tmp_path, case):
    body, expected = WRONG[case]
    if expected is None:
        ids = label_example("copy", fmt(tiny), tiny.tokenizer).input_ids
        pos = next(i for i in range(len(ids) - 1) if ids[i + 1] != ids[i])
        expected = f"the label at position {pos} is {ids[pos + 1]}: neither -100 nor the token's id {ids[pos]}"
    f = write(tmp_path, f"\n\n\ndef make_labels(example, tokenizer):\n    {body}\n")
    fn = load_label_function(str(f))
    with pytest.raises(LabelCodeError) as info:
        custom_of(tiny, fn)
    err = info.value
    assert err.kind == "wrong-return" and expected in err.message
    assert err.file == str(f) and err.line == 4 and err.example == 1  # the function's def line
    assert f"{f}, line 4 (example 1)" in str(err) and "wrong return" in str(err)
    assert isinstance(err, InspectorError)


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    f = write(tmp_path, "def make_labels(example, tokenizer):\n    x = [1, 2\n    return x\n")
    with pytest.raises(LabelCodeError) as info:
        load_label_function(str(f))
    err = info.value
    assert err.kind == "syntax" and err.file == str(f) and err.line in (2, 3)
    report = err.report()
    assert "SyntaxError" in report and f'File "{f}", line {err.line}' in report
    assert "inspector" not in report.replace(str(tmp_path), "")  # nothing of ours


def test_an_exception_shows_the_users_frames_only(tiny, tmp_path):
    f = write(tmp_path, '''
        def first_answer_token(ids, bos):
            return ids.index(bos, 99)

        def make_labels(example, tokenizer):
            start = first_answer_token(example["input_ids"], tokenizer.bos_token_id)
            return example["labels"]
    ''')
    fn = load_label_function(str(f))
    with pytest.raises(LabelCodeError) as info:
        custom_of(tiny, fn)
    err = info.value
    assert err.kind == "exception" and err.line == 3 and err.example == 1
    assert err.message.startswith("ValueError:")
    assert [(fr.function, fr.line) for fr in err.frames] == [("make_labels", 6), ("first_answer_token", 3)]
    tb = err.traceback
    assert tb.splitlines() == [
        "Traceback (your code only):",
        f'  File "{f}", line 6, in make_labels',
        '    start = first_answer_token(example["input_ids"], tokenizer.bos_token_id)',
        f'  File "{f}", line 3, in first_answer_token',
        "    return ids.index(bos, 99)",
        err.message,
    ]
    assert "inspector/" not in err.report()


def test_an_exception_while_the_file_runs(tmp_path):
    f = write(tmp_path, "import json\nVALUE = 1 / 0\n")
    with pytest.raises(LabelCodeError) as info:
        load_label_function(str(f))
    assert info.value.kind == "exception" and info.value.line == 2
    assert "ZeroDivisionError" in info.value.report()


def test_missing_file_function_and_wrong_signature(tmp_path):
    with pytest.raises(LabelCodeError, match="no such file") as info:
        load_label_function(str(tmp_path / "nope.py"))
    assert info.value.kind == "not-found"
    f = write(tmp_path, "def other(example, tokenizer):\n    return example\nVALUE = 3\n")
    with pytest.raises(LabelCodeError) as info:
        load_label_function(str(f))
    assert info.value.kind == "missing-function" and "make_labels is not defined" in str(info.value)
    assert "other" in info.value.fix
    with pytest.raises(LabelCodeError, match="VALUE is not a function"):
        load_label_function(f"{f}:VALUE")
    g = write(tmp_path, "def make_labels(example):\n    return example\n", "one.py")
    with pytest.raises(LabelCodeError) as info:
        load_label_function(str(g))
    assert info.value.kind == "signature" and info.value.line == 1


def test_the_spec_parses_file_and_function(tmp_path):
    assert LabelSource.parse("mask.py").function == "make_labels"
    s = LabelSource.parse("dir/mask.py:create_special_mask")
    assert (str(s.path), s.function) == ("dir/mask.py", "create_special_mask")
    assert LabelSource.parse("C:mask.py").function == "make_labels"  # a drive letter
    with pytest.raises(InspectorError, match="no function name"):
        LabelSource.parse("mask.py:")
    with pytest.raises(InspectorError, match="not a Python function name"):
        LabelSource.parse("mask.py:2x")


def test_the_fingerprint_follows_the_file_and_a_reload_sees_every_save(tiny, tmp_path):
    f = write(tmp_path, AS_LIST)
    first = load_label_function(str(f))
    assert load_label_function(str(f)).fingerprint == first.fingerprint
    # Same size, same second: a bytecode cache keyed on mtime and size would miss it.
    f.write_text(f.read_text().replace("and i > 0", "and i >= 0"), encoding="utf-8")
    second = load_label_function(str(f))
    assert second.fingerprint != first.fingerprint
    assert custom_of(tiny, first).labels == custom_of(tiny, second).labels  # the tiny tokenizer adds no bos
    f.write_text(AS_LIST.replace("labels.append(token)", "labels.append(-100)"), encoding="utf-8")
    third = load_label_function(str(f))
    assert set(custom_of(tiny, third).labels) == {-100}


def test_the_difference_to_a_reference(tiny, tmp_path):
    f = write(tmp_path, AS_LIST.replace("training = token != tokenizer.eos_token_id", "training = True"))
    fn = load_label_function(str(f))
    fe = fmt(tiny, MULTI)
    got = label_example("custom", fe, tiny.tokenizer, custom=fn)
    mask = label_example("mask", fe, tiny.tokenizer)
    d = diff_labels(got, mask)
    # Never masked again after the first answer: the second human turn is trained.
    first_eos = mask.input_ids.index(tiny.tokenizer.eos_token_id)
    second_bos = len(mask.rows) - 1 - mask.input_ids[::-1].index(tiny.tokenizer.bos_token_id)
    assert d.positions == tuple(range(first_eos + 1, second_bos + 1))
    assert d.count == len(d.positions) and d.reference == "mask"
    copy = diff_labels(got, label_example("copy", fe, tiny.tokenizer))
    assert copy.reference == "copy" and copy.positions[0] == 0
    assert d.to_dict() == {"reference": "mask", "positions": list(d.positions), "count": d.count}


def test_custom_is_an_optional_fourth_strategy(tiny, tmp_path):
    assert STRATEGIES == ("copy", "mask", "trl")
    assert strategies_with(None) == STRATEGIES
    fn = load_label_function(str(write(tmp_path, AS_LIST)))
    assert strategies_with(fn) == ALL_STRATEGIES == ("copy", "mask", "trl", "custom")
    with pytest.raises(InspectorError, match="--labels-from"):
        label_examples("custom", [fmt(tiny)], tiny.tokenizer)
    with pytest.raises(InspectorError, match="unknown strategy"):
        label_examples("nope", [fmt(tiny)], tiny.tokenizer, custom=fn)
    (lab,) = label_examples("custom", [fmt(tiny)], tiny.tokenizer, custom=fn)
    assert lab.strategy == "custom" and lab.to_dict()["strategy"] == "custom"


def test_custom_trains_as_mask_does_when_it_equals_mask(tiny_path, tmp_path):
    from inspector.core.models import load_model
    from inspector.core.training.burst import BurstSettings
    from inspector.core.training.session import TrainingSession

    fn = load_label_function(str(write(tmp_path, ARTICLE_MASK)))
    settings = BurstSettings(epochs=2, learning_rate=1e-2, seed=1)
    losses = {}
    for strategy in ("mask", "custom"):
        lm = load_model(str(tiny_path))
        examples = [fmt(lm, t) for t in ARTICLE_EXAMPLES]
        with TrainingSession(lm.model, lm.tokenizer, examples, strategy, settings, custom=fn) as s:
            result = s.run()
            losses[strategy] = [x.loss for x in result.steps]
            if strategy == "custom":
                assert s.label_version == fn.fingerprint and not s.is_stale(fn)
                edited = load_label_function(str(write(tmp_path, ARTICLE_MASK + "\n# edited\n")))
                assert s.is_stale(edited)
                assert result.trained_tokens == 2 * 10  # " word" + eos of five examples, two epochs
    assert losses["custom"] == losses["mask"]
    assert losses["custom"][-1] < losses["custom"][0]


def test_the_reloader_keeps_the_last_good_version(tiny, tmp_path):
    import os

    from inspector.core.labels.reload import LabelReloader

    f = write(tmp_path, AS_LIST)
    r = LabelReloader(str(f))
    first = r.load()
    assert r.poll() is None  # nothing changed

    def save(text):
        f.write_text(text, encoding="utf-8")
        st = f.stat()  # a new mtime even within the file system's resolution
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))

    save("def make_labels(example, tokenizer)\n")
    err = r.poll()
    assert isinstance(err, LabelCodeError) and err.kind == "syntax" and r.current is first and r.error is err
    save("def make_labels(example, tokenizer)\n")
    assert r.poll() is None  # the same problem again
    save(AS_LIST.replace("labels.append(token)", "labels.append(-100)"))
    second = r.poll()
    assert second is r.current and second.fingerprint != first.fingerprint and r.error is None
    assert set(custom_of(tiny, second).labels) == {-100}
    save(AS_LIST.replace("labels.append(token)", "labels.append(token)  # same labels, new text"))
    third = r.poll()
    assert third is r.current
    with pytest.raises(LabelCodeError) as info:  # pretend the new one failed on an example
        custom_of(tiny, load_label_function(str(write(tmp_path, "def make_labels(e, t):\n    return None\n", "x.py"))))
    assert r.revert(info.value) is second and r.current is second and r.error is info.value
    f.unlink()
    assert isinstance(r.poll(), LabelCodeError) and r.current is second
