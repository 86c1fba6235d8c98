"""The batch view on the tiny model: the same micro-batches as an SFTTrainer built independently,
the weights of a step, ranks, what truncation and packing drop, bad input, and the attention check."""

from __future__ import annotations

import math
import tempfile
from contextlib import contextmanager

import pytest

from inspector.core.batches import setup as batch_setup
from inspector.core.batches.attention import check_attention
from inspector.core.batches.steps import inspect_step
from inspector.core.batches.token_weights import step_sums
from inspector.core.batches.trainer import sft_trainer
from inspector.core.data.chat_format import article_text
from inspector.core.data.examples import Example, format_examples
from inspector.core.errors import InspectorError
from inspector.core.labels.trl_bridge import accelerate_state_kept, prompt_completion_dataset

# Answers of different lengths, so micro-batches train different numbers of tokens.
PAIRS = [
    ("dog", "perro"),
    ("water", "agua agua agua"),
    ("hello", "hola"),
    ("tree", "árbol árbol árbol árbol árbol"),
    ("mother", "madre"),
    ("good", "bueno bueno"),
    ("cat", "gato gato gato gato"),
    ("dog", "perro perro perro perro perro perro"),
    ("water", "agua"),
    ("hello", "hola hola hola"),
]
ROWS = [3 * i + 7 for i in range(len(PAIRS))]  # row numbers as a data file would have them


def formatted(lm):
    examples = [Example(article_text(w, a), row) for (w, a), row in zip(PAIRS, ROWS)]
    return format_examples(examples, lm.tokenizer)


@contextmanager
def view_trainer(lm, **flags):
    with tempfile.TemporaryDirectory() as tmp:
        s = batch_setup.examples_setup(formatted(lm), ROWS, "test rows", flags, output_dir=tmp, device="cpu")
        with sft_trainer(lm.model, lm.tokenizer, s) as trainer:
            yield trainer, s


def reference_batches(lm, **flags):
    """Every micro-batch of the first epoch from an SFTTrainer made here, TRL's way, without the batch view."""
    from trl import SFTConfig, SFTTrainer

    use_cache = lm.model.config.use_cache
    with tempfile.TemporaryDirectory() as tmp, accelerate_state_kept():
        config = SFTConfig(
            output_dir=tmp, report_to="none", bf16=False, use_cpu=True, activation_checkpointing=False, **flags
        )
        trainer = SFTTrainer(
            model=lm.model, args=config, train_dataset=prompt_completion_dataset(formatted(lm)), processing_class=lm.tokenizer
        )
        try:
            batches = [
                {k: v.tolist() for k, v in b.items() if k in ("input_ids", "labels", "position_ids")}
                for b in trainer.get_train_dataloader()
            ]
        finally:
            vars(lm.model).pop("forward", None)
            lm.model.config.use_cache = use_cache
    return batches


def as_lists(mb):
    return {k: v for k, v in {"input_ids": mb.rows_of("input_ids"), "labels": mb.rows_of("labels"), "position_ids": mb.rows_of("position_ids")}.items() if v is not None}


CONFIGS = [
    dict(packing=True, max_length=60, per_device_train_batch_size=2, gradient_accumulation_steps=2),
    dict(packing=True, packing_strategy="wrapped", max_length=40, per_device_train_batch_size=2),
    dict(packing=True, packing_strategy="bfd_split", max_length=30, per_device_train_batch_size=1, gradient_accumulation_steps=3),
    dict(max_length=26, per_device_train_batch_size=3, gradient_accumulation_steps=2, seed=7),
    dict(per_device_train_batch_size=4, train_sampling_strategy="sequential"),
]


@pytest.mark.parametrize("flags", CONFIGS, ids=["bfd", "wrapped", "bfd_split", "truncation", "sequential"])
def test_every_step_equals_an_independent_sft_trainers_data_loader(tiny, flags):
    expected = reference_batches(tiny, **flags)
    accumulation = flags.get("gradient_accumulation_steps", 1)
    steps = math.ceil(len(expected) / accumulation)
    got = []
    with view_trainer(tiny, **flags) as (trainer, s):
        for step in range(1, steps + 1):
            view = inspect_step(trainer, s, step=step)
            assert [mb.micro_step for mb in view.micro_batches] == list(range(len(view.micro_batches)))
            got += [as_lists(mb) for mb in view.micro_batches]
            assert step_sums(view)["trainer"] == pytest.approx(1.0)
        with pytest.raises(InspectorError, match=f"past the end of the epoch: it has {steps} optimizer steps"):
            inspect_step(trainer, s, step=steps + 1)
    assert got == expected


def test_the_trainer_weighs_every_trained_token_one_over_n(tiny):
    with view_trainer(tiny, per_device_train_batch_size=1, gradient_accumulation_steps=3) as (trainer, s):
        view = inspect_step(trainer, s, step=1)
    counts = [sum(map(sum, mb.trained)) for mb in view.micro_batches]
    assert len(set(counts)) > 1  # the answers differ in length
    n = sum(counts)
    assert view.num_items_in_batch == n
    for mb, c in zip(view.micro_batches, counts):
        for b, row in enumerate(mb.trained):
            for t, on in enumerate(row):
                assert mb.weights["trainer"][b][t] == (pytest.approx(1 / n) if on else 0.0)
                assert mb.weights["per_micro_batch"][b][t] == (pytest.approx(1 / (c * 3)) if on else 0.0)
    sums = step_sums(view)
    assert sums == pytest.approx({"trainer": 1.0, "per_micro_batch": 1.0, "per_sequence": 1.0})
    # the pre-fix mean favours the micro-batch with fewer trained tokens; per example the totals differ too
    by_scheme = [(e.weights["trainer"], e.weights["per_micro_batch"]) for e in view.examples]
    assert any(t != pytest.approx(m) for t, m in by_scheme)
    fewest = min(range(3), key=counts.__getitem__)
    row = view.micro_batches[fewest].segments[0][0].row
    example = next(e for e in view.examples if e.row == row)
    assert example.weights["per_micro_batch"] > example.weights["trainer"]
    assert {e.row for e in view.examples} <= set(ROWS)


def test_labels_are_explained(tiny):
    with view_trainer(tiny, packing=True, max_length=60, per_device_train_batch_size=2) as (trainer, s):
        view = inspect_step(trainer, s, step=1)
    mb = view.micro_batches[0]
    assert mb.rows_of("attention_mask") is None and mb.rows_of("position_ids") is not None  # bfd: padding-free
    reasons = {r for row in mb.reasons for r in row}
    assert reasons <= {None, "prompt", "pack boundary"}
    for b, row in enumerate(mb.segments):
        for seg in row:
            assert seg.attends_from == seg.start  # block-causal in the trainer's forward
            assert mb.reasons[b][seg.start] is not None  # a segment's first token is never a target
            assert mb.rows_of("position_ids")[b][seg.start] == 0
            assert seg.row in ROWS


def test_two_ranks_get_what_accelerate_shards(tiny):
    flags = dict(per_device_train_batch_size=2, gradient_accumulation_steps=2)
    expected = reference_batches(tiny, **flags)  # 5 global batches of 2
    with view_trainer(tiny, **flags) as (trainer, s):
        view = inspect_step(trainer, s, step=1, world_size=2)
        assert view.steps_per_epoch == 2  # 3 micro-batches per rank (the last one padded from the start)
        last = inspect_step(trainer, s, step=2, world_size=2)
    got = {(mb.rank, mb.micro_step): as_lists(mb) for mb in view.micro_batches}
    # BatchSamplerShard without split_batches: rank r gets global batches r, r + 2, r + 4, ...
    for (rank, m), batch in got.items():
        assert batch == expected[2 * m + rank]
    assert [(mb.rank, mb.micro_step) for mb in view.micro_batches] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert view.num_items_in_batch == sum(view.items_per_rank) and len(view.items_per_rank) == 2
    assert step_sums(view)["trainer"] == pytest.approx(1.0)
    assert step_sums(last)["trainer"] == pytest.approx(1.0)
    assert as_lists(last.micro_batches[0]) == expected[4]  # rank 0's third micro-batch
    assert as_lists(last.micro_batches[1]) == expected[0]  # rank 1's: even_batches starts the epoch again


def test_truncation_drops_the_tail_of_long_rows(tiny):
    with view_trainer(tiny, max_length=24, per_device_train_batch_size=2, train_sampling_strategy="sequential") as (trainer, s):
        view = inspect_step(trainer, s, step=1)
        full = {i: list(trainer.train_dataset[i]["input_ids"]) for i in range(2)}
    mb = view.micro_batches[0]
    assert [len(r) for r in mb.rows_of("input_ids")] == [24, 24] or max(len(r) for r in mb.rows_of("input_ids")) == 24
    dropped = {d.row: d for d in mb.dropped}
    assert ROWS[1] in dropped  # "agua agua agua" does not fit in 24 tokens
    d = dropped[ROWS[1]]
    assert d.start == 24 and len(d.tokens) == d.end - d.start > 0
    assert full[1] == mb.rows_of("input_ids")[1][: len(full[1])]
    assert view.dropped_summary["rows_truncated"] >= 1 and view.dropped_summary["tokens_truncated"] >= len(d.tokens)


def test_bfd_drops_overflow_and_bfd_split_keeps_it(tiny):
    with view_trainer(tiny, packing=True, max_length=22, per_device_train_batch_size=1) as (trainer, s):
        view = inspect_step(trainer, s, step=1)
    assert view.dropped_summary["rows_truncated"] > 0
    with view_trainer(tiny, packing=True, packing_strategy="bfd_split", max_length=22, per_device_train_batch_size=1) as (trainer, s):
        split = inspect_step(trainer, s, step=1)
    assert split.dropped_summary["tokens_truncated"] == 0 and not any(mb.dropped for mb in split.micro_batches)


def test_a_row_whose_prompt_fills_max_length_is_dropped_whole(tiny):
    with view_trainer(tiny, max_length=21, per_device_train_batch_size=1) as (trainer, s):
        with pytest.raises(InspectorError, match="larger than the dataset|no sequence"):
            inspect_step(trainer, s, step=1)  # every answer starts past 21 tokens: TRL keeps no row
    with view_trainer(tiny, max_length=22, per_device_train_batch_size=1) as (trainer, s):
        view = inspect_step(trainer, s, step=1)
    assert view.dropped_summary["rows_dropped"] == 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (dict(packing=True, packing_strategy="greedy"), "packing strategy 'greedy' does not exist"),
        (dict(max_length=0), "max_length 0 is not a length"),
        (dict(gradient_accumulation_steps=0), "gradient_accumulation_steps 0 must be"),
        (dict(per_device_train_batch_size=11), "per_device_train_batch_size 11 is larger than the dataset"),
        (dict(padding_free=True, max_length=50), "SFTTrainer refuses this setup: When `padding_free=True`"),
    ],
)
def test_bad_input_is_one_named_problem(tiny, flags, message):
    with pytest.raises(InspectorError, match=message.replace("(", r"\(").replace("`", ".")):
        with view_trainer(tiny, **flags) as (trainer, s):
            inspect_step(trainer, s, step=1)


def test_the_model_is_left_as_it_was(tiny):
    before = tiny.model.config.use_cache
    with view_trainer(tiny, packing=True, max_length=60) as (trainer, s):
        assert "forward" in vars(tiny.model)  # TRL's fused head, while the trainer exists
        assert tiny.model.config.use_cache is False  # Trainer.__init__ sets it to args.use_cache
        inspect_step(trainer, s, step=1)
    assert "forward" not in vars(tiny.model) and tiny.model.config.use_cache == before


def test_attention_check_separates_bfd_from_wrapped(tiny):
    """On the tiny model p(next token) is near uniform (400 tokens, random weights), so the differences are
    small: a segment that sees another moves p by ~5e-4 here (0.8 on the embedded Gemma), one that does not
    by ~1e-9. Thresholds: 1e-6 and 1e-4."""
    with view_trainer(tiny, packing=True, max_length=80, per_device_train_batch_size=1) as (trainer, s):
        bfd = check_attention(trainer, inspect_step(trainer, s, step=1), "sdpa", model_use_cache=s.model_use_cache)
    assert bfd.max_diff < 1e-6 and bfd.max_diff_plain_call > 1e-4 and bfd.plain_use_cache is True
    later = [s for s in bfd.segments if s.start > 0]
    assert later and all(not s.depends_on for s in bfd.segments) and all(s.depends_on_plain_call for s in later)
    with view_trainer(tiny, packing=True, packing_strategy="wrapped", max_length=80, per_device_train_batch_size=1) as (trainer, s):
        wrapped = check_attention(trainer, inspect_step(trainer, s, step=1), "eager", model_use_cache=s.model_use_cache)
    assert wrapped.max_diff > 1e-4 and wrapped.max_diff_plain_call > 1e-4 and wrapped.implementation == "eager"
    assert any(s.depends_on for s in wrapped.segments)
    data = wrapped.to_dict()
    assert set(data) >= {"max_diff", "max_diff_plain_call", "segments"}
    assert tiny.model.config._attn_implementation == "sdpa"  # put back


def test_lean_tokenizer_hashing_still_sees_every_change_and_is_undone(tiny):
    from datasets.fingerprint import Hasher
    from datasets.utils import _dill

    from inspector.core.batches.trainer import lean_tokenizer_hashing

    tok = tiny.tokenizer
    before = _dill.Pickler.dispatch.get(type(tok))
    with lean_tokenizer_hashing(tok):
        first = Hasher.hash(tok)
        assert Hasher.hash(tok) == first
        tok.chat_template, kept = "{{ messages }}", tok.chat_template
        try:
            assert Hasher.hash(tok) != first
        finally:
            tok.chat_template = kept
        assert Hasher.hash(tok) == first
    assert _dill.Pickler.dispatch.get(type(tok)) is before


def test_the_flags_and_a_lessons_batch_keys_are_sftconfig_fields():
    import dataclasses

    from trl import SFTConfig

    from inspector.core.lessons.model import BATCH_KEYS

    fields = {f.name for f in dataclasses.fields(SFTConfig)}
    assert set(batch_setup.SFT_FLAGS) <= fields
    assert set(BATCH_KEYS) - {"world_size"} <= set(batch_setup.SFT_FLAGS)


def test_the_setup_travels_beside_the_trainer_and_the_view_is_built_whole(tiny):
    import dataclasses

    with view_trainer(tiny, per_device_train_batch_size=2) as (trainer, s):
        view = inspect_step(trainer, s, step=1)
        assert not [k for k in vars(trainer) if k.startswith("causallm_inspect")]  # nothing of ours on TRL's object
        assert tiny.model.config.use_cache is False  # the Trainer's, while it lives
    assert s.model_use_cache is True and tiny.model.config.use_cache is True  # the model's own, kept and put back
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.notes = []
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.micro_batches[0].weights = {}
