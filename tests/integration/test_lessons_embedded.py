"""The lessons' claims about the embedded Gemma 3 270M, checked on it: what its tokenizer does
with the response templates, the special tokens and the chat template (no training here)."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.data.examples import article_examples, format_examples
from inspector.core.data.tokens import IGNORE_INDEX as M

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gemma():
    from inspector.core.models import load_model

    return load_model(device="cpu")


def fmt(lm, text=ARTICLE_EXAMPLES[0]):
    return add_special_tokens(text, lm.tokenizer.bos_token, lm.tokenizer.eos_token)


def test_the_template_pitfall_on_gemma(gemma):
    from inspector.core.lessons.pitfalls import template_pitfall

    pitfall = template_pitfall(gemma.tokenizer, format_examples(article_examples(), gemma.tokenizer))
    found = {c.template: c.found for c in pitfall.checks}
    # Gemma keeps "?" apart from "\n\n": the article's whole marker is found, one newline is not.
    assert found == {"\n\n### Assistant:": True, "\n### Assistant:": False, "### Assistant:": True, "Assistant:": False}
    bad = pitfall.failing
    assert [r.id for r in bad.alone] == [107, 10354, 22083, 236787]
    assert list(bad.fixed_ids) == [108, 10354, 22083, 236787] and bad.fixed_found_in == 5


def test_the_old_collator_on_gemma_trains_the_prompt(gemma):
    from inspector.core.lessons.pitfalls import old_collator_view

    view = old_collator_view(gemma.tokenizer, fmt(gemma))
    assert view.bos_positions == (0, 19)  # Gemma's own bos is a response template too
    assert view.old.labels[0] == M and view.old.labels[1:] == view.old.input_ids[1:]


def test_special_tokens_on_gemma(gemma):
    from inspector.core.lessons.pitfalls import special_tokens_view

    view = special_tokens_view(gemma.tokenizer, fmt(gemma))
    assert view.added == (("\n\n### Human:", 262144), ("\n\n### Assistant:", 262145))
    assert view.before.labels == [M] * 20 + [83588, 1]
    assert view.after.labels == [M] * 14 + [83588, 1]


def test_the_shipped_chat_template_on_gemma(gemma):
    from inspector.core.lessons.chat_templates import chat_template_view, conversation
    from inspector.core.lessons.demos import TWO_TURNS

    assert gemma.tokenizer.chat_template is None  # the GGUF tokenizer has none
    view = chat_template_view(gemma.tokenizer, conversation(TWO_TURNS))
    assert [r.text for r in view.rows if not r.masked] == ["per", "ro", "<end_of_turn>", "agua", "<end_of_turn>"]
    assert view.unmarked_trained == 0


def test_shift_and_padding_on_gemma(gemma):
    from inspector.core.labels.strategies import label_example
    from inspector.core.lessons.anatomy import padding_view, shift_view
    from inspector.core.lessons.demos import TWO_TURNS

    lab = label_example("copy", fmt(gemma), gemma.tokenizer)
    shift = shift_view(gemma.model, lab)
    assert shift.model_loss == pytest.approx(shift.shifted_loss, abs=1e-4)
    pad = padding_view(gemma.model, gemma.tokenizer, lab, label_example("copy", fmt(gemma, TWO_TURNS), gemma.tokenizer))
    assert pad.loss_right == pytest.approx(pad.loss_alone, abs=1e-3)
    assert pad.scored_left == pad.scored_alone + 1 and pad.max_diff_left < 1e-3  # RoPE: positions are relative


def test_packing_and_step_weights_on_gemma(gemma):
    """Lessons 11 and 13 on Gemma: bfd as the trainer runs it keeps the held-out example apart, a plain
    call with the default cache does not; the Trainer's step gradient is the full batch's."""
    from inspector.core.data.chat_format import ARTICLE_PAIRS, HOLDOUT_ANSWER, HOLDOUT_WORD, article_text
    from inspector.core.lessons.packing import packing_view
    from inspector.core.lessons.weights import same_within_float_error, step_examples, weights_view

    examples = [fmt(gemma, article_text(w, a)) for w, a in ARTICLE_PAIRS]
    held_out = fmt(gemma, article_text(HOLDOUT_WORD, HOLDOUT_ANSWER))
    bfd = packing_view(gemma.model, gemma.tokenizer, examples, held_out, batch_size=2).strategies["bfd"]
    assert bfd.found and not bfd.first_in_row and bfd.max_diff < 1e-6 and bfd.max_diff_plain_call > 1e-2
    assert bfd.loss_trainer["train"] != bfd.loss_plain_call["train"]
    varied = [fmt(gemma, article_text(w, a)) for w, a in step_examples(ARTICLE_PAIRS)]
    v = weights_view(gemma.model, gemma.tokenizer, varied)
    assert same_within_float_error(v.versus["trainer vs full batch"])
    assert not same_within_float_error(v.versus["per_micro_batch vs full batch"])


def test_exercises_11_and_13_hold_on_gemma(gemma, tmp_path):
    """The hidden packs and steps are sized from Gemma's own lengths: a right function passes every
    one of them, the cut answer and the one-token piece exist, and a per-micro-batch mean fails."""
    from inspector.core.exercises.registry import EXERCISES, check_exercise
    from inspector.core.labels.process.parent import load_label_function
    from inspector.core.lessons.model import load_lessons

    lessons = load_lessons()
    solutions = {
        "packing": "def packed_labels(example, tokenizer):\n    return [t if c and p else -100 for t, c, p in "
                   "zip(example['input_ids'], example['completion_mask'], example['position_ids'])]\n",
        "weights": "def token_weights(micro_batches):\n    n = sum(1 for mb in micro_batches for r in mb['labels'] "
                   "for x in r[1:] if x != -100)\n    return [[[1 / n if t and x != -100 else 0.0 for t, x in "
                   "enumerate(r)] for r in mb['labels']] for mb in micro_batches]\n",
    }
    for lesson_id, code in solutions.items():
        number = next(i + 1 for i, les in enumerate(lessons) if les.id == lesson_id)
        ex = EXERCISES[lesson_id]
        f = tmp_path / f"{lesson_id}.py"
        f.write_text(code)
        report = check_exercise(ex, number, lessons[number - 1], load_label_function(f"{f}:{ex.function}", kind=ex.function_kind),
                                gemma.tokenizer, model=gemma.model)
        assert report.passed, report.text()
        names = " ".join(r.case.name for r in report.results)
        assert "hidden" in names
    per_mb = tmp_path / "per_mb.py"
    per_mb.write_text(solutions["weights"].replace("for mb in micro_batches for r", "for mb in micro_batches[:1] for r"))
    ex = EXERCISES["weights"]
    report = check_exercise(ex, 13, lessons[12], load_label_function(f"{per_mb}:{ex.function}", kind=ex.function_kind),
                            gemma.tokenizer, model=gemma.model)
    assert not report.passed
