"""Seconds per step: the spread of a run, and the verdict on two runs' medians, on exact figures."""

from __future__ import annotations

import pytest

from inspector.core.lessons.demo_report import hanging_wrap, timing_text
from inspector.core.lessons.demo_runs import StepTiming
from inspector.core.training.burst import StepLog
from inspector.core.training.step_times import StepSpread, compare

# Quiet runs, as the benchmark measured them on the embedded Gemma on 2 cores
# (2026-11-28: docs/performance.md).
COPY = [1.04, 1.02, 1.05, 1.09, 1.03, 1.04, 1.06, 1.04, 1.05]
MASK = [1.05, 1.03, 1.06, 1.07, 1.05, 1.04, 1.06, 1.05, 1.05]
FROZEN = [0.41, 0.40, 0.42, 0.41, 0.45, 0.38, 0.41, 0.41, 0.42]
# The same copy run on a machine busy with other programs.
BUSY = [0.9, 1.6, 3.1, 1.2, 2.8, 1.0, 1.5, 2.0, 1.7]


def test_the_spread_of_a_run():
    s = StepSpread.of(BUSY)
    assert (s.median, s.min, s.max, s.steps, s.upper) == (1.6, 0.9, 3.1, 9, 2.8)
    assert s.ratio == pytest.approx(2.8 / 0.9) and s.busy
    assert s.span() == "1.60 (0.900–3.10)"
    assert s.varied() == "3.1× (0.900–2.80 s without the slowest)"
    assert not StepSpread.of(COPY).busy
    assert StepSpread.of([]) is None and StepSpread.of([0.0]) is None


def test_one_hiccup_is_not_a_busy_machine_but_two_are():
    hiccup = [1.02, 0.99, 1.01, 5.12, 1.00, 1.03]  # the benchmark's trl run: one step hit by something else
    assert not StepSpread.of(hiccup).busy
    assert StepSpread.of([*hiccup, 4.0]).busy


def test_the_warm_up_step_is_left_out_unless_it_is_the_only_one():
    steps = [StepLog("copy", 1, 0.2, 5.0, 9.0), StepLog("copy", 2, 0.4, 4.0, 1.0), StepLog("copy", 3, 0.6, 3.0, 1.2)]
    s = StepSpread.of_steps(steps)
    assert (s.median, s.min, s.max, s.steps) == (1.1, 1.0, 1.2, 2)
    assert StepSpread.of_steps(steps[:1]).median == 9.0
    assert StepSpread.of_steps([StepLog("copy", 1, 0.2, 5.0)]) is None  # recorded before steps had seconds


def test_clearly_faster_and_slower():
    faster = compare("mask, embedding frozen", FROZEN, "copy", COPY)
    assert faster.kind == "faster"
    assert faster.text == "mask, embedding frozen vs copy: 61% faster (median 0.410 s against 1.04 s)"
    slower = compare("copy", COPY, "mask, embedding frozen", FROZEN)
    assert slower.text == "copy vs mask, embedding frozen: 154% slower (median 1.04 s against 0.410 s)"


def test_medians_a_few_percent_apart_are_no_clear_difference():
    v = compare("mask", MASK, "copy", COPY)
    assert v.kind == "same"
    assert v.text == (
        "mask vs copy: no clear difference (median 1.05 s against 1.04 s: 1% apart, and two runs can differ by 5%)"
    )
    steadier = [1.0, 0.9, 1.1, 1.2, 1.0, 1.05, 1.3, 1.0, 1.1]  # steps within ±17%: 9% apart is no clear difference
    v = compare("mask", [1.14] * 9, "copy", steadier)
    assert v.kind == "same" and "9% apart, and their steps vary by ±17%" in v.text


def test_a_busy_run_cannot_be_compared():
    # The case: a median 1.5x the other's, from a run whose steps varied 3x.
    v = compare("mask", MASK, "copy", BUSY)
    assert v.kind == "busy"
    assert v.text == (
        "mask vs copy: cannot conclude: the steps of copy varied 3.1× (0.900–2.80 s without the slowest)"
    )
    both = compare("mask", BUSY, "copy", BUSY)
    assert both.text == (
        "mask vs copy: cannot conclude: the steps of copy varied 3.1× (0.900–2.80 s without the slowest),"
        " those of mask 3.1× (0.900–2.80 s without the slowest)"
    )
    assert compare("mask", [], "copy", COPY).text == "mask vs copy: cannot conclude: no step of mask was timed"


def _row(name, times):
    s = StepSpread.of(times)
    return StepTiming(name, "mask", s.median, s.min, s.max, s.steps, 23, 2, tuple(times))


def test_the_timing_text_compares_medians_and_says_how_to_measure_again():
    quiet = timing_text([_row("copy", COPY), _row("mask", MASK), _row("mask, embedding frozen", FROZEN)], "cpu", 2)
    assert "mask vs copy: no clear difference" in quiet
    assert "mask, embedding frozen vs copy: 61% faster" in quiet
    assert "cannot conclude" not in quiet and "run" not in quiet.splitlines()[-1]
    busy = timing_text([_row("copy", BUSY), _row("mask", MASK)], "cpu", 2, again="close other programs and retry")
    lines = busy.splitlines()
    assert lines[-2] == "  " + compare("mask", MASK, "copy", BUSY).text
    assert lines[-1].endswith("medians measured so cannot be compared; close other programs and retry")
    assert "slower" not in busy and "faster" not in busy
    # The default advice names no command: `lesson 4 --plain` must not advise running itself.
    assert "causallm-inspect" not in timing_text([_row("copy", BUSY), _row("mask", MASK)], "cpu", 2)


def test_long_lines_wrap_with_their_continuation_indented():
    line = '  the old collator finds no response key ("Could not find response key"): 0 trained in this example'
    out = hanging_wrap(line, 40)
    assert all(len(piece) <= 40 for piece in out)
    assert out[0].startswith("  the old") and all(piece.startswith("      ") for piece in out[1:])
    assert " ".join(p.strip() for p in out) == line.strip()
    table = "  copy        1.040 s  (1.02–1.09, 9 steps)"
    assert hanging_wrap(table, 80) == [table]  # what fits keeps its columns
    assert hanging_wrap("x" * 50, 30) == ["x" * 30, "    " + "x" * 20]
