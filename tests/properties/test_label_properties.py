"""Properties of the label strategies over generated conversations (hypothesis).

1 to 5 turns, unicode, empty answers, marker-like fragments inside the text: for every
strategy the labels are as long as the input; `mask` trains exactly the assistant answers
plus each closing eos; `trl` trains exactly the last answer plus its eos (TRL's documented
completion-only behaviour: earlier answers are part of the prompt); teacher-forced
predictions equal iterative greedy generation.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.core.data.chat_format import ASSISTANT_MARKER, HUMAN_MARKER, add_special_tokens
from inspector.core.labels.strategies import encode, label_example, label_examples
from inspector.core.training.predictions import iterative_greedy, teacher_forced

# Text that may look like the template without being it.
FRAGMENTS = ["### Human", "### Assistant", "Human:", "\n\n###", "\n", " ", "¿", "ñ", "日本", "🙂", "\t"]
content = st.lists(
    st.one_of(st.text(min_size=0, max_size=12), st.sampled_from(FRAGMENTS), st.text(min_size=80, max_size=300)),
    min_size=0,
    max_size=6,
).map("".join).filter(lambda s: HUMAN_MARKER not in s and ASSISTANT_MARKER not in s and "\r" not in s)


@st.composite
def conversations(draw):
    turns = draw(st.integers(min_value=1, max_value=5))
    parts, answers = [], []
    for _ in range(turns):
        human, answer = draw(content), draw(content)
        # A marker could also form across a turn boundary (a human text ending in "\n\n###"...).
        parts.append(f"{HUMAN_MARKER}{human}{ASSISTANT_MARKER}{answer}")
        answers.append(answer)
    text = "".join(parts)
    if text.count(HUMAN_MARKER) != turns or text.count(ASSISTANT_MARKER) != turns:
        from hypothesis import assume

        assume(False)
    return text, answers


def trained_text(lm, lab):
    # Decoded together: a character may be split over several byte-level tokens.
    return lm.tokenizer.decode([r.id for r in lab.rows if not r.masked])


COMMON = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=40)


@COMMON
@given(conversations())
def test_mask_trains_exactly_each_answer_and_its_eos(tiny, conv):
    text, answers = conv
    tok = tiny.tokenizer
    fe = add_special_tokens(text, tok.bos_token, tok.eos_token)
    copy = label_example("copy", fe, tok)
    mask = label_example("mask", fe, tok)
    assert len(copy.labels) == len(copy.input_ids) == len(mask.labels)
    assert copy.labels == copy.input_ids
    assert trained_text(tiny, mask) == "".join(a + tok.eos_token for a in answers)
    assert all(r.label in (-100, r.id) for r in mask.rows)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=12)
@given(conversations())
def test_trl_trains_exactly_the_last_answer(tiny, conv):
    text, answers = conv
    tok = tiny.tokenizer
    fe = add_special_tokens(text, tok.bos_token, tok.eos_token)
    (trl,) = label_examples("trl", [fe], tok, tiny.model)
    mask = label_example("mask", fe, tok)
    assert trl.input_ids == mask.input_ids
    assert trained_text(tiny, trl) == answers[-1] + tok.eos_token
    # Where they disagree, it is an earlier answer that mask trains and TRL leaves in the prompt.
    last_bos = max(i for i, r in enumerate(mask.rows) if r.id == tok.bos_token_id and r.masked)
    for a, b in zip(trl.rows, mask.rows):
        if a.label != b.label:
            assert a.masked and not b.masked and a.position < last_bos


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=10)
@given(conversations())
def test_teacher_forced_equals_iterative_greedy(tiny, conv):
    text, _ = conv
    fe = add_special_tokens(text, tiny.tokenizer.bos_token, tiny.tokenizer.eos_token)
    ids = encode(fe, tiny.tokenizer)[0][:40]
    rows = teacher_forced(tiny.model, tiny.tokenizer, ids)
    assert [r.predicted_id for r in rows] == iterative_greedy(tiny.model, tiny.tokenizer, ids)
