"""`trl sft`'s own path with the recorder (the `record` command): TRL's parser on the config, its
dataset loaded as `trl sft` loads it, TRL's `SFTTrainer` built from the model's name with the
config's model arguments, real optimizer steps, and the model saved to `output_dir` at the end,
as `trl.scripts.sft.main` does; the one change is `callbacks=[RecorderCallback(...)]`.

It starts no process: under `torchrun` or `accelerate launch` every rank runs this, and the
Trainer sets up the process group from the launcher's environment as `trl sft` would. Offline
(nothing is downloaded: the model and dataset are local or in the cache); evaluation is left out
(a recording is of training steps), said in a note, and `push_to_hub` is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspector.core.errors import InspectorError
from inspector.core.recorder.audit import SHARE_BAND
from inspector.core.recorder.callback import RecorderCallback
from inspector.core.recorder.record_files import DEFAULT_STEPS, RUN_FILE


def _parse(config_file: str, values: dict[str, Any], progress: Callable[[str], None]) -> tuple[Any, Any, Any, Any]:
    from inspector.core.batches.setup import parse_run

    script, sft, model_args, mixture = parse_run(config_file, values)
    if str(getattr(sft.eval_strategy, "value", sft.eval_strategy)) != "no":
        progress("evaluation is left out of a recording run (eval_strategy: no)")
        script, sft, model_args, mixture = parse_run(
            config_file, {**values, "eval_strategy": "no", "load_best_model_at_end": False}
        )
    if sft.push_to_hub:
        raise InspectorError(f"{config_file} sets push_to_hub: a recording runs offline and pushes nothing", "set push_to_hub: false")
    name = model_args.model_name_or_path
    if not name:
        raise InspectorError(f"{config_file} names no model_name_or_path", "add it to the config, or pass --model")
    if str(name).startswith(("/", ".", "~")) and not Path(name).expanduser().exists():
        raise InspectorError(f"the model folder {name} does not exist", "check model_name_or_path in the config, or pass --model")
    return script, sft, model_args, mixture


def _trainer(model_args: Any, sft: Any, dataset: Any, callback: RecorderCallback) -> Any:
    from trl import SFTTrainer, get_peft_config, get_quantization_config

    model_init_kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=sft.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
    )
    if sft.model_init_kwargs is not None:
        model_init_kwargs.update(sft.model_init_kwargs)
    sft.model_init_kwargs = model_init_kwargs
    name = model_args.model_name_or_path
    try:
        return SFTTrainer(
            model=name,
            args=sft,
            train_dataset=dataset,
            eval_dataset=None,
            quantization_config=get_quantization_config(model_args),
            peft_config=get_peft_config(model_args),
            callbacks=[callback],
        )
    except OSError as exc:
        raise InspectorError(
            f"the model {name} cannot be loaded ({str(exc).splitlines()[0][:200]}); this tool never downloads (HF_HUB_OFFLINE=1)",
            f"give a model folder, or download it once where you have internet (`hf download {name}`)",
        ) from exc
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        text = str(exc).strip().splitlines()
        if text and "chat_template is not set" in text[0]:
            raise InspectorError(
                f"the tokenizer of {name} has no chat template, and the data is conversational",
                "set chat_template_path in the config: a .jinja file (TRL ships some: `causallm-inspect templates` "
                "shows their folder) or a model folder whose tokenizer has one",
            ) from exc
        if text and any(k in text[0] for k in ("Connection closed by peer", "Connection reset by peer", "NCCL error")):
            raise InspectorError(
                "another rank stopped before this one (its error is the one to read)", "fix what that rank says, then launch again"
            ) from exc
        raise InspectorError(f"TRL's SFTTrainer refuses this config: {text[0][:300] if text else type(exc).__name__}", "change that setting") from exc


def record_sft(
    config_file: str,
    *,
    to: str,
    steps: int = DEFAULT_STEPS,
    every: int | None = None,
    stop_on_problem: bool = False,
    model: str | None = None,
    max_steps: int | None = None,
    share_band: tuple[float, float] = SHARE_BAND,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Train as `trl sft --config config_file` does, recorded into `to`. Returns what this rank did:
    its rank, the world size, the steps it recorded, the optimizer steps taken."""
    from inspector.core.batches.setup import config_dataset, offline

    offline()
    if (Path(to) / RUN_FILE).exists():  # before anything loads (each rank checks again as training starts)
        raise InspectorError(f"{to} already holds a recording", "record into a new folder, or remove it")
    callback = RecorderCallback(to, steps, every, stop_on_problem=stop_on_problem, share_band=share_band)
    values: dict[str, Any] = {}
    if model:
        values["model_name_or_path"] = model
    if max_steps is not None:
        values["max_steps"] = max_steps
    script, sft, model_args, mixture = _parse(config_file, values, progress)
    dataset, source = config_dataset(script, mixture, config_file)
    progress(f"training on {source}, recorded into {to}")
    trainer = _trainer(model_args, sft, dataset, callback)
    try:
        trainer.train(resume_from_checkpoint=sft.resume_from_checkpoint)
        trainer.save_model(sft.output_dir)
    finally:
        _end(trainer)
    return {"rank": callback.rank, "world_size": callback.world, "recorded": list(callback._written),
            "global_step": int(trainer.state.global_step), "output_dir": sft.output_dir}


def _end(trainer: Any) -> None:
    """Finish as `trl sft` does (`Trainer.end`: the trackers, then the process group), also after a stop."""
    end = getattr(trainer, "end", None)
    if end is not None:
        end()
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
