"""Teacher-forced predictions from one forward pass equal the article's iterative generation."""

from __future__ import annotations

import math

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.labels.strategies import encode
from inspector.core.training.predictions import accuracy, iterative_greedy, teacher_forced


def _ids(lm, text=ARTICLE_EXAMPLES[2]):
    fe = add_special_tokens(text, lm.tokenizer.bos_token, lm.tokenizer.eos_token)
    return encode(fe, lm.tokenizer)[0]


def test_teacher_forced_equals_iterative_greedy_generation(tiny, tiny_bos):
    for lm in (tiny, tiny_bos):
        ids = _ids(lm)
        rows = teacher_forced(lm.model, lm.tokenizer, ids)
        assert [r.predicted_id for r in rows] == iterative_greedy(lm.model, lm.tokenizer, ids)


def test_rows_line_up_inputs_targets_and_probabilities(tiny):
    ids = _ids(tiny)
    rows = teacher_forced(tiny.model, tiny.tokenizer, ids, top_k=5)
    assert [r.input_id for r in rows] == ids
    assert [r.target_id for r in rows] == ids[1:] + [None]
    last = rows[-1]
    assert last.correct is None and last.p_target is None and last.target is None
    for r in rows[:-1]:
        assert r.correct == (r.predicted_id == r.target_id)
        assert 0.0 <= r.p_target <= 1.0
        assert len(r.top) == 5
        assert r.top[0].id == r.predicted_id
        assert [c.prob for c in r.top] == sorted((c.prob for c in r.top), reverse=True)
        # p_target is the target's share of the softmax: it is in the top-k exactly when large enough
        if any(c.id == r.target_id for c in r.top):
            assert math.isclose(next(c.prob for c in r.top if c.id == r.target_id), r.p_target, rel_tol=1e-6)
    assert accuracy(rows) == sum(bool(r.correct) for r in rows[:-1]) / (len(rows) - 1)


def test_teacher_forced_leaves_training_mode_as_it_was(fresh_tiny):
    fresh_tiny.model.train()
    teacher_forced(fresh_tiny.model, fresh_tiny.tokenizer, _ids(fresh_tiny))
    assert fresh_tiny.model.training
