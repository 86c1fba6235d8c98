"""TRL's `SFTTrainer` with completion-only loss, today's API.

The article used `DataCollatorForCompletionOnlyLM`, which TRL removed in 0.20. Today a
prompt/completion dataset and `SFTConfig(completion_only_loss=True)` do the same job: TRL
tokenizes prompt and prompt+completion and trains only the completion's tokens. The labels
shown for the `trl` strategy are read from the trainer's own prepared dataset and collator.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.errors import InspectorError


@contextmanager
def accelerate_state_kept() -> Iterator[None]:
    """Put accelerate's process-wide state back if a trainer refused meanwhile left it reset.

    Making `TrainingArguments` (an `SFTConfig` too) resets accelerate's shared
    `AcceleratorState`; the `Trainer` made next sets it up again. When that Trainer is
    refused (TRL with a chat template that has no generation markers, a text it cannot
    use), the state stays reset, and every trainer already made fails at its next step
    (AttributeError: `AcceleratorState` object has no attribute `distributed_type`).
    """
    from accelerate.state import AcceleratorState, PartialState

    saved = dict(AcceleratorState._shared_state), dict(PartialState._shared_state)
    try:
        yield
    finally:
        for state, before in zip((AcceleratorState, PartialState), saved):
            if before and not state._shared_state:
                state._shared_state.update(before)


def trainer_arguments(
    output_dir: str,
    *,
    epochs: float,
    learning_rate: float,
    seed: int,
    device: str,
    optim: str | None = None,
    batch_size: int = 1,
    torch_compile: bool = False,
) -> dict:
    """Arguments shared by the HF Trainer and TRL's SFTTrainer.

    A constant schedule, because a burst that continues calls `train()` again and a
    decaying schedule would restart; no checkpoints, no reports, no progress bars, nothing
    written outside `output_dir` (a temporary folder).
    """
    extra = {"optim": optim} if optim else {}
    return dict(
        **extra,
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        torch_compile=torch_compile,
        gradient_accumulation_steps=1,
        learning_rate=learning_rate,
        num_train_epochs=epochs,
        lr_scheduler_type="constant",
        warmup_steps=0,
        seed=seed,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=False,
        fp16=False,
        activation_checkpointing=False,
        dataloader_num_workers=0,
    )


def prompt_completion_dataset(examples: Sequence[FormattedExample]) -> Any:
    """TRL's prompt/completion format: the prompt ends with the last `bos`.

    Conversations rendered by a chat template go to TRL as conversations instead
    (`messages`), as a user of TRL would pass them.
    """
    from datasets import Dataset

    if is_conversational(examples):
        columns: dict[str, list[Any]]
        if policy_rows(examples):  # a turn policy: each row's trained turn is its completion
            columns = {
                "prompt": [list(fe.messages or ())[: fe.completion_from] for fe in examples],
                "completion": [
                    list(fe.messages or ())[fe.completion_from : (fe.completion_from or 0) + 1] for fe in examples
                ],
            }
        else:
            columns = {"messages": [list(fe.messages or ()) for fe in examples]}
        if any(fe.tools for fe in examples):  # TRL reads a "tools" column, JSON text as well as lists
            import json

            columns["tools"] = [json.dumps(list(fe.tools)) if fe.tools else None for fe in examples]
        return Dataset.from_dict(columns)
    return Dataset.from_dict(
        {"prompt": [fe.prompt for fe in examples], "completion": [fe.completion for fe in examples]}
    )


def policy_rows(examples: Sequence[FormattedExample]) -> bool:
    """Rows a turn policy (last, final, split) made: TRL trains them as conversational
    prompt/completion, the completion being the one trained turn (`labels.turn_context`)."""
    marked = {fe.completion_from is not None for fe in examples}
    if len(marked) > 1:
        raise InspectorError(
            "some rows have one trained turn and others all of theirs", "use one --turn-policy for the whole run"
        )
    return marked == {True}


def is_conversational(examples: Sequence[FormattedExample]) -> bool:
    kinds = {fe.kind for fe in examples}
    if len(kinds) > 1:
        raise InspectorError(
            "the examples mix chat-template conversations and article-format texts",
            "give one kind of row per dataset",
        )
    return kinds == {"chat"}


def make_sft_trainer(
    model: Any,
    tokenizer: Any,
    examples: Sequence[FormattedExample],
    *,
    output_dir: str,
    epochs: float = 1,
    learning_rate: float = 2e-5,
    seed: int = 1,
    device: str = "cpu",
    callbacks: list | None = None,
    optim: str | None = None,
    batch_size: int = 1,
    torch_compile: bool = False,
    peft_config: Any = None,
) -> Any:
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from inspector.core.quiet import quiet_libraries

    quiet_libraries()

    conversational = is_conversational(examples)
    extra: dict[str, Any] = {}
    no_markers = InspectorError(
        "TRL's assistant_only_loss found no assistant tokens: the chat template has no "
        "{% generation %} ... {% endgeneration %} markers around the assistant's turns",
        "pass --chat-template FILE with a template that marks them, or the NAME of one TRL ships "
        "(`causallm-inspect templates`); the mask strategy works without",
    )
    if conversational:
        from inspector.core.data.conversations import has_generation_markers
        from inspector.core.data.trl_templates import training_variant

        if policy_rows(examples):
            # prompt/completion rows: the completion is trained from the split point, no markers needed
            template_file = Path(output_dir) / "chat_template.jinja"
            template_file.write_text(examples[0].chat_template or "", encoding="utf-8")
            extra = {"completion_only_loss": True, "chat_template_path": str(template_file)}
        elif not has_generation_markers(examples[0].chat_template):
            # said before TRL is asked: it would refuse the same way
            offer = training_variant(tokenizer, examples[0].chat_template or "")
            if offer:
                raise InspectorError(
                    no_markers.problem,
                    f"pass --chat-template {offer}: TRL's training variant of this template, with the markers "
                    "(get_training_chat_template); the mask strategy works without",
                )
            raise no_markers
        else:
            # TRL's loss on assistant turns only, from the template's {% generation %} markers.
            template_file = Path(output_dir) / "chat_template.jinja"
            template_file.write_text(examples[0].chat_template or "", encoding="utf-8")
            extra = {"assistant_only_loss": True, "chat_template_path": str(template_file)}
    else:
        extra = {"completion_only_loss": True}
    with accelerate_state_kept():  # a refused SFTTrainer leaves it reset
        config = SFTConfig(
            **trainer_arguments(
                output_dir,
                epochs=epochs,
                learning_rate=learning_rate,
                seed=seed,
                device=device,
                optim=optim,
                batch_size=batch_size,
                torch_compile=torch_compile,
            ),
            **extra,
            max_length=None,  # the context check is ours; TRL would truncate silently at 1024
            packing=False,
            dataset_num_proc=None,
        )
        # TRL installs chat_template_path on the tokenizer it is given: keep the caller's as it was.
        own_template = getattr(tokenizer, "chat_template", None)
        try:
            trainer = SFTTrainer(
                model=model,
                args=config,
                train_dataset=prompt_completion_dataset(examples),
                processing_class=tokenizer,
                callbacks=callbacks,
                peft_config=peft_config,
            )
        except (RuntimeError, ValueError) as exc:
            if conversational and ("assistant" in str(exc) or "generation" in str(exc)):
                raise no_markers from exc
            raise
        finally:
            if conversational:
                tokenizer.chat_template = own_template
    trainer.remove_callback(PrinterCallback)
    return trainer


@contextmanager
def model_kept(model: Any) -> Iterator[None]:
    """Undo what making an SFTTrainer does to a model that is not trained: TRL's patch of
    `model.forward` (a closure over this very model, which a later `copy.deepcopy` would still
    run) and the `config.use_cache = False` that `Trainer.__init__` sets (the model's plain
    calls go on with their own default: lesson 11 reads it)."""
    patched_before = "forward" in vars(model)
    config = getattr(model, "config", None)
    own_use_cache = getattr(config, "use_cache", None)
    try:
        yield
    finally:
        if not patched_before:
            vars(model).pop("forward", None)
        if config is not None and own_use_cache is not None:
            config.use_cache = own_use_cache


def trl_dataset_rows(model: Any, tokenizer: Any, examples: Sequence[FormattedExample]) -> list[tuple[list, list]]:
    """(input_ids, labels) of each example exactly as TRL's collator hands them to the model.

    Making an SFTTrainer patches `model.forward` with TRL's fused LM head, a closure over
    this very model: a `copy.deepcopy` of the model made later would still run the
    original's forward and never train. Only the labels are wanted here, so the patch is
    undone, and the model's own use_cache put back (`model_kept`).
    """
    with model_kept(model), tempfile.TemporaryDirectory(prefix="causallm-inspect-") as tmp:
        trainer = make_sft_trainer(model, tokenizer, examples, output_dir=tmp)
        rows = []
        for i in range(len(examples)):
            batch = trainer.data_collator([trainer.train_dataset[i]])
            rows.append((batch["input_ids"][0].tolist(), batch["labels"][0].tolist()))
        return rows
