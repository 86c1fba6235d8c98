"""Training bursts: a few epochs of one label strategy, observable step by step.

`copy` and `mask` train with the Hugging Face `Trainer` on our labels; `trl` trains with
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import ARTICLE_TEMPLATE, ChatTemplate, FormattedExample, add_special_tokens, holdout_text
from inspector.core.errors import InspectorError
from inspector.core.labels.strategies import STRATEGIES, label_examples

if TYPE_CHECKING:
    from inspector.core.models import LoadedModel


# Chosen by measurement on the embedded Gemma 3 270M (batch 1, constant schedule, seed 1):
# after three epochs the masked burst answers the held-out "good" with " buenos" while a
# copy burst answers " good" and reproduces the prompt (tests/integration checks the first).
# Higher rates memorise the five answers within two epochs (5e-5: " buen" after epoch 1,
# then " madre", " perro"); the answer wanders from epoch to epoch at any rate, and other
# seeds land on " hola" as often as on " buen...": the lessons show it per epoch.
DEFAULT_LEARNING_RATE = 6e-6
# LoRA trains far fewer weights and needs a larger rate: with rank 16 on every linear layer,
# three masked epochs at 1.5e-4 answer " buenos" and a copy burst reproduces the prompt.
DEFAULT_LORA_LEARNING_RATE = 1.5e-4
DEFAULT_EPOCHS = 3
DEFAULT_SEED = 1
DEFAULT_HOLDOUT = "good"


OPTIMIZERS = {"fused": "adamw_torch_fused", "foreach": "adamw_torch"}
BATCHING = ("single", "padded")


@dataclass(frozen=True)
class BurstSettings:
    """What a burst trains and how fast. The speed options after `max_new_tokens` are the
    ones the benchmark (`causallm-inspect bench`) measures; two of them change what is
    learned (`train_embeddings=False`, `lora=True`), which the lessons show."""

    epochs: int = DEFAULT_EPOCHS
    learning_rate: float | None = None  # None: DEFAULT_LEARNING_RATE, or DEFAULT_LORA_LEARNING_RATE with lora
    seed: int = DEFAULT_SEED
    holdout: str = DEFAULT_HOLDOUT
    max_new_tokens: int = 8
    optimizer: str = "fused"  # AdamW: "fused" (the Trainer's default) or "foreach" (torch's default)
    train_embeddings: bool = True  # False freezes the (tied) embedding matrix
    lora: bool = False  # LoRA adapters through peft instead of training every weight
    lora_rank: int = 16
    head_trained_only: bool = False  # copy/mask: LM head only where the next label is trained
    batching: str = "single"  # "single": one example per step (the article); "padded": all in one step
    threads: int | None = None  # torch CPU threads during the burst (None: torch's default)
    compile: bool = False  # torch.compile the model

    def __post_init__(self) -> None:
        if self.learning_rate is None:
            default = DEFAULT_LORA_LEARNING_RATE if self.lora else DEFAULT_LEARNING_RATE
            object.__setattr__(self, "learning_rate", default)
        if self.optimizer not in OPTIMIZERS:
            raise InspectorError(f"unknown optimizer {self.optimizer!r}", f"choose one of {', '.join(OPTIMIZERS)}")
        if self.batching not in BATCHING:
            raise InspectorError(f"unknown batching {self.batching!r}", f"choose one of {', '.join(BATCHING)}")
        if self.threads is not None and self.threads < 1:
            raise InspectorError(f"--threads must be at least 1, not {self.threads}", "pass a positive number")
        if self.epochs < 1:
            raise InspectorError(f"--epochs must be at least 1, not {self.epochs}", "pass a positive number")
        if not (0 < self.learning_rate < 1):
            raise InspectorError(
                f"--lr {self.learning_rate} is out of range", "pass a learning rate between 0 and 1, e.g. 5e-5"
            )


@dataclass(frozen=True)
class StepLog:
    strategy: str
    step: int  # counted over all bursts of the session
    epoch: float  # likewise
    loss: float
    seconds: float | None = None  # the step itself (forward, backward, optimizer); None in older records


@dataclass(frozen=True)
class EpochLog:
    strategy: str
    epoch: int  # counted over all bursts of the session
    loss: float  # mean of the step losses of this epoch
    holdout: str  # greedy answer to the held-out prompt after this epoch


@dataclass
class BurstResult:
    strategy: str
    steps: list[StepLog] = field(default_factory=list)
    epochs: list[EpochLog] = field(default_factory=list)
    train_runtime: float = 0.0  # seconds of training steps, held-out generation excluded
    input_tokens: int = 0  # tokens run through the model
    trained_tokens: int = 0  # of those, tokens whose label was scored
    stopped: bool = False  # stopped on request before the planned epochs
    epochs_done: float = 0.0  # over all bursts of the session

    @property
    def tokens_per_second(self) -> float:
        return self.input_tokens / self.train_runtime if self.train_runtime > 0 else 0.0

    @property
    def final_loss(self) -> float | None:
        return self.steps[-1].loss if self.steps else None

    @property
    def step_seconds(self) -> list[float]:
        """The seconds of each step that has them, in order."""
        return [s.seconds for s in self.steps if s.seconds is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "epochs": [asdict(e) for e in self.epochs],
            "steps": [asdict(s) for s in self.steps],
            "train_runtime": self.train_runtime,
            "tokens_per_second": self.tokens_per_second,
            "input_tokens": self.input_tokens,
            "trained_tokens": self.trained_tokens,
            "stopped": self.stopped,
            "epochs_done": self.epochs_done,
        }


def wait_for_device(device: str) -> None:
    """Wait for the work queued on a GPU, so that a step's time is the step's: CUDA and MPS run asynchronously."""
    if device.startswith(("cuda", "mps")):
        import torch

        (torch.cuda if device.startswith("cuda") else torch.mps).synchronize()


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
    tokenizer: Any, holdout: str, template: ChatTemplate = ARTICLE_TEMPLATE, model_name: str = "in use"
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
        template: ChatTemplate = ARTICLE_TEMPLATE,
        max_length: int | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise InspectorError(f"unknown strategy {strategy!r}", f"choose one of {', '.join(STRATEGIES)}")
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
        self.labeled = label_examples(strategy, self.examples, tokenizer, model, max_length=max_length)
        self.epochs_done = 0.0
        self.steps_done = 0
        self.damaged = False  # an out-of-memory error cut an optimizer step short
        self._trainer: Any = None
        self._tmp = _session_folder()
        self.parked_optimizer: Path | None = None  # the optimizer state's file while no burst runs
        self._epochs_begun = 0  # over all bursts: the next burst's first epoch takes the order after these

    @classmethod
    def on_a_copy(
        cls,
        loaded: LoadedModel,
        examples: Sequence[FormattedExample],
        strategy: str,
        settings: BurstSettings = BurstSettings(),
        *,
        template: ChatTemplate = ARTICLE_TEMPLATE,
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
        )

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
            return self._continue_epoch_order(trainer)
        from datasets import Dataset
        from transformers import DataCollatorForSeq2Seq, TrainingArguments
        from transformers.trainer_callback import PrinterCallback

        if s.lora:
            from peft import get_peft_model

            self.model = get_peft_model(self.model, self._lora_config())
        else:
            from inspector.core.training.tied_head import sum_tied_gradient_in_place

            # The stock LM head's gradient and the lookup's are summed out of place: a third
            # embedding-sized buffer at the end of every backward (TRL's own head avoids it).
            sum_tied_gradient_in_place(self.model)
        rows = [
            {"input_ids": ex.input_ids, "attention_mask": [1] * len(ex.rows), "labels": ex.labels}
            for ex in self.labeled
        ]
        trainer_cls = _trained_positions_trainer() if s.head_trained_only else _plain_trainer()
        trainer = trainer_cls(
            model=self.model,
            args=TrainingArguments(**trainer_arguments(self._tmp, **common)),
            train_dataset=Dataset.from_list(rows),
            # Pads only with batching="padded": labels with -100, input_ids on the right.
            data_collator=DataCollatorForSeq2Seq(self.tokenizer, padding=True, label_pad_token_id=-100),
            callbacks=[callback],
        )
        trainer.remove_callback(PrinterCallback)
        return self._continue_epoch_order(trainer)

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

        self._trainer.model.zero_grad(set_to_none=True)
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
        callback = _make_callback(self, result, on_step, on_epoch, should_stop)
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
            result.train_runtime = time.perf_counter() - start - callback.holdout_seconds
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


def _plain_trainer() -> type:
    from transformers import Trainer

    return Trainer


def _trained_positions_trainer() -> type:
    """A Trainer whose loss projects the LM head only where the next label is trained.

    Stock transformers computes the logits of every position and lets the loss ignore the
    -100 ones; `logits_to_keep` with the trained positions skips that work (TRL's trainer
    does the same with its fused LM head). The loss is the same: the mean cross-entropy over
    trained tokens.
    """
    import torch
    from transformers import Trainer

    class TrainedPositionsTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            return trained_positions_loss(model, inputs, num_items_in_batch)

    def trained_positions_loss(model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
        labels = inputs["labels"]
        targets = labels[:, 1:]
        keep = (targets != -100).any(dim=0).nonzero().squeeze(-1)
        forward = {k: v for k, v in inputs.items() if k != "labels"}
        logits = model(**forward, logits_to_keep=keep).logits.float()
        picked = targets[:, keep]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), picked.reshape(-1), ignore_index=-100, reduction="sum"
        )
        count = num_items_in_batch if num_items_in_batch is not None else (picked != -100).sum()
        return loss / count

    TrainedPositionsTrainer.loss_function = staticmethod(trained_positions_loss)
    return TrainedPositionsTrainer


def _make_callback(
    session: TrainingSession,
    result: BurstResult,
    on_step: Callable[[StepLog], None] | None,
    on_epoch: Callable[[EpochLog], None] | None,
    should_stop: Callable[[], bool] | None,
) -> Any:
    from transformers import TrainerCallback

    steps_at_start = session.steps_done
    epochs_at_start = session.epochs_done

    class BurstCallback(TrainerCallback):
        is_burst_callback = True

        def __init__(self) -> None:
            self.stopped = False
            self.holdout_seconds = 0.0
            self.epoch_losses: list[float] = []

        phase = "idle"
        step_start = 0.0
        step_seconds: float | None = None

        def on_epoch_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            session._epochs_begun += 1
            return control

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self.phase = "forward-backward"
            self.step_start = time.perf_counter()
            return control

        def on_pre_optimizer_step(self, args, state, control, **kwargs):  # noqa: ANN001
            self.phase = "optimizer"
            return control

        def on_optimizer_step(self, args, state, control, **kwargs):  # noqa: ANN001
            self.phase = "idle"
            return control

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            wait_for_device(session.device)
            self.step_seconds = time.perf_counter() - self.step_start
            session.steps_done = steps_at_start + state.global_step
            session.epochs_done = epochs_at_start + (state.epoch or 0.0)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs:
                log = StepLog(
                    session.strategy,
                    steps_at_start + state.global_step,
                    round(epochs_at_start + (state.epoch or 0.0), 4),
                    float(logs["loss"]),
                    self.step_seconds,
                )
                result.steps.append(log)
                self.epoch_losses.append(log.loss)
                if on_step is not None:
                    on_step(log)
                # Checked after the step is logged: the Trainer looks at the flag right after this.
                if should_stop is not None and should_stop():
                    self.stopped = True
                    control.should_training_stop = True
            return control

        def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self.stopped and abs((state.epoch or 0.0) - round(state.epoch or 0.0)) > 1e-6:
                return control  # stopped inside the epoch: no held-out answer for a partial epoch
            start = time.perf_counter()
            answer = session.holdout_answer()
            self.holdout_seconds += time.perf_counter() - start
            epoch = round(epochs_at_start + (state.epoch or 0.0))
            loss = statistics.mean(self.epoch_losses) if self.epoch_losses else float("nan")
            self.epoch_losses = []
            log = EpochLog(session.strategy, epoch, loss, answer)
            result.epochs.append(log)
            if on_epoch is not None:
                on_epoch(log)
            return control

    return BurstCallback()
