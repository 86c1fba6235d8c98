"""Training bursts: a few epochs of one label strategy, observable step by step.

`copy`, `mask` and `custom` (the user's label function) train with the Hugging Face
`Trainer` on our labels; `trl` trains with
TRL's `SFTTrainer` on the prompt/completion dataset. A `TrainingSession` keeps its trainer
(and so its optimizer state) between bursts, so a second `run()` continues where the first
stopped: the schedule is constant so that continuing does not restart a decay, and the
epochs' example order goes on where it stopped, so that bursts of 3 + 3 epochs train
exactly as one of 6.

Between bursts a session holds only its weights: the gradients are dropped and AdamW's two
moments (twice the model's size) wait in a file of the session's temporary folder until
the next `run()` reads them back (`park` / `unpark`).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import (
    ARTICLE_MARKERS,
    FormattedExample,
    TurnMarkers,
    add_special_tokens,
    holdout_text,
)
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import LabelMaker, check_strategy, label_examples, refuse_nothing_to_learn
from inspector.core.training.burst import OPTIMIZERS, BurstResult, BurstSettings, EpochLog, StepLog
from inspector.core.training.hf_trainer import (
    fold_clipping_into_adamw,
    make_callback,
    plain_trainer,
    trained_positions_trainer,
)

if TYPE_CHECKING:
    from inspector.core.models import LoadedModel


def greedy_answer(model: Any, tokenizer: Any, prompt_ids: Sequence[int], max_new_tokens: int = 8) -> str:
    """Greedy continuation of a prompt, special tokens kept so that a learned `eos` shows."""
    import torch
    from transformers import GenerationConfig

    was_training = model.training
    model.eval()
    try:
        ids = torch.tensor([list(prompt_ids)], device=model.device)
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
        return tokenizer.decode(out[0, ids.shape[1] :].tolist())
    finally:
        model.train(was_training)


def holdout_prompt(
    tokenizer: Any, holdout: str, template: TurnMarkers = ARTICLE_MARKERS, model_name: str = "in use"
) -> FormattedExample:
    """The held-out prompt formatted the way training examples are, ending at the answer's `bos`."""
    return add_special_tokens(
        holdout_text(holdout, template),
        tokenizer.bos_token,
        tokenizer.eos_token,
        template,
        final_eos=False,
        model_name=model_name,
    )


class TrainingSession:
    """One strategy training one model on the examples, burst after burst.

    The model is trained in place: pass a copy (`copy.deepcopy`) to keep the original.
    Between bursts the optimizer state is on disk (`parked_optimizer`); `close()` removes it
    and lets go of the trainer.
    """

    OPTIMIZER_FILE = "optimizer-state.pt"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        examples: Sequence[FormattedExample],
        strategy: str,
        settings: BurstSettings = BurstSettings(),
        *,
        device: str = "cpu",
        template: TurnMarkers = ARTICLE_MARKERS,
        max_length: int | None = None,
        custom: LabelMaker | None = None,
    ) -> None:
        check_strategy(strategy, custom)
        if not examples:
            raise InspectorError("there are no examples to train on", "give at least one example")
        self.model = model
        self.tokenizer = tokenizer
        self.examples = list(examples)
        self.strategy = strategy
        self.settings = settings
        self.device = device
        self.prompt = holdout_prompt(tokenizer, settings.holdout, template)
        self.prompt_ids = tokenizer(self.prompt.text)["input_ids"]
        self.labeled = label_examples(strategy, self.examples, tokenizer, model, max_length=max_length, custom=custom)
        # Refused before any step when no example trains a token; those that train none are left out.
        self.total_examples = len(self.examples)
        self.skipped = refuse_nothing_to_learn(strategy, self.labeled, custom.name if custom is not None else None)
        if self.skipped:
            left_out = set(self.skipped)
            keep = [i for i in range(len(self.examples)) if i + 1 not in left_out]
            self.examples = [self.examples[i] for i in keep]
            self.labeled = [self.labeled[i] for i in keep]
        # The label function's version these labels came from: a session whose version is not
        # the loaded function's trained on an earlier version of it (stale). None: a built-in.
        self.label_version: str | None = custom.fingerprint if strategy == "custom" and custom is not None else None
        self.epochs_done = 0.0
        self.steps_done = 0
        self.damaged = False  # an out-of-memory error cut an optimizer step short
        self._trainer: Any = None
        self._tmp = _session_folder()
        self.parked_optimizer: Path | None = None  # the optimizer state's file while no burst runs
        self._epochs_begun = 0  # over all bursts: the next burst's first epoch takes the order after these
        # Texts watched epoch by epoch (text -> token ids) and their teacher-forced rows after
        # each whole epoch (epoch -> text -> rows): one no-grad forward each, outside the step times.
        self.watched: dict[str, list[int]] = {}
        self.epoch_rows: dict[int, dict[str, list[Any]]] = {}

    @classmethod
    def on_a_copy(
        cls,
        loaded: LoadedModel,
        examples: Sequence[FormattedExample],
        strategy: str,
        settings: BurstSettings = BurstSettings(),
        *,
        template: TurnMarkers = ARTICLE_MARKERS,
        custom: LabelMaker | None = None,
    ) -> TrainingSession:
        """A session training a deep copy of a LoadedModel's model, so the original stays untrained."""
        import copy

        return cls(
            copy.deepcopy(loaded.model),
            loaded.tokenizer,
            examples,
            strategy,
            settings,
            device=loaded.device,
            template=template,
            max_length=loaded.max_length,
            custom=custom,
        )

    def is_stale(self, custom: LabelMaker | None) -> bool:
        """Whether this `custom` session trained on another version of the label function than `custom`."""
        return self.strategy == "custom" and (custom is None or custom.fingerprint != self.label_version)

    @property
    def examples_per_step(self) -> int:
        return len(self.examples) if self.settings.batching == "padded" else 1

    def _lora_config(self) -> Any:
        from peft import LoraConfig

        r = self.settings.lora_rank
        return LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")

    # The trainer is made on first use: making an SFTTrainer tokenizes the dataset.
    def _make_trainer(self, callback: Any) -> Any:
        from inspector.core.labels.trl_bridge import make_sft_trainer, trainer_arguments

        s = self.settings
        if not s.train_embeddings:
            # Tied models share this matrix with the LM head: both stay as they are.
            self.model.get_input_embeddings().weight.requires_grad_(False)
        common = dict(
            epochs=s.epochs,
            learning_rate=s.learning_rate,
            seed=s.seed,
            device=self.device,
            optim=OPTIMIZERS[s.optimizer],
            batch_size=self.examples_per_step,
            torch_compile=s.compile,
        )
        if not (s.stock or s.lora):
            from inspector.core.training.tied_head import sum_tied_gradient_in_place

            # One embedding-sized gradient buffer a step instead of three (tied_head.py).
            tied = sum_tied_gradient_in_place(self.model, keep_buffer=not s.compile)
            if tied and self.strategy == "trl" and not s.compile:
                from inspector.core.training.trl_head import keep_weight_gradient_in

                # TRL's fused head writes into the same buffer (trl_head.py).
                head = self.model.get_output_embeddings()
                keep_weight_gradient_in(head.weight, head)
        if self.strategy == "trl":
            trainer = make_sft_trainer(
                self.model,
                self.tokenizer,
                self.examples,
                output_dir=self._tmp,
                callbacks=[callback],
                peft_config=self._lora_config() if s.lora else None,
                **common,
            )
            self.model = trainer.model  # a PeftModel with LoRA
            return self._fast(self._continue_epoch_order(trainer))
        from datasets import Dataset
        from transformers import DataCollatorForSeq2Seq, TrainingArguments
        from transformers.trainer_callback import PrinterCallback

        if s.lora:
            from peft import get_peft_model

            self.model = get_peft_model(self.model, self._lora_config())
        rows = [
            {"input_ids": ex.input_ids, "attention_mask": [1] * len(ex.rows), "labels": ex.labels}
            for ex in self.labeled
        ]
        trainer_cls = trained_positions_trainer() if s.head_trained_only else plain_trainer()
        trainer = trainer_cls(
            model=self.model,
            args=TrainingArguments(**trainer_arguments(self._tmp, **common)),
            train_dataset=Dataset.from_list(rows),
            # Pads only with batching="padded": labels with -100, input_ids on the right.
            data_collator=DataCollatorForSeq2Seq(self.tokenizer, padding=True, label_pad_token_id=-100),
            callbacks=[callback],
        )
        trainer.remove_callback(PrinterCallback)
        return self._fast(self._continue_epoch_order(trainer))

    def _fast(self, trainer: Any) -> Any:
        """The fast path's change to the Trainer itself: clipping inside the fused AdamW step."""
        if not self.settings.stock:
            fold_clipping_into_adamw(trainer)
            if self.strategy == "trl" and not self.settings.lora:
                from inspector.core.training.trl_head import buffered_fused_head

                step = trainer.training_step

                def training_step(*args: Any, **kwargs: Any) -> Any:
                    with buffered_fused_head():
                        return step(*args, **kwargs)

                trainer.training_step = training_step
        return trainer

    def _continue_epoch_order(self, trainer: Any) -> Any:
        """Number the epochs' example orders over the whole session, not per `train()` call.

        The Trainer's sampler (accelerate's SeedableRandomSampler) shuffles epoch e with the
        seed plus e, counting e from 0 at every `train()`: without this a second burst would
        replay the first one's orders, and 3 + 3 epochs would not train as 6 do (nor as a
        prepared 15-epoch run replays). Each burst's sampler starts past the epochs begun.
        """
        make_loader = trainer.get_train_dataloader

        def get_train_dataloader() -> Any:
            loader = make_loader()
            batches = getattr(loader, "batch_sampler", None)
            sampler = getattr(batches, "sampler", None) or getattr(loader, "sampler", None)
            if hasattr(sampler, "initial_seed") and hasattr(sampler, "set_epoch"):
                sampler.initial_seed += self._epochs_begun
            return loader

        trainer.get_train_dataloader = get_train_dataloader
        return trainer

    def park(self) -> None:
        """Hold only the weights until the next burst: drop the gradients, and move the
        optimizer state (AdamW's two moments: twice the trained weights) to a file.

        Where the file cannot be written (a full disk) the state stays in memory.
        """
        if self._trainer is None:
            return
        import torch

        from inspector.core.training.memory import release_memory
        from inspector.core.training.tied_head import release_gradient_buffers

        self._trainer.model.zero_grad(set_to_none=True)
        release_gradient_buffers(self._trainer.model)
        optimizer = self._trainer.optimizer
        if optimizer is not None and optimizer.state and self.parked_optimizer is None:
            path = Path(self._tmp) / self.OPTIMIZER_FILE
            try:
                torch.save(optimizer.state_dict(), path)
            except (OSError, RuntimeError):  # torch's writer reports a full disk as a RuntimeError
                path.unlink(missing_ok=True)
            else:
                optimizer.state.clear()
                self.parked_optimizer = path
        release_memory()

    def unpark(self) -> None:
        """Read the optimizer state back from its file, exactly as it was."""
        path = self.parked_optimizer
        if path is None:
            return
        import torch

        try:
            state = torch.load(path, weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise InspectorError(
                f"the {self.strategy} optimizer state could not be read back from {path}: {exc}",
                "reset this strategy (x) and train it again",
            ) from exc
        self._trainer.optimizer.load_state_dict(state)
        del state
        path.unlink(missing_ok=True)
        self.parked_optimizer = None

    def watch(self, text: str, ids: Sequence[int]) -> None:
        """Record the teacher-forced rows of `ids` after every epoch from now on (`epoch_rows`)."""
        self.watched = {**self.watched, text: [int(i) for i in ids]}  # a new dict: a burst may be reading it

    def record_epoch(self, epoch: int) -> None:
        """The teacher-forced rows of every watched text, as the model is after `epoch` epochs."""
        if not self.watched:
            return
        from inspector.core.training.predictions import teacher_forced

        rows = {text: teacher_forced(self.model, self.tokenizer, ids) for text, ids in self.watched.items()}
        self.epoch_rows = {**self.epoch_rows, epoch: rows}  # a new dict: readers on other threads see one or the other

    def holdout_answer(self) -> str:
        return greedy_answer(self.model, self.tokenizer, self.prompt_ids, self.settings.max_new_tokens)

    def run(
        self,
        epochs: int | None = None,
        *,
        on_step: Callable[[StepLog], None] | None = None,
        on_epoch: Callable[[EpochLog], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        extra_callbacks: Sequence[Any] = (),
        before_train: Callable[[Any], None] | None = None,
    ) -> BurstResult:
        """Train `epochs` more epochs (default: the settings'); stop between steps when asked.

        `extra_callbacks` (TrainerCallbacks) are attached for this burst only; `before_train`
        gets the model the trainer will run, once it is made (the benchmark hooks it).
        """
        epochs = self.settings.epochs if epochs is None else epochs
        if epochs < 1:
            raise InspectorError(f"--epochs must be at least 1, not {epochs}", "pass a positive number")
        result = BurstResult(self.strategy)
        callback = make_callback(self, result, on_step, on_epoch, should_stop)
        if self._trainer is None:
            self._trainer = self._make_trainer(callback)
        else:
            self._trainer.callback_handler.callbacks = [
                c for c in self._trainer.callback_handler.callbacks if not getattr(c, "is_burst_callback", False)
            ]
            self._trainer.add_callback(callback)
        trainer = self._trainer  # a close() from another thread (the app quitting) lets the burst end
        self.unpark()
        trainer.args.num_train_epochs = epochs
        for extra in extra_callbacks:
            trainer.add_callback(extra)
        if before_train is not None:
            before_train(trainer.model)
        import torch

        threads = torch.get_num_threads()
        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        try:
            start = time.perf_counter()
            try:
                trainer.train()
            except Exception as exc:
                if not _is_out_of_memory(exc):
                    raise
                raise self._out_of_memory(callback, exc) from exc
            result.wall_seconds = time.perf_counter() - start
            result.train_runtime = result.wall_seconds - callback.holdout_seconds
        finally:
            torch.set_num_threads(threads)
            for extra in extra_callbacks:
                trainer.remove_callback(extra)
            self.park()
        per_example = [len(ex.rows) for ex in self.labeled]
        trained = [ex.trained_tokens for ex in self.labeled]
        examples_done = len(result.steps) * self.examples_per_step
        n = len(per_example)
        # Whole epochs are exact; a stopped partial epoch is counted at the mean example length.
        full, part = divmod(examples_done, n)
        result.input_tokens = full * sum(per_example) + round(part * statistics.mean(per_example))
        result.trained_tokens = full * sum(trained) + round(part * statistics.mean(trained))
        result.stopped = callback.stopped
        result.epochs_done = self.epochs_done
        return result

    def _out_of_memory(self, callback: Any, exc: BaseException) -> InspectorError:
        """Say where the burst stopped and whether the weights are whole."""
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        step = self.steps_done + 1
        if callback.phase == "optimizer":
            # The optimizer had started updating the weights: some may be new, some old.
            self.damaged = True
            state = "the optimizer step was cut short, so the weights may be partly updated: reset this strategy"
        else:
            state = f"its weights are those after step {self.steps_done}, the last complete one"
        return InspectorError(
            f"out of memory at step {step} of the {self.strategy} burst ({self.device}); {state}",
            "free memory, or train less: --lora, --freeze-embeddings, shorter examples or a smaller model",
        )

    def close(self) -> None:
        """Remove the session's files and let go of its trainer (optimizer state included).

        The weights stay with `self.model` until the session itself is dropped; then
        `inspector.core.memory.release_memory()` returns them to the system.
        """
        self._trainer = None
        self.parked_optimizer = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> TrainingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SESSION_PREFIX = "causallm-inspect-session-"


def _session_folder() -> str:
    """A new temporary folder for a session, named after this process; the folders of
    sessions whose process died (killed, out of memory) are removed first: each may hold an
    optimizer state of twice the model's size."""
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{SESSION_PREFIX}*"):
        pid = folder.name[len(SESSION_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{SESSION_PREFIX}{os.getpid()}-")


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # Windows' os.kill would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process, or a platform without signals: leave its folder
        return True
    return True


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "out of memory" in str(exc).lower()
