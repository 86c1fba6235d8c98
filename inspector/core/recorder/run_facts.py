"""What a recording says once about its run: the settings, the library versions, the stop tokens.

The stop tokens are the ones generation stops on and a fine-tune must therefore train: the
tokenizer's eos, SFTConfig's `eos_token` where set, the model's `generation_config.eos_token_id`
(Gemma's `<end_of_turn>` is one), and the chat template's end of turn: the first special token the
template writes after an assistant message's text.
"""

from __future__ import annotations

import platform
import sys
import time
from importlib import metadata
from typing import Any

LIBRARIES = ("torch", "transformers", "trl", "accelerate", "datasets", "pyarrow", "peft", "deepspeed", "causallm-inspect")


def library_versions() -> dict[str, str | None]:
    """The installed version of each library a run depends on (None: not installed), and Python's."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _token_text(tokenizer: Any, tid: int) -> str:
    token = tokenizer.convert_ids_to_tokens(int(tid)) if tokenizer is not None else None
    return str(token) if token is not None else str(tid)


def template_end_of_turn(tokenizer: Any) -> int | None:
    """The first special token the chat template writes after an assistant message's text (None: no
    template, or it writes none)."""
    from inspector.core.data.tokens import special_token_ids

    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return None
    text = "Zq7 answer"
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": text}, {"role": "user", "content": "Ok"}]
    try:
        rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # noqa: BLE001 -- a template may refuse this conversation (jinja raises its own errors)
        return None
    if not isinstance(rendered, str) or text not in rendered:
        return None
    after = rendered[rendered.index(text) + len(text) :]
    special = special_token_ids(tokenizer)
    for tid in tokenizer(after, add_special_tokens=False)["input_ids"]:
        if int(tid) in special:
            return int(tid)
    return None


def stop_tokens(tokenizer: Any, model: Any, args: Any) -> dict[int, str]:
    """The stop tokens (id: text), as the module docstring lists them."""
    ids: list[int] = []
    if tokenizer is not None and getattr(tokenizer, "eos_token_id", None) is not None:
        ids.append(int(tokenizer.eos_token_id))
    eos_name = getattr(args, "eos_token", None)
    if eos_name and tokenizer is not None:
        tid = tokenizer.convert_tokens_to_ids(eos_name)
        if tid is not None and tid != getattr(tokenizer, "unk_token_id", None):
            ids.append(int(tid))
    generation = getattr(model, "generation_config", None)
    listed = getattr(generation, "eos_token_id", None)
    if listed is not None:
        ids += [int(t) for t in (listed if isinstance(listed, (list, tuple)) else [listed])]
    end = template_end_of_turn(tokenizer)
    if end is not None:
        ids.append(end)
    return {tid: _token_text(tokenizer, tid) for tid in dict.fromkeys(ids)}


def run_info(trainer: Any, args: Any, model: Any, tokenizer: Any, *, steps: int, every: int | None) -> dict[str, Any]:
    """run.json's values (but the format's name and version, which `record_files` adds)."""
    config = getattr(model, "config", None)
    accelerator = getattr(trainer, "accelerator", None)
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "world_size": int(args.world_size),
        "gradient_accumulation_steps": int(args.gradient_accumulation_steps),
        "per_device_train_batch_size": int(args.per_device_train_batch_size),
        "average_tokens_across_devices": bool(getattr(args, "average_tokens_across_devices", False)),
        "recorded_steps": {"first": steps, "every": every},
        "trainer": type(trainer).__name__ if trainer is not None else None,
        "model": getattr(config, "_name_or_path", None) or None,
        "model_class": type(model).__name__,
        "attn_implementation": getattr(config, "_attn_implementation", None),
        "model_use_cache": getattr(config, "use_cache", None),
        "tokenizer": getattr(tokenizer, "name_or_path", None) or None,
        "model_accepts_loss_kwargs": getattr(trainer, "model_accepts_loss_kwargs", None),
        "loss_shifts_labels": getattr(trainer, "_loss_shifts_labels", True),
        "compute_loss_func": getattr(trainer, "compute_loss_func", None) is not None,
        "distributed_type": str(getattr(accelerator, "distributed_type", "")) or None,
        "backward_divides_by": _backward_divisor(accelerator),
        "stop_tokens": {str(k): v for k, v in stop_tokens(tokenizer, model, args).items()},
        "versions": library_versions(),
        "command": sys.argv,
        "args": args.to_dict() if hasattr(args, "to_dict") else vars(args),
    }


def _backward_divisor(accelerator: Any) -> int:
    """What accelerate's `backward` divides the loss by before the gradient (1 under DeepSpeed, which scales
    its own; the Trainer sets accelerate's accumulation to 1 and scales the loss itself)."""
    if accelerator is None:
        return 1
    if "DEEPSPEED" in str(getattr(accelerator, "distributed_type", "")):
        return 1
    return int(getattr(accelerator, "gradient_accumulation_steps", 1) or 1)
