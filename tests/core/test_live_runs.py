"""The two demos that train, on the tiny model: seconds per step, and the masked eos."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import ARTICLE_MARKERS, ARTICLE_PAIRS, TurnMarkers, article_text
from inspector.core.data.examples import article_examples, format_examples
from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.lessons.demo_runs import EOS_VARIANTS, TIMING_VARIANTS, eos_padding_run, measure_step_times

FAST_LR = 1e-2  # the tiny model learns visibly in a few steps at this rate


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a busy 2-core machine: threads only spin
    yield
    torch.set_num_threads(before)


def test_step_times_of_each_variant(tiny):
    fes = format_examples(article_examples(), tiny.tokenizer)
    before = [p.detach().clone() for p in tiny.model.parameters()]
    rows = measure_step_times(tiny.model, tiny.tokenizer, fes, template=ARTICLE_MARKERS, max_length=tiny.max_length, epochs=1)
    assert [r.name for r in rows] == [v[0] for v in TIMING_VARIANTS]
    for r in rows:
        assert r.steps == 4  # five steps, the first one a warm-up
        assert 0 < r.min_s <= r.median_s <= r.max_s
        assert r.tokens_per_step == pytest.approx(sum(len(tiny.tokenizer(f.text)["input_ids"]) for f in fes) / 5)
    assert rows[0].trained_per_step > rows[1].trained_per_step  # copy trains every token, mask two
    # The model in use was trained on copies only.
    assert all((a == b).all() for a, b in zip(before, tiny.model.parameters()))


def test_a_stop_request_ends_the_timing_early(tiny):
    fes = format_examples(article_examples(), tiny.tokenizer)
    assert measure_step_times(tiny.model, tiny.tokenizer, fes, template=ARTICLE_MARKERS, max_length=tiny.max_length,
                              epochs=1, should_stop=lambda: True) == []


def test_with_the_eos_masked_the_model_never_learns_to_stop(tiny):
    fes = format_examples(article_examples(), tiny.tokenizer)
    seen = []
    run = eos_padding_run(
        tiny.model, tiny.tokenizer, fes, template=ARTICLE_MARKERS, max_length=tiny.max_length, epochs=2,
        learning_rate=FAST_LR, on_epoch=lambda v, log: seen.append(v)
    )
    assert list(run.answers) == list(EOS_VARIANTS) and seen == ["mask", "mask", "mask, eos masked", "mask, eos masked"]
    eos = tiny.tokenizer.eos_token_id
    assert run.trained_labels["mask"][-1] == eos
    assert run.trained_labels["mask, eos masked"][-1] == IGNORE_INDEX
    assert run.trained_labels["mask"][:-1] == run.trained_labels["mask, eos masked"][:-1]
    assert not run.stops(run.untrained)
    assert all(run.stops(log.holdout) for log in run.answers["mask"])
    assert not any(run.stops(log.holdout) for log in run.answers["mask, eos masked"])


def test_lesson_10_s_demo_asks_its_held_out_question_in_the_run_s_markers(tiny):
    """`--human-marker "User:" --assistant-marker "Bot:"`: the eos demo trains as the bursts do,
    so its held-out question is asked in those markers, not in the article's."""
    from inspector.core.lab import Lab
    from inspector.core.lessons.demos import run_demo
    from inspector.core.lessons.model import load_lessons

    markers = TurnMarkers("User:", "Bot:")
    texts = [article_text(w, a, markers) for w, a in ARTICLE_PAIRS]
    lab = Lab.around(tiny, texts, markers, train_rows=len(texts))
    lesson = load_lessons()[9]
    assert lesson.demo == "eos-padding"
    ctx = lab.demo_context(lesson, epochs=1)
    assert (ctx.template, ctx.max_length) == (markers, tiny.max_length)
    run = run_demo("eos-padding", ctx).data
    assert "User: How do you say \"good\" in Spanish?Bot:" in run.prompt
    assert "### Human" not in run.prompt and "### Assistant" not in run.prompt
