"""inspect-data's run checks on the tiny model: TRL's prepared dataset under a max_length that cuts
one answer's stop token and drops one row whole, and under packing that cuts rows into chunks."""

from __future__ import annotations

import tempfile

import pytest

from inspector.core.batches import setup as batch_setup
from inspector.core.data.chat_format import article_text
from inspector.core.data.examples import Example, format_examples
from inspector.core.reports.run_checks import lost_stop, run_checks, spans

PAIRS = [
    ("dog", "perro"),
    ("a long long long long long long question here please", "hola"),  # its prompt alone is past max_length 25
    ("water", "agua agua agua agua agua agua"),  # its answer ends at token 27: max_length 25 cuts its eos
    ("hi", "bueno"),
]
ROWS = [4, 9, 12, 20]  # row numbers as a data file would have them


def check(lm, **flags):
    examples = [Example(article_text(w, a), row) for (w, a), row in zip(PAIRS, ROWS)]
    formatted = format_examples(examples, lm.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        s = batch_setup.examples_setup(formatted, ROWS, "test rows", flags, output_dir=tmp, device="cpu")
        return run_checks(lm.model, lm.tokenizer, s)


def by_kind(report):
    out: dict[str, list[int]] = {}
    for p in report.problems:
        out.setdefault(p.kind, []).append(p.row)
    return out


def test_spans_and_a_lost_stop_token():
    labels = [-100, -100, 5, 6, 2, -100, 7, 2]
    ids = [1, 1, 5, 6, 2, 1, 7, 2]
    assert spans(labels) == [(2, 5), (6, 8)]
    assert lost_stop(ids, labels, 4, {2}) == (2, 5)  # keeps 5, 6; cuts the eos at 4
    assert lost_stop(ids, labels, 5, {2}) is None  # the first answer is whole, the second not begun
    assert lost_stop(ids, labels, 7, {2}) == (6, 8)
    assert lost_stop(ids, labels, 4, {9}) is None  # an answer that ends in no stop token has none to lose


def test_truncation_cuts_a_stop_token_and_drops_a_row(tiny):
    report = check(tiny, max_length=25)
    assert by_kind(report) == {"answer-loses-stop-token": [12], "dropped-by-truncation": [9]}
    (lost,) = [p for p in report.problems if p.kind == "answer-loses-stop-token"]
    assert "past max_length 25" in lost.detail
    assert report.prepared_rows == 3
    # Each step's Trainer weights sum to 1 over its rows; the heaviest row has a step to itself.
    for step in range(1, report.steps + 1):
        assert sum(s.share for s in report.shares if s.step == step) == pytest.approx(1.0)
    assert report.shares[0].share >= report.shares[-1].share
    assert report.heaviest().startswith(f"row {report.shares[0].row} (")
    assert {s.row for s in report.shares} == {4, 12, 20}


def test_a_max_length_that_cuts_nothing(tiny):
    assert by_kind(check(tiny, max_length=100)) == {}  # nothing is cut


def test_wrapped_packing_has_prompt_only_chunks_that_see_each_other(tiny):
    report = check(tiny, packing=True, packing_strategy="wrapped", max_length=20)
    kinds = by_kind(report)
    assert "prompt-only-chunk" in kinds and 9 in kinds["prompt-only-chunk"]  # row 9's long prompt fills chunks alone
    assert kinds["packing-crosses-examples"]
    assert "answer-loses-stop-token" not in kinds and "dropped-by-truncation" not in kinds  # wrapped cuts, never drops
    assert report.settings["packing_strategy"] == "wrapped"


def test_bfd_packing_keeps_examples_apart(tiny):
    kinds = by_kind(check(tiny, packing=True, max_length=100))
    assert "packing-crosses-examples" not in kinds and "prompt-only-chunk" not in kinds


def test_a_batch_larger_than_the_prepared_rows_still_reports_the_rows(tiny):
    report = check(tiny, max_length=25, per_device_train_batch_size=8)
    assert by_kind(report) == {"answer-loses-stop-token": [12], "dropped-by-truncation": [9]}
    assert report.shares == [] and report.notes[0].startswith("no step weights: per_device_train_batch_size 8 is larger")
