"""Building TRL's SFTTrainer for a batch setup, and putting back what it changes.

Nothing here re-implements TRL or the Trainer. The `SFTTrainer` is constructed (no training, no
optimizer, nothing written) on the setup's dataset with a row-index column added; its own
`get_train_dataloader()` then gives the micro-batches (`ranks`). Two library patches live here, each
undone on leaving: the tokenizer's lean fingerprint for datasets' cache, and the model, tokenizer
and accelerate state the Trainer changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from inspector.core.batches.setup import ROW_COLUMN, BatchSetup
from inspector.core.errors import InspectorError


@contextmanager
def lean_tokenizer_hashing(tokenizer: Any) -> Iterator[None]:
    """While inside, datasets fingerprints this tokenizer without its `_vocab` and `_merges`.

    TRL's tokenizing `map` passes the tokenizer in `fn_kwargs`, so datasets hashes it to find
    the cached result; transformers 5 keeps the vocabulary and merges in Python beside the
    backend tokenizer, and pickling them takes 6 s for Gemma's 262,144 tokens (1 s without:
    the backend tokenizer, which holds the same vocabulary and merges, is still hashed, as are
    every other attribute). The fingerprint still changes with any change of the tokenizer;
    it only differs from the one a plain TRL run computes, so the two do not share cache files.
    """
    from datasets.utils import _dill

    kind = type(tokenizer)
    had = kind in _dill.Pickler.dispatch
    before = _dill.Pickler.dispatch.get(kind)

    def lean(pickler: Any, obj: Any) -> None:
        held = {k: obj.__dict__.pop(k) for k in ("_vocab", "_merges") if k in obj.__dict__}
        try:
            _dill._save_transformersPreTrainedTokenizerBase(pickler, obj)
        finally:
            obj.__dict__.update(held)

    _dill.Pickler.dispatch[kind] = lean
    try:
        yield
    finally:
        if had:
            _dill.Pickler.dispatch[kind] = before
        else:
            _dill.Pickler.dispatch.pop(kind, None)


@contextmanager
def sft_trainer(model: Any, tokenizer: Any, setup: BatchSetup) -> Iterator[Any]:
    """TRL's SFTTrainer for the setup (its dataset carrying a row-index column), undone afterwards:
    the model's forward (TRL patches in its fused head), the tokenizer's chat template and
    accelerate's shared state are put back as they were.

    What it learns goes on the setup, which the caller passes on (`steps.inspect_step`): the dataset
    with its row-index column, the batch size where a small dataset lowered it, and the model's own
    `use_cache` (`model_use_cache`), which the Trainer turns off while it is alive."""
    from inspector.core.labels.trl_bridge import accelerate_state_kept
    from inspector.core.quiet import quiet_libraries

    quiet_libraries()
    patched_before = "forward" in vars(model)
    own_template = getattr(tokenizer, "chat_template", None)
    config = getattr(model, "config", None)
    own_use_cache = getattr(config, "use_cache", None)  # Trainer.__init__ sets it to args.use_cache (False)
    try:
        with accelerate_state_kept(), lean_tokenizer_hashing(tokenizer):
            trainer = _make(model, tokenizer, setup)
            size = setup.sft.per_device_train_batch_size
            if not setup.batch_size_given and 0 < len(trainer.train_dataset) < size:
                import dataclasses

                # The flags' default batch size, lowered to what a small dataset can fill (said in the notes).
                setup.sft = dataclasses.replace(setup.sft, per_device_train_batch_size=len(trainer.train_dataset))
                setup.lowered_batch_size = size
                if not patched_before:
                    vars(model).pop("forward", None)
                trainer = _make(model, tokenizer, setup)
        setup.model_use_cache = own_use_cache
        with lean_tokenizer_hashing(tokenizer):  # the provenance pass tokenizes once more
            yield trainer
    finally:
        if config is not None and own_use_cache is not None:
            config.use_cache = own_use_cache
        if not patched_before:
            vars(model).pop("forward", None)
        if hasattr(tokenizer, "chat_template"):
            tokenizer.chat_template = own_template


def _make(model: Any, tokenizer: Any, setup: BatchSetup) -> Any:
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    dataset = setup.dataset
    if ROW_COLUMN not in dataset.column_names:
        dataset = dataset.map(lambda _, i: {ROW_COLUMN: i}, with_indices=True)
        setup.dataset = dataset
    if len(dataset) == 0:
        raise InspectorError("the dataset has no rows", "give at least one example")
    try:
        trainer = SFTTrainer(model=model, args=setup.sft, train_dataset=dataset, processing_class=tokenizer)
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        text = str(exc).strip().splitlines()
        if "chat_template is not set" in str(exc):
            raise InspectorError(
                "the dataset is conversational and the model has no chat template (TRL's SFTTrainer needs one)",
                "pass --chat-template NAME (`causallm-inspect templates` lists them) or a .jinja file, or set "
                "chat_template_path in the config",
            ) from exc
        raise InspectorError(f"TRL's SFTTrainer refuses this setup: {text[0] if text else type(exc).__name__}", "change that setting") from exc
    trainer.remove_callback(PrinterCallback)
    return trainer
