"""The first lessons' computed views: the shift inside the model, the tokens, the padding, and the
weight of each scored label in the loss."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.labels.strategies import LabeledExample, label_example, make_rows
from inspector.core.lessons.anatomy import loss_weights, padding_view, shift_view, tokenize_view
from inspector.core.lessons.demo_report import loss_weights_text
from inspector.core.lessons.demos import TWO_TURNS


def fmt(lm, text=ARTICLE_EXAMPLES[0]):
    return add_special_tokens(text, lm.tokenizer.bos_token, lm.tokenizer.eos_token)


def test_the_model_shifts_the_labels_itself(tiny):
    lab = label_example("copy", fmt(tiny), tiny.tokenizer)
    view = shift_view(tiny.model, lab)
    assert view.model_loss == pytest.approx(view.shifted_loss, abs=1e-5)
    assert abs(view.twice_loss - view.model_loss) > 1e-3  # shifting by hand too scores other tokens
    assert view.scored == len(lab.rows) - 1
    assert [(p.position, p.reads, p.scored_on) for p in view.pairs[:2]] == [(0, "↵", "↵"), (1, "↵", "###")]
    assert view.pairs[-1].scored_on == "</s>" and len(view.pairs) == len(lab.rows) - 1


def test_the_shift_with_masked_labels_scores_only_the_answer(tiny):
    lab = label_example("mask", fmt(tiny), tiny.tokenizer)
    view = shift_view(tiny.model, lab)
    assert view.scored == 2
    assert view.model_loss == pytest.approx(view.shifted_loss, abs=1e-5)
    assert [p.scored_on for p in view.pairs if p.label != IGNORE_INDEX] == ["␣perro", "</s>"]


def test_tokenize_view(tiny, tiny_bos):
    view = tokenize_view(tiny.tokenizer, fmt(tiny))
    assert view.formatted.endswith("###␣Assistant:<s>␣perro</s>")
    assert view.source.endswith("###␣Assistant:␣perro")
    assert [(s.role, s.text, s.id) for s in view.specials] == [
        ("bos", "<s>", 0),
        ("eos", "</s>", 1),
        ("pad", "<pad>", 2),
    ]
    assert not view.prepends_bos and not view.pad_is_eos and view.padding_side == "right"
    assert tokenize_view(tiny_bos.tokenizer, fmt(tiny_bos)).prepends_bos


def test_right_padding_keeps_the_loss_left_padding_scores_a_pad(tiny):
    from transformers import DataCollatorForSeq2Seq

    short = label_example("copy", fmt(tiny), tiny.tokenizer)
    long = label_example("copy", fmt(tiny, TWO_TURNS), tiny.tokenizer)
    view = padding_view(tiny.model, tiny.tokenizer, short, long)
    assert view.pads == len(long.rows) - len(short.rows) > 0
    assert view.loss_right == pytest.approx(view.loss_alone, abs=1e-5)
    assert view.scored_alone == view.scored_right == len(short.rows) - 1
    assert view.scored_left == view.scored_alone + 1  # the last pad is scored on the first real token
    assert view.loss_left != pytest.approx(view.loss_alone, abs=1e-5)
    # The rows are exactly what the Trainer's collator makes on either side.
    for side, rows in (("right", view.right), ("left", view.left)):
        import copy

        tok = copy.deepcopy(tiny.tokenizer)
        tok.padding_side = side
        batch = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)(
            [{"input_ids": ex.input_ids, "labels": ex.input_ids} for ex in (short, long)]
        )
        assert list(rows[0].ids) == batch["input_ids"][0].tolist()
        assert list(rows[0].attention) == batch["attention_mask"][0].tolist()
        assert list(rows[0].labels) == batch["labels"][0].tolist()


def test_the_loss_is_a_mean_over_the_scored_labels(tiny):
    """22 labels scored under copy, 2 under mask: an answer token weighs 11 times more under mask,
    and the gradient that reaches the answer's logits is 11 times larger, measured."""
    labs = [label_example(s, fmt(tiny), tiny.tokenizer) for s in ("copy", "mask")]
    v = loss_weights(tiny.model, labs)
    assert (v.tokens, v.scored, v.answer) == (23, {"copy": 22, "mask": 2}, (21, 22))
    assert v.weight("copy") == pytest.approx(1 / 22) and v.weight("mask") == 0.5
    assert v.answer_grad["mask"] / v.answer_grad["copy"] == pytest.approx(11.0, rel=1e-4)
    text = loss_weights_text(v)
    assert "under copy: 22 of 23 tokens scored, each weighs 1/22 = 0.0455 of the loss" in text
    assert "under mask:  2 of 23 tokens scored, each weighs 1/2 = 0.5000 of the loss" in text
    assert "an answer token weighs 11.0× more under mask than under copy" in text
    assert text.splitlines()[-1].endswith("(11.0×)")


def test_loss_weights_when_a_labelling_scores_nothing(tiny):
    copy = label_example("copy", fmt(tiny), tiny.tokenizer)
    nothing = LabeledExample("mask", make_rows(tiny.tokenizer, copy.input_ids, [IGNORE_INDEX] * len(copy.rows)))
    v = loss_weights(tiny.model, [copy, nothing])
    assert v.scored["mask"] == 0 and v.weight("mask") == 0.0 and v.answer == ()
    text = loss_weights_text(v)
    assert "under mask:  0 of 23 tokens scored: nothing to weigh" in text and "×" not in text
