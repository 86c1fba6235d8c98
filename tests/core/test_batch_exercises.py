"""Exercises 11 and 13 on the tiny model: a packed row's labels against TRL's collator, each
label's weight in a step against the Trainer's gradient, on the lesson's batches and hidden ones."""

from __future__ import annotations

import tempfile

import pytest
from label_functions import check_code  # tests/ is on the path

from inspector.core.data.chat_format import ARTICLE_MARKERS, ARTICLE_PAIRS, add_special_tokens, article_text
from inspector.core.exercises.registry import EXERCISES, find_exercise, starter_text
from inspector.core.lessons.model import load_lessons
from inspector.core.lessons.weights import step_examples

PACKED_RIGHT = '''
def packed_labels(example, tokenizer):
    return [t if c and p != 0 else -100
            for t, c, p in zip(example["input_ids"], example["completion_mask"], example["position_ids"])]
'''
# The completion kept, but no boundary masked: right wherever a segment starts with a prompt token.
PACKED_NO_BOUNDARY = '''
def packed_labels(example, tokenizer):
    return [t if c else -100 for t, c in zip(example["input_ids"], example["completion_mask"])]
'''
# Boundaries found from seq_lengths instead of position_ids: the same labels.
PACKED_BY_LENGTHS = '''
def packed_labels(example, tokenizer):
    labels = [t if c else -100 for t, c in zip(example["input_ids"], example["completion_mask"])]
    start = 0
    for n in example["seq_lengths"]:
        labels[start] = -100
        start += n
    example["labels"] = labels
    return example
'''
WEIGHTS_RIGHT = '''
def token_weights(micro_batches):
    n = sum(1 for mb in micro_batches for row in mb["labels"] for x in row[1:] if x != -100)
    return [[[1 / n if t > 0 and x != -100 else 0.0 for t, x in enumerate(row)] for row in mb["labels"]]
            for mb in micro_batches]
'''
WEIGHTS_PER_MICRO_BATCH = '''
def token_weights(micro_batches):
    out = []
    for mb in micro_batches:
        n = sum(1 for row in mb["labels"] for x in row[1:] if x != -100)
        out.append([[1 / n if t > 0 and x != -100 else 0.0 for t, x in enumerate(row)] for row in mb["labels"]])
    return out
'''
WEIGHTS_PER_DEVICE = '''
def token_weights(micro_batches):
    ranks = {mb["rank"] for mb in micro_batches}
    count = {r: sum(1 for mb in micro_batches if mb["rank"] == r for row in mb["labels"] for x in row[1:] if x != -100)
             for r in ranks}
    return [[[1 / (count[mb["rank"]] * len(ranks)) if t > 0 and x != -100 else 0.0 for t, x in enumerate(row)]
             for row in mb["labels"]] for mb in micro_batches]
'''
WEIGHTS_LABEL_ZERO = '''
def token_weights(micro_batches):
    n = sum(1 for mb in micro_batches for row in mb["labels"] for x in row if x != -100)
    return [[[1 / n if x != -100 else 0.0 for x in row] for row in mb["labels"]] for mb in micro_batches]
'''
WEIGHTS_FLAT = '''
def token_weights(micro_batches):
    return [0.0 for mb in micro_batches]
'''


check = check_code  # tests/label_functions.py


def _failed(report):
    return {r.case.name.split(", row")[0] for r in report.results if not r.passed}


def test_the_trainers_gradient_gives_the_batch_cores_weights(tiny):
    """The weights read off the Trainer's own loss (its fused head) equal those the batch core counts,
    under accumulation, simulated devices, copy labels, packing and average_tokens_across_devices off."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.steps import inspect_step
    from inspector.core.batches.token_weights import gradient_weights
    from inspector.core.batches.trainer import sft_trainer

    tok = tiny.tokenizer
    fes = [add_special_tokens(article_text(w, a), tok.bos_token, tok.eos_token, ARTICLE_MARKERS)
           for w, a in step_examples(ARTICLE_PAIRS)]
    step = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 2}
    for flags, world in (
        (step, 3),
        ({**step, "per_device_train_batch_size": 2, "completion_only_loss": False}, 1),
        ({**step, "packing": True, "max_length": 60}, 2),
        ({**step, "average_tokens_across_devices": False}, 2),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            setup = examples_setup(fes, list(range(1, len(fes) + 1)), "x", flags, output_dir=tmp, device="cpu")
            with sft_trainer(tiny.model, tok, setup) as trainer:
                view = inspect_step(trainer, setup, step=1, world_size=world)
                read = gradient_weights(trainer, view)
        counted = [mb.weights["trainer"] for mb in view.micro_batches]
        assert len(read) == len(counted)
        for got, want in zip(read, counted):
            for g_row, w_row in zip(got, want):
                assert g_row == pytest.approx(w_row, abs=1e-7), (flags, world)
        assert sum(w for mb in read for row in mb for w in row) == pytest.approx(1.0, abs=1e-6)
    assert all(p.grad is None for p in tiny.model.parameters())  # nothing of the model was touched


def test_packed_labels_right_and_by_seq_lengths_pass_every_row(tiny, tmp_path):
    report = check(tmp_path, PACKED_RIGHT, tiny, "packing")
    assert report.passed, report.text()
    names = [r.case.name for r in report.results]
    assert any(n.startswith("lesson examples packed (bfd, max_length 64), row 1") for n in names)
    assert any("cut in its middle by bfd_split" in n for n in names)
    assert any("a piece of one token" in n and "1" in n.split("segments")[1] for n in names)
    assert check(tmp_path, PACKED_BY_LENGTHS, tiny, "packing").passed


def test_packed_labels_without_the_boundary_fail_only_where_an_example_starts_on_an_answer(tiny, tmp_path):
    report = check(tmp_path, PACKED_NO_BOUNDARY, tiny, "packing")
    assert _failed(report) == {"hidden: an answer cut in its middle by bfd_split", "hidden: a piece of one token (bfd_split)"}
    bad = [r for r in report.results if not r.passed]
    assert all("position_ids 0" in r.hint for r in bad)
    one = next(r for r in bad if "one token" in r.case.name)
    assert all(d.expected == -100 and d.got != -100 for d in one.differences)


def test_the_packing_starter_fails_and_says_the_prompt_is_trained(tiny, tmp_path):
    report = check(tmp_path, starter_text(EXERCISES["packing"]), tiny, "packing")
    assert not any(r.passed for r in report.results)
    assert "completion_mask 0" in report.results[0].hint


def test_token_weights_right_passes_and_its_gradient_is_the_trainers(tiny, tmp_path):
    report = check(tmp_path, WEIGHTS_RIGHT, tiny, "weights")
    assert report.passed, report.text()
    assert [r.case.name for r in report.results][0] == "lesson step: 2 accumulation steps × 2 devices"
    assert len(report.results) == 5
    for r in report.results:
        assert "cosine 1.000000, norm ratio 1.000000" in r.detail
    assert "hidden: a micro-batch with no trained label" in report.text()


def test_each_wrong_weighting_fails_where_it_is_wrong_with_its_hint(tiny, tmp_path):
    per_mb = check(tmp_path, WEIGHTS_PER_MICRO_BATCH, tiny, "weights")
    assert not per_mb.passed
    by_name = {r.case.name: r for r in per_mb.results}
    lesson = by_name["lesson step: 2 accumulation steps × 2 devices"]
    assert not lesson.passed and "its own count" in lesson.hint and "whole step" in lesson.hint
    assert "cosine 1.000000" not in lesson.detail
    # An all-masked micro-batch: 1/0 in the user's code would be theirs; here it simply weighs nothing.
    per_device = check(tmp_path, WEIGHTS_PER_DEVICE, tiny, "weights")
    failed = _failed(per_device)
    assert "hidden: uneven devices (3 devices, answers of 1 to 9 words)" in failed
    assert "hidden: copy labels (completion_only_loss=False), padded rows" not in failed  # one device: right
    uneven = next(r for r in per_device.results if "uneven" in r.case.name)
    assert "summed over the devices" in uneven.hint
    zero = check(tmp_path, WEIGHTS_LABEL_ZERO, tiny, "weights")
    copy = next(r for r in zero.results if "copy labels" in r.case.name)
    assert not copy.passed and "label 0 of a row predicts nothing" in copy.hint


def test_a_weights_function_that_divides_by_zero_fails_that_step_with_its_error(tiny, tmp_path):
    code = (  # each micro-batch's own mean, computed before looking at the labels: 1 / 0 on an all-masked one
        "def token_weights(micro_batches):\n"
        "    out = []\n"
        "    for mb in micro_batches:\n"
        "        share = 1 / sum(1 for row in mb['labels'] for x in row[1:] if x != -100)\n"
        "        out.append([[share if t and x != -100 else 0.0 for t, x in enumerate(r)] for r in mb['labels']])\n"
        "    return out\n"
    )
    report = check(tmp_path, code, tiny, "weights")
    masked = next(r for r in report.results if "no trained label" in r.case.name)
    assert masked.error is not None and "ZeroDivisionError" in masked.error.problem
    assert any(r.error is None for r in report.results)  # the other steps ran


def test_a_weights_return_of_the_wrong_shape_is_named(tiny, tmp_path):
    report = check(tmp_path, WEIGHTS_FLAT, tiny, "weights")
    err = report.results[0].error
    assert err is not None and err.kind == "wrong-return"
    assert "micro-batch 0 has" in err.message and "rows of labels" in err.message


def test_an_exercise_file_is_known_by_its_first_line(tmp_path):
    lessons = load_lessons()
    f = tmp_path / "x.py"
    f.write_text(starter_text(EXERCISES["weights"]))
    found = find_exercise(f, lessons)
    number, ex = found.number, found.exercise
    assert number == 13 and ex.function == "token_weights" and ex.params == ("micro_batches",)
    assert not ex.strategy and ex.needs_model
    f.write_text("def make_labels(example, tokenizer):\n    return example['labels']\n")
    assert find_exercise(f, lessons) is None
    assert find_exercise(tmp_path / "missing.py", lessons) is None


@pytest.mark.parametrize("which", ["bos", "gpt2"])
def test_the_hidden_cases_hold_on_other_tokenizers(which, tiny_bos, tiny_gpt2_path, tmp_path):
    """A tokenizer that adds its own bos, and GPT-2's bos == eos with no pad: every case is built
    (the cut answer, the one-token piece, the all-masked micro-batch) and a right function passes."""
    from inspector.core.models import load_model

    lm = tiny_bos if which == "bos" else load_model(str(tiny_gpt2_path), device="cpu")
    assert check(tmp_path, PACKED_RIGHT, lm, "packing").passed
    assert check(tmp_path, WEIGHTS_RIGHT, lm, "weights").passed


def test_a_weight_that_is_not_a_finite_number_and_a_wrong_signature_are_named(tiny, tmp_path):
    nan = WEIGHTS_RIGHT.replace("1 / n if t > 0", "float('nan') if t > 0")
    err = check(tmp_path, nan, tiny, "weights").results[0].error
    assert err is not None and err.kind == "wrong-return" and "not a finite number" in err.message
    f = tmp_path / "two.py"
    f.write_text("def token_weights(micro_batches, tokenizer):\n    return []\n")
    from inspector.core.labels.process.code_errors import LabelCodeError
    from inspector.core.labels.process.parent import load_label_function
    from inspector.core.labels.process.protocol import FunctionKind

    with pytest.raises(LabelCodeError, match=r"cannot be called with \(micro_batches\)") as caught:
        load_label_function(f"{f}:token_weights", kind=FunctionKind.WEIGHTS)
    assert caught.value.kind == "signature" and "def token_weights(micro_batches)" in caught.value.fix


def test_the_batch_views_rows_give_exercise_11_the_fields_the_check_gives(tiny):
    """row_fields of every row of a bfd_split step (answers cut mid-way): the right packed_labels of
    those fields is the collator's labels, so the batch view's `yours` row is judged as the check is."""
    from inspector.core.batches.steps import build_step
    from inspector.core.exercises.packed_rows import row_fields

    class Loaded:
        model, tokenizer, device = tiny.model, tiny.tokenizer, "cpu"

    tok = tiny.tokenizer
    fes = [add_special_tokens(article_text(w, a), tok.bos_token, tok.eos_token, ARTICLE_MARKERS)
           for w, a in step_examples(ARTICLE_PAIRS)]
    flags = {"packing": True, "packing_strategy": "bfd_split", "max_length": 21, "per_device_train_batch_size": 1,
             "gradient_accumulation_steps": 16}
    view = build_step(Loaded, fes, list(range(1, len(fes) + 1)), "x", flags)
    cut = 0
    for mb in view.micro_batches:
        fields = row_fields(tok, mb, 0, view.mask_reason)
        right = [t if c and p != 0 else -100
                 for t, c, p in zip(fields["input_ids"], fields["completion_mask"], fields["position_ids"])]
        assert right == mb.rows_of("labels")[0]
        assert sum(fields["seq_lengths"]) == len(fields["input_ids"])
        cut += sum(1 for p, c in zip(fields["position_ids"], fields["completion_mask"]) if p == 0 and c == 1)
    assert cut > 0  # some piece starts inside an answer: the boundary is what masks it
