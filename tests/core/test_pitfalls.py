"""The lessons' computed pitfalls on the tiny tokenizers, exactly: the template found or not,
the removed collator's labels, templates as special tokens, a masked eos, chat-template masks."""

from __future__ import annotations

import pytest

from inspector.core.data.chat_format import ARTICLE_EXAMPLES, add_special_tokens
from inspector.core.data.examples import article_examples, format_examples
from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.labels.strategies import label_example
from inspector.core.lessons.demo_report import resize_lines, special_tokens_text
from inspector.core.lessons.pitfalls import (
    eos_masked,
    eos_masked_labels,
    find_sublist,
    old_collator_labels,
    old_collator_view,
    pad_eos_collators,
    resize_check,
    special_tokens_view,
    template_candidates,
    template_pitfall,
)

M = IGNORE_INDEX


def fmt(lm, text=ARTICLE_EXAMPLES[0]):
    return add_special_tokens(text, lm.tokenizer.bos_token, lm.tokenizer.eos_token)


def ids(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_find_sublist():
    assert find_sublist([1, 2, 3, 2, 3], [2, 3]) == 1
    assert find_sublist([1, 2, 3], [3, 1]) is None
    assert find_sublist([1, 2], []) is None


def test_template_candidates_are_pieces_of_the_marker():
    assert template_candidates("\n\n### Assistant:") == [
        "\n\n### Assistant:",
        "\n### Assistant:",
        "### Assistant:",
        "Assistant:",
    ]
    assert template_candidates("<|assistant|>") == ["<|assistant|>"]


def test_the_template_pitfall_is_found_live_on_the_tiny_tokenizer(tiny):
    fes = format_examples(article_examples(), tiny.tokenizer)
    pitfall = template_pitfall(tiny.tokenizer, fes)
    found = {c.template: c.found for c in pitfall.checks}
    # Byte-level BPE keeps "?" and the newlines apart, so the whole marker is found...
    assert found == {"\n\n### Assistant:": True, "\n### Assistant:": True, "### Assistant:": True, "Assistant:": False}
    whole = pitfall.checks[0]
    assert whole.found_at == 15 and whole.found_in == 5 and whole.examples == 5
    # ...but "Assistant:" alone is not " Assistant:" in context: the classic pitfall.
    bad = pitfall.failing
    assert bad is not None and bad.template == "Assistant:"
    assert [r.id for r in bad.alone] == ids(tiny, "Assistant:")
    assert [r.text for r in bad.alone] == ["As", "sistan", "t", ":"]
    assert bad.found_in == 0
    assert [bad.context[p].text for p in bad.span] == ["␣Assistant", ":"]
    assert list(bad.fixed_ids) == ids(tiny, " Assistant:")
    assert bad.fixed_found_in == 5
    assert bad.old_trained == 0  # not found: the old collator trains nothing
    assert bad.old_trained_fixed == 3  # found: <s>, " perro" and "</s>" after it


def test_old_collator_labels_step_by_step():
    # response template 9 at 2 and 6, instruction template 7 at 4: two exchanges.
    ids = [1, 5, 9, 3, 7, 5, 9, 4, 8]
    labels, warnings = old_collator_labels(ids, [9], [7])
    assert labels == [M, M, M, 3, M, M, M, 4, 8] and warnings == []
    # No instruction template: everything through the last response template is masked.
    assert old_collator_labels(ids, [9])[0] == [M] * 7 + [4, 8]
    # A template that is not there: every label -100, and the collator's warning.
    labels, warnings = old_collator_labels(ids, [6, 6])
    assert labels == [M] * 9 and "Could not find response key" in warnings[0]
    # The pad id is masked first, as DataCollatorForLanguageModeling did.
    assert old_collator_labels([9, 3, 0], [9], pad_id=0)[0] == [M, 3, M]


def test_the_old_collator_masks_the_final_eos(tiny):
    view = old_collator_view(tiny.tokenizer, fmt(tiny))
    perro = ids(tiny, " perro")
    assert view.mask.labels == [M] * 21 + perro + [tiny.tokenizer.eos_token_id]
    assert view.old.labels == [M] * 21 + perro + [M]  # eos was the instruction template
    assert view.bos_positions == (20,) and view.warnings == ()


def test_a_prepended_bos_also_matches_the_response_template(tiny_bos):
    view = old_collator_view(tiny_bos.tokenizer, fmt(tiny_bos))
    assert view.bos_positions[0] == 0
    # Templates paired wrongly: the prompt is trained, and so is the final eos.
    assert view.old.labels[0] == M and view.old.labels[1:] == view.old.input_ids[1:]


def test_templates_as_special_tokens_shorten_the_labels(tiny):
    view = special_tokens_view(tiny.tokenizer, fmt(tiny))
    n = len(tiny.tokenizer)
    assert view.added == (("\n\n### Human:", n), ("\n\n### Assistant:", n + 1))
    assert (view.vocab_before, view.vocab_after) == (n, n + 2)
    assert len(view.before.rows) == 23 and len(view.after.rows) == 15
    assert view.after.labels == [M] * 13 + ids(tiny, " perro") + [tiny.tokenizer.eos_token_id]
    assert view.after.rows[0].text == "↵↵###␣Human:" and view.after.rows[0].special
    assert len(tiny.tokenizer) == n  # the app's tokenizer is left alone


def test_eos_masked_labels(tiny):
    lab = label_example("mask", fmt(tiny), tiny.tokenizer)
    eos = tiny.tokenizer.eos_token_id
    masked = eos_masked_labels(lab.labels, lab.input_ids, eos)
    assert masked == lab.labels[:-1] + [M]
    assert eos_masked(lab, tiny.tokenizer).labels == masked
    assert eos_masked(lab, tiny.tokenizer).trained_tokens == 1


def test_pad_equal_to_eos_masks_the_eos_in_transformers_collator_not_in_trl_s(tiny):
    from inspector.core.lessons.demos import TWO_TURNS

    tok = tiny.tokenizer
    lab = label_example("copy", fmt(tiny), tok)
    longer = label_example("copy", fmt(tiny, ARTICLE_EXAMPLES[0] + TWO_TURNS), tok)
    hf, trl = pad_eos_collators(tok, lab.input_ids, longer.input_ids)
    pads = len(longer.input_ids) - len(lab.input_ids)
    assert hf.name.startswith("transformers'") and trl.name.startswith("TRL's")
    assert hf.eos_at == trl.eos_at == len(lab.input_ids) - 1 and hf.pads == trl.pads == pads
    assert hf.labels == lab.input_ids[:-1] + [M] * (1 + pads)  # every pad id masked: the eos with them
    assert trl.labels == lab.input_ids + [M] * pads  # -100 by length: the eos kept
    assert not hf.eos_trained and trl.eos_trained
    assert tok.pad_token == "<pad>"  # a copy was changed, not the tokenizer in use
    with pytest.raises(ValueError, match="must be longer"):
        pad_eos_collators(tok, longer.input_ids, lab.input_ids)


def test_chat_template_masks_with_and_without_markers(fresh_tiny):
    tiny = fresh_tiny  # a tokenizer of its own: other tests may give the shared one a chat template
    from inspector.core.lessons.chat_templates import (
        chat_template_view,
        conversation,
        generation_template,
        without_markers,
    )
    from inspector.core.lessons.demos import TWO_TURNS

    assert "{% generation %}" in generation_template()
    assert "{% generation %}" not in without_markers(generation_template())
    assert "{% endgeneration %}" not in without_markers(generation_template())
    messages = conversation(TWO_TURNS)
    assert messages == [
        {"role": "user", "content": 'How do you say "dog" in Spanish?'},
        {"role": "assistant", "content": "perro"},
        {"role": "user", "content": 'And "water"?'},
        {"role": "assistant", "content": "agua"},
    ]
    view = chat_template_view(tiny.tokenizer, messages)
    assert not view.model_template
    assert view.rendered.startswith("<s><start_of_turn>user\nHow do you say")
    trained = tiny.tokenizer.decode([r.id for r in view.rows if not r.masked])
    assert trained == "perro<end_of_turn>agua<end_of_turn>"  # both answers, each with its end of turn
    assert view.trained == sum(1 for r in view.rows if not r.masked) > 0
    assert view.unmarked_trained == 0 and view.unmarked_tokens == len(view.rows)


def test_trl_assistant_only_loss_needs_the_markers(fresh_tiny):
    tiny = fresh_tiny
    from inspector.core.lessons.chat_templates import (
        chat_template_view,
        conversation,
        generation_template,
        trl_assistant_only,
        without_markers,
    )
    from inspector.core.lessons.demos import TWO_TURNS

    messages = conversation(TWO_TURNS)
    tiny.model.config.use_cache = True  # a fresh model's default
    marked = trl_assistant_only(tiny.model, tiny.tokenizer, messages, generation_template())
    view = chat_template_view(tiny.tokenizer, messages)
    assert marked.error is None
    assert [x for x in marked.labels if x != M] == [r.id for r in view.rows if not r.masked]
    bare = trl_assistant_only(tiny.model, tiny.tokenizer, messages, without_markers(generation_template()))
    assert bare.labels is None and "generation" in bare.error
    assert "forward" not in vars(tiny.model)  # TRL's patch undone
    assert tiny.model.config.use_cache is True  # and the cache Trainer.__init__ turned off
    assert tiny.tokenizer.chat_template is None


def test_a_refused_trl_trainer_leaves_the_trainers_already_made_working(fresh_tiny):
    """TRL's refusal (lesson 6's bare template) came after its SFTConfig reset accelerate's shared
    state, and nothing set it up again: the next burst of a trained strategy failed with
    AttributeError (`AcceleratorState` object has no attribute `distributed_type`)."""
    import copy

    from inspector.core.lessons.chat_templates import (
        conversation,
        generation_template,
        trl_assistant_only,
        without_markers,
    )
    from inspector.core.lessons.demos import TWO_TURNS
    from inspector.core.training.burst import BurstSettings
    from inspector.core.training.session import TrainingSession

    tiny = fresh_tiny
    examples = format_examples(article_examples(), tiny.tokenizer)
    session = TrainingSession(copy.deepcopy(tiny.model), tiny.tokenizer, examples, "copy", BurstSettings(epochs=1))
    session.run(1)
    bare = trl_assistant_only(tiny.model, tiny.tokenizer, conversation(TWO_TURNS), without_markers(generation_template()))
    assert bare.error is not None  # refused, as lesson 6 shows
    more = session.run(1)
    assert session.epochs_done == 2 and not more.stopped


def test_a_text_without_an_assistant_turn_is_no_conversation():
    from inspector.core.errors import InspectorError
    from inspector.core.lessons.chat_templates import conversation

    with pytest.raises(InspectorError, match="no assistant turn"):
        conversation("\n\n### Human: hello")


def test_resized_rows_start_at_the_mean_of_the_old_rows(tiny):
    """transformers' mean_resizing (the default): the new rows are the old rows' mean, give or take
    a noise of 1e-9 times their covariance; with mean_resizing=False they start at random. The
    model in use is left alone."""
    import torch

    before = tiny.model.get_input_embeddings().weight.detach().clone()
    view = special_tokens_view(tiny.tokenizer, fmt(tiny), model=tiny.model)
    r = view.resize
    assert (r.rows_before, r.rows_after, r.added, r.tied) == (354, 356, 2, True)
    assert r.mean_distance < 1e-4 * r.spread and r.mean_cosine > 0.999999 and r.at_mean
    assert r.random_distance > 0.5 * r.spread and r.random_cosine < 0.9
    assert torch.equal(tiny.model.get_input_embeddings().weight, before)  # resized a copy
    assert special_tokens_view(tiny.tokenizer, fmt(tiny), model=tiny.model).resize == r  # seeded: the same rows
    text = special_tokens_text(view)
    assert "model.resize_token_embeddings(356): embedding rows 354 → 356; the LM head is tied to it" in text
    assert "the new rows start at the average token (mean_resizing=True, the default)" in text


def test_a_resize_that_adds_no_row_says_so(tiny):
    r = resize_check(tiny.model, 354)
    assert (r.added, r.at_mean) == (0, False)
    assert resize_lines(r, 354) == [
        "  model.resize_token_embeddings(354): the embedding already has 354 rows: it adds none;"
        " the LM head is tied to it: the same rows"
    ]
    assert "it REMOVES 4 of them" in resize_lines(resize_check(tiny.model, 350), 350)[0]


def test_where_trl_starts_the_completion_at_each_split(tiny):
    """TRL's common_prefix_length on the tiny byte-level tokenizer: a prompt that ends with the
    marker's space is not a prefix (" " alone vs " perro"); the other splits are."""
    from inspector.core.lessons.split_point import split_points, split_text

    v = split_points(tiny.tokenizer, fmt(tiny))
    assert v.trl_function and v.trl_version
    by_name = {c.name: c for c in v.checks}
    assert list(by_name) == [
        "after the bos that follows the marker (lesson 5)",
        "after the marker",
        "after the marker and its space",
        "before the marker (it goes in the completion)",
        "between the marker's newlines",
    ]
    lesson5 = by_name["after the bos that follows the marker (lesson 5)"]
    assert lesson5.is_prefix and [r.text for r in lesson5.trained] == ["␣perro", "</s>"]
    space = by_name["after the marker and its space"]
    assert space.prompt.endswith("Assistant: ") and space.completion == "perro</s>"
    assert not space.is_prefix and [r.text for r in space.left_out] == ["␣"]
    assert space.start == len(space.prompt_rows) - 1 and [r.text for r in space.trained] == ["␣perro", "</s>"]
    assert v.merging == (space,)
    before = by_name["before the marker (it goes in the completion)"]
    assert before.is_prefix and [r.text for r in before.trained][:3] == ["↵", "↵", "###"]
    text = split_text(v)
    assert "✗ not a prefix: at token 20 the prompt alone has ␣, the whole ␣perro" in text
    assert "1 of 5 splits merges tokens across the boundary" in text


def test_where_nothing_merges_the_split_text_says_so(tiny):
    from inspector.core.lessons.split_point import SplitPoints, split_points, split_text

    v = split_points(tiny.tokenizer, fmt(tiny))
    kept = SplitPoints(tuple(c for c in v.checks if c.is_prefix), v.trl_version, v.trl_function)
    assert split_text(kept).endswith("Nothing merges across any of the 4 splits on this tokenizer: TRL would not warn.")
