"""Any error in words for the user (`core.errors.in_words`): what the app's notifications and the
turns panel show for a worker's failure."""

from __future__ import annotations

from inspector.core.errors import InspectorError, briefly, in_words
from inspector.core.labels.process.code_errors import Frame, LabelCodeError


def test_an_inspector_error_is_shown_as_it_was_written():
    error = InspectorError("bad thing", "do this")
    assert in_words(error) == "bad thing. Do this." == error.report()


def test_the_users_own_code_is_shown_with_its_frames():
    error = LabelCodeError(
        "exception", "labels.py", 3, "ZeroDivisionError: division by zero",
        frames=[Frame("labels.py", 3, "my_labels", "return 1 / 0")],
    )
    text = in_words(error)
    assert text == error.report() and text != str(error)
    assert 'File "labels.py", line 3, in my_labels' in text and "return 1 / 0" in text


def test_another_error_is_its_type_and_first_line():
    assert in_words(ValueError("the tokenizer melted\nlong detail")) == "ValueError: the tokenizer melted"
    assert in_words(KeyError()) == "KeyError"


def test_out_of_memory_says_what_to_do():
    class OutOfMemoryError(RuntimeError):
        pass

    text = in_words(OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert text.startswith("OutOfMemoryError: CUDA out of memory") and "smaller model" in text


def test_a_library_error_quoted_briefly():
    assert briefly(ValueError("roles must alternate user/assistant\nat message 3"), 12) == "ValueError: roles must a"
    assert briefly(RuntimeError(""), 50) == "RuntimeError"
