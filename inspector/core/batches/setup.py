"""What a batch view is built from: an `SFTConfig`, the training dataset, and the model to use.

Both ways in go through TRL's own parser, so a value means what it means to `trl sft`:

- `--config FILE`: the YAML `trl sft --config FILE` takes, parsed by `TrlParser` into
  `ScriptArguments`, `SFTConfig`, `ModelConfig` and `DatasetMixtureConfig` (the dataclasses
  `trl sft` itself parses), its dataset loaded by TRL's `get_dataset` (or `load_dataset` for a
  `dataset_name`), as `trl sft` does. `trl sft` ignores keys that match no field; here they
  are named and refused. DeepSpeed and FSDP (`deepspeed:`, `fsdp:`, `fsdp_config:`) are left out, said
  in one note: one process simulates the batches without them.
- flags with SFTConfig's names, on the article's examples or `--data`, turned into TRL's
  prompt/completion (or conversational) dataset as the `trl` strategy does.

A few settings that cannot change a batch are always set, so nothing is written and nothing
trains: a temporary `output_dir`, `report_to=none`, no saving, evaluation or hub push,
bf16/fp16, torch.compile and activation checkpointing off, no data-loader workers. Everything runs offline: a hub dataset or model that is not in
the local cache is a clear message, never a download.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.core.errors import InspectorError

# The SFTConfig fields that shape a step's batches: the `batch` command's flags, and (all but the seed)
# the settings a lesson's `batch:` key may give (`core.lessons.model.BATCH_KEYS` is made from these).
SFT_FLAGS = (
    "packing",
    "packing_strategy",
    "padding_free",
    "max_length",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "completion_only_loss",
    "assistant_only_loss",
    "seed",
)
LEFT_OUT = ("deepspeed", "fsdp", "fsdp_config")  # the sharding engines a one-process simulation runs without
DEFAULT_BATCH_SIZE = 2  # with flags only: SFTConfig's 8 is more than the article's five examples
ROW_COLUMN = "causallm_inspect_index"  # added to the dataset TRL prepares: each row's index, kept through tokenizing


def offline() -> None:
    """Never reach the network: the hub, datasets and TRL's telemetry read these (at import, and at each call
    for the constants patched here when they were imported first)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ[var] = "1"
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
        hub.HF_HUB_DISABLE_TELEMETRY = True
    ds = sys.modules.get("datasets.config")
    if ds is not None:
        ds.HF_HUB_OFFLINE = True
        if hasattr(ds, "HF_DATASETS_OFFLINE"):
            ds.HF_DATASETS_OFFLINE = True


@dataclass
class BatchSetup:
    """An SFTConfig, the dataset it trains on, and where the rows came from."""

    sft: Any  # trl.SFTConfig
    dataset: Any  # datasets.Dataset: the training split, as it is handed to SFTTrainer
    source: str  # what the rows are, for the header
    rows: Sequence[int] | None = None  # each dataset row's number in the data; None: its index + 1
    model: str | None = None  # the config's model_name_or_path
    attn_implementation: str | None = None  # the config's (ModelConfig), or --attn-implementation
    batch_size_given: bool = True  # False: the flags' default, lowered to fit a small dataset
    config_file: str | None = None
    given: dict[str, Any] = field(default_factory=dict)  # the SFTConfig values the user set (config and flags)
    lowered_batch_size: int | None = None  # the default batch size it was lowered from, to fit a small dataset
    notes: list[str] = field(default_factory=list)  # what the simulation leaves out of the config (`left_out_note`)
    model_use_cache: bool | None = None  # the model config's own use_cache (the Trainer turns it off); set by sft_trainer

    def row_number(self, index: int) -> int:
        return int(self.rows[index]) if self.rows is not None else index + 1


def _valid_strategies() -> tuple[str, ...]:
    from trl import SFTConfig

    meta = {f.name: f.metadata for f in dataclasses.fields(SFTConfig)}
    return tuple(meta["packing_strategy"].get("choices") or ("bfd", "bfd_split", "wrapped"))


def check_values(values: Mapping[str, Any], where: str = "") -> None:
    """The values TRL would only refuse later (or never): one line naming the problem."""
    at = f" in {where}" if where else ""
    strategy = values.get("packing_strategy")
    if strategy is not None:
        valid = _valid_strategies()
        if strategy not in valid and strategy != "bfd-requeue":  # TRL still reads its old name
            raise InspectorError(
                f"packing strategy {strategy!r}{at} does not exist", f"choose one of TRL's: {', '.join(valid)}"
            )
    if "max_length" in values and values["max_length"] is not None:
        n = values["max_length"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InspectorError(
                f"max_length {n!r}{at} is not a length: it must be a whole number of at least 1",
                "give the longest sequence in tokens, e.g. --max-length 1024 (or null in a config: no truncation)",
            )
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps"):
        n = values.get(name)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise InspectorError(f"{name} {n!r}{at} must be a whole number of at least 1", f"set {name} to 1 or more")


def _parser(where: str) -> Any:
    """`trl sft`'s parser (the same four dataclasses), but one whose refusals are one line, not a usage text."""
    from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, SFTConfig, TrlParser

    class Parser(TrlParser):
        def error(self, message: str) -> None:  # argparse would print its usage and exit
            raise InspectorError(f"TRL's parser refuses {where}: {message}", "fix that value")

    return Parser((ScriptArguments, SFTConfig, ModelConfig, DatasetMixtureConfig), prog="trl sft")


def _as_arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)


def forced_settings(output_dir: str, device: str) -> dict[str, Any]:
    """What never changes a batch but would write, report, train or need a GPU."""
    return {
        "output_dir": output_dir,
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "no",  # no eval dataset is given: trl sft passes one only to evaluate
        "load_best_model_at_end": False,
        "push_to_hub": False,
        "torch_compile": False,
        "logging_strategy": "no",
        "disable_tqdm": True,
        "bf16": False,
        "fp16": False,
        "activation_checkpointing": False,
        "dataloader_num_workers": 0,
        "use_cpu": device == "cpu",
    }


def parse(
    config_file: str | None,
    flags: Mapping[str, Any],
    *,
    output_dir: str,
    device: str = "cpu",
    extra: Mapping[str, Any] | None = None,
) -> tuple[Any, Any, Any, Any]:
    """(ScriptArguments, SFTConfig, ModelConfig, DatasetMixtureConfig) from the config file and the flags
    (which win over the file, as on `trl sft`'s command line)."""
    from inspector.core.quiet import quiet_libraries

    quiet_libraries()  # TRL's own warnings as it parses (keep_end's is said in one line by the views)
    check_values(flags)
    path = _checked_file(config_file)
    if path is not None and left_out(str(path)):
        import yaml

        kept = {k: v for k, v in _yaml(path).items() if k not in LEFT_OUT}
        path = Path(output_dir) / "config-simulated.yaml"
        path.write_text(yaml.safe_dump(kept, allow_unicode=True), encoding="utf-8")
    values = {**dict(extra or {}), **{k: v for k, v in flags.items() if v is not None}, **forced_settings(output_dir, device)}
    return _parse_argv(path, values, config_file)


def parse_run(config_file: str, values: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """The four dataclasses of `trl sft --config FILE` for a real run: the config as it is (DeepSpeed
    and FSDP included), `values` over it, nothing forced (`record`)."""
    from inspector.core.quiet import quiet_libraries

    quiet_libraries()
    check_values(values)
    return _parse_argv(_checked_file(config_file), values, config_file)


def _checked_file(config_file: str | None) -> Path | None:
    if config_file is None:
        return None
    path = Path(config_file)
    if not path.is_file():
        raise InspectorError(f"the config file {config_file} does not exist", "check the path given to --config")
    _check_yaml(path)
    return path


def _parse_argv(path: Path | None, values: Mapping[str, Any], config_file: str | None) -> tuple[Any, Any, Any, Any]:
    argv: list[str] = ["--config", str(path)] if path is not None else []
    for key, value in values.items():
        argv += [f"--{key}", _as_arg(value)]
    where = f"the config {config_file}" if config_file else "these settings"
    parser = _parser(where)
    try:
        *parsed, from_file, _from_args = parser.parse_args_and_config(
            argv, return_remaining_strings=True, separate_remaining_strings=True
        )
    except InspectorError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise InspectorError(f"TRL refuses {where}: {_first_line(exc)}", "fix that value") from exc
    if from_file:
        _refuse_unknown(from_file[0::2], parser, config_file or "")
    script, sft, model_args, mixture = parsed[:4]
    check_values({k: getattr(sft, k) for k in ("packing_strategy", "max_length")}, config_file or "")
    return script, sft, model_args, mixture


def _yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def left_out(config_file: str | None) -> dict[str, Any]:
    """The config's DeepSpeed and FSDP settings (`LEFT_OUT`), which a simulation runs without."""
    if not config_file or not Path(config_file).is_file():
        return {}
    data = _yaml(Path(config_file))
    return {k: data[k] for k in LEFT_OUT if isinstance(data, dict) and data.get(k) not in (None, "", [], {}, False)}


def left_out_note(config_file: str | None) -> list[str]:
    """One note naming what `left_out` leaves out (none when the config names neither engine)."""
    found = left_out(config_file)
    if not found:
        return []
    named = ", ".join(f"{k}: {v}" for k, v in found.items())
    return [
        f"left out of {Path(str(config_file)).name}: {named}; the batches are simulated in one process without "
        "DeepSpeed or FSDP, so what they change in the loss or the weights is not shown"
    ]


def _check_yaml(path: Path) -> None:
    import yaml

    try:
        data = _yaml(path)
    except yaml.YAMLError as exc:
        raise InspectorError(f"the config {path} is not valid YAML ({_first_line(exc)})", "fix the YAML") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InspectorError(f"the config {path} cannot be read ({_first_line(exc)})", "check the file") from exc
    if not isinstance(data, dict):
        raise InspectorError(
            f"the config {path} is not a YAML mapping of keys to values", "write it as `trl sft --config` takes it: key: value lines"
        )
    check_values(data, str(path))


def _refuse_unknown(keys: Sequence[str], parser: Any, config_file: str) -> None:
    known = sorted({a.dest for a in parser._actions if a.dest != "help"})
    named = []
    for key in keys:
        key = key[2:] if key.startswith("--") else key
        close = difflib.get_close_matches(key, known, n=1)
        named.append(f"{key} (did you mean {close[0]}?)" if close else key)
    raise InspectorError(
        f"the config {config_file} has keys that match no field of TRL's ScriptArguments, SFTConfig, ModelConfig "
        f"or DatasetMixtureConfig, which `trl sft` would silently ignore: {', '.join(named)}",
        "rename or remove them",
    )


def config_setup(
    config_file: str, flags: Mapping[str, Any], *, output_dir: str, device: str, chat_template: str | None = None
) -> BatchSetup:
    """A setup from `trl sft`'s YAML config (flags override its values); its dataset is loaded here.
    `chat_template` (--chat-template's text) is handed to TRL as `chat_template_path`."""
    from inspector.core.quiet import quiet_libraries

    offline()
    quiet_libraries()
    extra: dict[str, Any] = {}
    if chat_template is not None:
        template = Path(output_dir) / "chat_template.jinja"
        template.write_text(chat_template, encoding="utf-8")
        extra["chat_template_path"] = str(template)
    script, sft, model_args, mixture = parse(config_file, flags, output_dir=output_dir, device=device, extra=extra)
    given = given_values(config_file, flags)
    dataset, source = config_dataset(script, mixture, config_file)
    return BatchSetup(
        sft=sft,
        dataset=dataset,
        source=source,
        model=model_args.model_name_or_path,
        attn_implementation=model_args.attn_implementation,
        config_file=config_file,
        given=given,
        notes=left_out_note(config_file),
    )


def has_dataset(config_file: str) -> bool:
    """Whether the config names a dataset (`datasets:` or `dataset_name`)."""
    import yaml

    data = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
    return bool(data.get("datasets") or data.get("dataset_name"))


def given_values(config_file: str | None, flags: Mapping[str, Any]) -> dict[str, Any]:
    """The SFTConfig values the config file sets (of SFT_FLAGS), then the flags given."""
    given: dict[str, Any] = {}
    if config_file:
        import yaml

        data = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
        given.update({k: v for k, v in data.items() if k in SFT_FLAGS})
    given.update({k: v for k, v in flags.items() if v is not None})
    return given


def config_dataset(script: Any, mixture: Any, config_file: str) -> tuple[Any, str]:
    """The training split, loaded as `trl sft` loads it."""
    import datasets
    from trl import get_dataset

    if mixture.streaming or script.dataset_streaming:
        raise InspectorError(
            f"the config {config_file} streams its dataset: a streamed dataset has no rows to number or steps to count",
            "set streaming: false (the batches are the same)",
        )
    names = [d.path for d in mixture.datasets] or [script.dataset_name]
    try:
        if mixture.datasets:
            loaded = get_dataset(mixture)
        else:
            loaded = datasets.load_dataset(script.dataset_name, name=script.dataset_config)
    except InspectorError:
        raise
    except Exception as exc:  # datasets raises many kinds here; each becomes one line naming the dataset
        raise _dataset_error(names, mixture, exc) from exc
    split = script.dataset_train_split
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise InspectorError(
                f"the dataset has no {split!r} split (it has {', '.join(loaded) or 'none'})",
                "set dataset_train_split to one of them",
            )
        loaded = loaded[split]
    files = [str(f) for d in mixture.datasets for f in _as_list(d.data_files)]
    source = ", ".join(files) if files else ", ".join(n for n in names if n)
    return loaded, f"{source} ({len(loaded):,} rows, from {Path(config_file).name})"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        return [f for v in value.values() for f in _as_list(v)]
    return [value]


def _dataset_error(names: Sequence[str | None], mixture: Any, exc: BaseException) -> InspectorError:
    missing = [str(f) for d in mixture.datasets for f in _as_list(d.data_files) if not Path(str(f)).expanduser().exists()]
    missing = [f for f in missing if not any(c in f for c in "*?[")]
    if missing:
        return InspectorError(
            f"the data file {missing[0]} does not exist (paths in a config are read from the current folder, as trl sft reads them)",
            "check data_files in the config",
        )
    local = [n for n in names if n and (Path(n).exists() or n in ("json", "csv", "parquet", "text", "arrow"))]
    if len(local) == len([n for n in names if n]):
        return InspectorError(f"the dataset {', '.join(map(str, names))} could not be read ({_first_line(exc)})", "check the config's datasets")
    hub = ", ".join(n for n in names if n and n not in local)
    return InspectorError(
        f"the dataset {hub} is not a local file and is not in the Hugging Face cache (this tool never downloads: "
        f"HF_HUB_OFFLINE=1)",
        f"download it once where you have internet (`hf download {hub} --repo-type dataset`), or give data_files",
    )


def examples_setup(
    formatted: Sequence[Any],
    rows: Sequence[int],
    source: str,
    flags: Mapping[str, Any],
    *,
    output_dir: str,
    device: str,
    config_file: str | None = None,
) -> BatchSetup:
    """A setup from the command's flags (and maybe a config without a dataset) on formatted examples: TRL's
    prompt/completion dataset, or conversations with their chat template, as the `trl` strategy builds them."""
    from inspector.core.labels.trl_bridge import is_conversational, prompt_completion_dataset

    offline()
    flags = dict(flags)
    batch_size_given = flags.get("per_device_train_batch_size") is not None or (
        config_file is not None and "per_device_train_batch_size" in given_values(config_file, {})
    )
    if not batch_size_given:
        flags["per_device_train_batch_size"] = DEFAULT_BATCH_SIZE
    extra: dict[str, Any] = {}
    if is_conversational(formatted) and formatted[0].chat_template:
        template = Path(output_dir) / "chat_template.jinja"
        template.write_text(formatted[0].chat_template, encoding="utf-8")
        extra["chat_template_path"] = str(template)
    _script, sft, model_args, _mixture = parse(config_file, flags, output_dir=output_dir, device=device, extra=extra)
    return BatchSetup(
        sft=sft,
        dataset=prompt_completion_dataset(formatted),
        source=source,
        rows=list(rows),
        model=model_args.model_name_or_path,
        attn_implementation=model_args.attn_implementation,
        batch_size_given=batch_size_given,
        config_file=config_file,
        given=given_values(config_file, flags),
        notes=left_out_note(config_file),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
