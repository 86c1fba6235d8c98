"""What a burst is: its settings (and their defaults), what it logs per step and per epoch,
and what it returns. No torch here: the app and the command line build these at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from inspector.core.errors import InspectorError

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
    learned (`train_embeddings=False`, `lora=True`), which the lessons show.

    By default a burst takes the fast path: the stock Trainer's math, with the
    tied embedding's gradient in one buffer (`tied_head.py`) and the gradient clipping
    folded into the fused AdamW step (`hf_trainer.fold_clipping_into_adamw`); each step's
    loss is the stock one to rounding (tested). `stock=True` runs the plain Trainer /
    SFTTrainer as the article does, none of those changes: the benchmark's `stock` rows."""

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
    stock: bool = False  # the plain Trainer / SFTTrainer, without the fast path's changes

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
    wall_seconds: float = 0.0  # the whole burst as one waits for it, held-out answers included
    input_tokens: int = 0  # tokens run through the model
    trained_tokens: int = 0  # of those, tokens whose label was scored
    stopped: bool = False  # stopped on request before the planned epochs
    epochs_done: float = 0.0  # over all bursts of the session

    @property
    def tokens_per_second(self) -> float:
        return self.input_tokens / self.train_runtime if self.train_runtime > 0 else 0.0

    @property
    def final_loss(self) -> float | None:
        """The last step's loss."""
        return self.steps[-1].loss if self.steps else None

    @property
    def epoch_loss(self) -> float | None:
        """The loss every front end shows for a burst: its last whole epoch's mean step loss (what
        `train` prints per epoch), or the mean of its steps when it stopped before an epoch ended."""
        if self.epochs:
            return self.epochs[-1].loss
        return sum(s.loss for s in self.steps) / len(self.steps) if self.steps else None

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
            "wall_seconds": self.wall_seconds,
            "tokens_per_second": self.tokens_per_second,
            "input_tokens": self.input_tokens,
            "trained_tokens": self.trained_tokens,
            "stopped": self.stopped,
            "epochs_done": self.epochs_done,
            "epoch_loss": self.epoch_loss,
        }
