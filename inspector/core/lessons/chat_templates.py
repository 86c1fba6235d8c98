"""Chat templates and assistant-only masks (lesson 6): the same data through `apply_chat_template`.

Rendering conversations for training (content spans, the article format and back, the
`{% generation %}` markers) is `conversations`; this module asks transformers and TRL
which tokens they would train under a template.

A model's chat template renders a list of messages as text. When it wraps what the
assistant writes in `{% generation %}` ... `{% endgeneration %}`, transformers can return
`assistant_masks` (`return_assistant_tokens_mask=True`) and TRL can train only those
tokens (`SFTConfig(assistant_only_loss=True)`). The embedded Gemma's GGUF tokenizer has
no chat template at all, so a small one with the markers ships in `inspector/templates/`.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass
from importlib import resources
from typing import Any

from inspector.core.data.conversations import conversation, without_markers
from inspector.core.data.tokens import IGNORE_INDEX
from inspector.core.labels.strategies import TokenRow, make_rows

__all__ = ["conversation", "without_markers", "generation_template", "chat_template_view", "trl_assistant_only"]

# Kept rather than TRL's gemma3_training (`--chat-template gemma3` gives that one): TRL's
# generation block also trains the "\n" after <end_of_turn>, a token the model never writes
# (generation stops at <end_of_turn>), and the lesson shows the answer and its stop token and
# nothing else; TRL's also folds a system message into the first user turn and refuses any
# conversation whose roles do not alternate, which the lesson's demos need not explain.
TEMPLATE_FILE = "gemma-generation.jinja"


def generation_template() -> str:
    """The shipped Jinja chat template in Gemma's turn format, with generation markers."""
    return (resources.files("inspector") / "templates" / TEMPLATE_FILE).read_text(encoding="utf-8")


@dataclass(frozen=True)
class ChatTemplateView:
    model_template: bool  # the tokenizer came with a chat template of its own
    rendered: str  # the text the shipped template renders
    rows: tuple[TokenRow, ...]  # its tokens; label = id where assistant_masks is 1, else -100
    trained: int  # tokens with assistant mask 1
    unmarked_trained: int  # the same call with the markers removed from the template
    unmarked_tokens: int


def chat_template_view(tokenizer: Any, messages: list[dict[str, str]], template: str | None = None) -> ChatTemplateView:
    template = template if template is not None else generation_template()

    def render(tpl: str) -> tuple[list[int], list[int]]:
        out = tokenizer.apply_chat_template(
            messages, chat_template=tpl, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        return list(out["input_ids"]), [int(m) for m in out["assistant_masks"]]

    ids, mask = render(template)
    bare_ids, bare_mask = render(without_markers(template))
    labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]
    return ChatTemplateView(
        model_template=getattr(tokenizer, "chat_template", None) is not None,
        rendered=tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False),
        rows=make_rows(tokenizer, ids, labels),
        trained=sum(mask),
        unmarked_trained=sum(bare_mask),
        unmarked_tokens=len(bare_ids),
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().split(". ")[0])


@dataclass(frozen=True)
class TrlAssistantOnly:
    labels: tuple[int, ...] | None  # TRL's labels with assistant_only_loss=True, if it accepted the template
    error: str | None  # what TRL said when it refused
    warnings: tuple[str, ...] = ()  # what TRL logged while making the trainer


def trl_assistant_only(model: Any, tokenizer: Any, messages: list[dict[str, str]], template: str) -> TrlAssistantOnly:
    """Ask a real `SFTTrainer(assistant_only_loss=True)` for its labels under `template`.

    The tokenizer is copied (its chat template is set on the copy only), and TRL's patch of
    `model.forward` is undone afterwards, as in `trl_bridge.trl_dataset_rows`.
    """
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from inspector.core.quiet import quiet_libraries
    from inspector.core.labels.trl_bridge import accelerate_state_kept, model_kept, trainer_arguments

    quiet_libraries()
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = template
    heard = _Collect()
    trl_logger = logging.getLogger("trl")
    trl_logger.addHandler(heard)  # kept off the terminal (and the app's screen), shown in the result
    try:
        with model_kept(model), tempfile.TemporaryDirectory(prefix="causallm-inspect-") as tmp:
            args = trainer_arguments(tmp, epochs=1, learning_rate=1e-5, seed=1, device=str(model.device.type))
            with accelerate_state_kept():  # the refusal below would leave it reset
                config = SFTConfig(**args, assistant_only_loss=True, max_length=None, packing=False, dataset_num_proc=None)
                try:
                    trainer = SFTTrainer(
                        model=model,
                        args=config,
                        train_dataset=Dataset.from_dict({"messages": [messages]}),
                        processing_class=tok,
                    )
                except ValueError as exc:
                    return TrlAssistantOnly(None, str(exc).strip().splitlines()[0], tuple(heard.messages))
            trainer.remove_callback(PrinterCallback)
            batch = trainer.data_collator([trainer.train_dataset[0]])
            return TrlAssistantOnly(tuple(int(x) for x in batch["labels"][0].tolist()), None, tuple(heard.messages))
    finally:
        trl_logger.removeHandler(heard)
