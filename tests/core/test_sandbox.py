"""The label process: whatever the user's function does, the caller gets a LabelCodeError with
its file and line, the process that ran it ends, and the next call works."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.labels.process.code_errors import LabelCodeError
from inspector.core.labels.process.parent import LabelCall, load_label_function
from inspector.core.labels.process.protocol import Printed
from inspector.core.labels.process.sandbox import Sandbox
from inspector.core.labels.strategies import label_example

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the label process's limits are POSIX ones")

TIMEOUT = 1.0
GOOD = '''
def make_labels(example, tokenizer):
    return [-100] + list(example["input_ids"][1:])
'''


@pytest.fixture(scope="module")
def box():
    sandbox = Sandbox(timeout=TIMEOUT)
    yield sandbox
    sandbox.close()


def write(tmp_path: Path, body: str, name: str = "labels.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def ids_of(tiny, n: int = 0) -> list[int]:
    return tiny.tokenizer(fmt(tiny, n).text)["input_ids"]


def fmt(tiny, n: int = 0):
    return add_special_tokens(ARTICLE_EXAMPLES[n], tiny.tokenizer.bos_token, tiny.tokenizer.eos_token)


def call(tiny, fn, n: int = 0) -> list[int]:
    return fn.call(ids_of(tiny, n), tiny.tokenizer, example=n + 1)


def pid_ends(pid: int, within: float = 5.0) -> bool:
    """Whether process `pid` is gone (or a zombie, using no CPU) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def pid_writer(tmp_path: Path) -> str:
    """Lines that write the worker's pid where the test reads it."""
    return f"open({str(tmp_path / 'pid')!r}, 'w').write(str(__import__('os').getpid()))"


def test_a_good_function_labels_in_another_process(tiny, tmp_path, box):
    fn = load_label_function(str(write(tmp_path, GOOD)), sandbox=box)
    ids = ids_of(tiny)
    assert call(tiny, fn) == [-100, *ids[1:]]


def test_an_endless_loop_is_stopped_at_its_line_and_its_process_ends(tiny, tmp_path, box):
    f = write(tmp_path, f'''
        def make_labels(example, tokenizer):
            {pid_writer(tmp_path)}
            while True:
                pass
    ''')
    fn = load_label_function(str(f), sandbox=box)
    started = time.monotonic()
    with pytest.raises(LabelCodeError) as caught:
        call(tiny, fn)
    took = time.monotonic() - started
    err = caught.value
    assert err.kind == "timeout" and err.file == str(f) and err.line in (4, 5)
    assert took < TIMEOUT + 4
    report = err.report()
    assert "\n" not in report and "--labels-timeout" in report and f"{f}, line" in report
    assert pid_ends(int((tmp_path / "pid").read_text()))  # the core it burned is free again
    # The next call gets a fresh process and the same answer.
    with pytest.raises(LabelCodeError, match="time limit"):
        call(tiny, fn)


def test_a_long_sleep_is_stopped_too(tiny, tmp_path, box):
    fn = load_label_function(str(write(tmp_path, '''
        import time
        def make_labels(example, tokenizer):
            time.sleep(60)
    ''')), sandbox=box)
    started = time.monotonic()
    with pytest.raises(LabelCodeError) as caught:
        call(tiny, fn)
    assert caught.value.kind == "timeout" and caught.value.line == 4
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("body", "kind", "line"),
    [
        ("import sys\ndef make_labels(example, tokenizer):\n    sys.exit(3)\n", "exit", 3),
        ("import sys\ndef make_labels(example, tokenizer):\n    raise SystemExit\n", "exit", 3),
        ("import os\ndef make_labels(example, tokenizer):\n    os._exit(0)\n", "exit", 3),
        ("import ctypes\ndef make_labels(example, tokenizer):\n    ctypes.string_at(0)\n", "crashed", 3),
        ("def make_labels(example, tokenizer):\n    block = bytearray(50 * 2**30)\n", "memory", 2),
    ],
    ids=["sys.exit", "SystemExit", "os._exit", "segfault", "50 GB"],
)
def test_what_would_end_a_process_is_the_users_error_at_its_line(tiny, tmp_path, box, body, kind, line):
    f = write(tmp_path, body)
    fn = load_label_function(str(f), sandbox=box)
    with pytest.raises(LabelCodeError) as caught:
        call(tiny, fn)
    err = caught.value
    assert (err.kind, err.file, err.line) == (kind, str(f), line), err.report()
    assert "\n" not in err.report()
    # This process is alive and the label process still works.
    good = load_label_function(str(write(tmp_path, GOOD, "good.py")), sandbox=box)
    assert call(tiny, good)[0] == -100


def test_ten_megabytes_printed_are_counted_and_kept_in_part(tiny, tmp_path, box):
    fn = load_label_function(str(write(tmp_path, '''
        import sys
        def make_labels(example, tokenizer):
            print("x" * 10_000_000)
            sys.stderr.write("the end\\n")
            return list(example["input_ids"])
    ''')), sandbox=box)
    assert call(tiny, fn) == ids_of(tiny)
    printed = fn.printed
    assert printed.bytes == 10_000_009
    text = printed.text()
    assert text.startswith("x" * 100) and text.endswith("the end\n") and "10,000,009 bytes in all" in text
    assert len(text) < 3000


def test_printed_output_joins_without_repeating():
    a, b = Printed("one\n", "one\n", 4), Printed("two\n", "two\n", 4)
    assert a.then(b).text() == "one\ntwo\n"
    big = Printed("a" * 4000, "z" * 4000, 9000)
    assert big.then(b).tail.endswith("z" * 10 + "two\n") and big.then(b).head == "a" * 4000


def test_a_loop_at_the_top_of_the_file_is_stopped_while_loading(tiny, tmp_path, box):
    f = write(tmp_path, '''
        x = 0
        while True:
            x += 1
    ''')
    with pytest.raises(LabelCodeError) as caught:
        load_label_function(str(f), sandbox=box)
    assert caught.value.kind == "timeout" and caught.value.line in (3, 4)
    assert "while the file ran" in caught.value.report()


def test_every_example_is_one_request_and_errors_stay_with_their_example(tiny, tmp_path, box):
    fn = load_label_function(str(write(tmp_path, '''
        CALLS = []
        def make_labels(example, tokenizer):
            CALLS.append(1)
            print(len(CALLS))
            if example["text"] == "second":
                raise ValueError("the second")
            return list(example["input_ids"])
    ''')), sandbox=box)
    texts = ["first", "second", "third"]
    calls = [LabelCall(ids_of(tiny, n), tiny.tokenizer, text=texts[n], example=n + 1) for n in range(3)]
    first, second, third = fn.call_many(calls, stop_on_error=False)
    assert first == ids_of(tiny, 0) and third == ids_of(tiny, 2)
    assert isinstance(second, LabelCodeError) and second.example == 2 and "the second" in second.message
    assert fn.printed.text() == "1\n2\n3\n"  # one process, one module, one CALLS list
    # Stopping at the first error ends the list there.
    results = fn.call_many(calls)
    assert len(results) == 2 and isinstance(results[1], LabelCodeError)


def test_a_new_version_ends_the_old_ones_process(tiny, tmp_path, box):
    f = write(tmp_path, f'''
        import time
        def make_labels(example, tokenizer):
            {pid_writer(tmp_path)}
            time.sleep(0.2)
            return list(example["input_ids"])
    ''')
    old = load_label_function(str(f), sandbox=box)
    call(tiny, old)
    old_pid = int((tmp_path / "pid").read_text())
    new = load_label_function(str(write(tmp_path, GOOD)), sandbox=box)
    new.stop_others()
    assert pid_ends(old_pid)
    assert call(tiny, new)[0] == -100


def test_the_custom_strategy_labels_through_the_process(tiny, tmp_path, box):
    fn = load_label_function(str(write(tmp_path, GOOD)), sandbox=box)
    fe = fmt(tiny, 1)
    got = label_example("custom", fe, tiny.tokenizer, custom=fn)
    assert got.labels[0] == -100 and got.labels[1:] == got.input_ids[1:]


def test_a_tokenizer_variant_is_made_in_the_label_process_from_its_recipe(tiny, tmp_path, monkeypatch):
    """A tokenizer made by a known recipe (one that adds its own bos) reaches the label process as
    that recipe, not as a pickle, and works there as it does here."""
    from inspector.core.data.tokenizer_variants import TokenizerVariant, derivation, variant_of
    from inspector.core.labels.process.protocol import Derive, HandOver

    tok = variant_of(tiny.tokenizer, TokenizerVariant.ADDS_BOS)
    assert tok is not tiny.tokenizer and variant_of(tiny.tokenizer, TokenizerVariant.ADDS_BOS) is tok
    assert derivation(tok) == (tiny.tokenizer, TokenizerVariant.ADDS_BOS)
    fresh = Sandbox(timeout=TIMEOUT)
    sent = []
    ask = fresh._ask
    monkeypatch.setattr(fresh, "_ask", lambda request, timeout: (sent.append(type(request)), ask(request, timeout))[1])
    try:
        f = write(tmp_path, '''
        def make_labels(example, tokenizer):
            adds_bos = tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id
            return [-100 if adds_bos and i == 0 else t for i, t in enumerate(example["input_ids"])]
        ''')
        fn = load_label_function(str(f), sandbox=fresh)
        ids = tok("hello")["input_ids"]
        assert fn.call(ids, tok) == [-100, *ids[1:]]
        assert sent.count(HandOver) == 1 and sent.count(Derive) == 1  # the base sent, the variant made there
    finally:
        fresh.close()
