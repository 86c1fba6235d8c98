"""Prepared runs for talks: every burst run once ahead of time, replayed on stage.

`causallm-inspect prepare` trains each strategy once and stores what the app shows of a
burst: per-step losses, the held-out answer and teacher-forced predictions after every
epoch, runtimes. A run is keyed by the model (its weights' fingerprint), the examples,
the strategy, the burst settings (epochs aside: a stored run of N epochs replays any burst
of up to N) and the library versions, so a stored run is only ever used for exactly the
burst it recorded. Files are written to a temporary name and renamed, and carry a checksum
of their content: a stale, truncated or edited file is detected and ignored, never shown.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from inspector.core.chat import FormattedExample
from inspector.core.models import cache_dir
from inspector.core.training import BurstResult, BurstSettings, EpochLog, StepLog

STORE_FORMAT = 1


def store_dir() -> Path:
    return cache_dir() / "prepared"


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "causallm-inspect"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "none"
    return out


def model_fingerprint(loaded: Any) -> str:
    """Identifies the weights: the config and the size and date of every weight file."""
    path = Path(loaded.path)
    digest = hashlib.sha256(loaded.source.encode())
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.suffix in (".json", ".safetensors", ".model", ".jinja") and f.is_file():
                st = f.stat()
                digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
                if f.name == "config.json":
                    digest.update(f.read_bytes())
    else:
        digest.update(str(path).encode())
    return digest.hexdigest()


def run_key(fingerprint: str, examples: Sequence[FormattedExample], strategy: str, settings: BurstSettings,
            predict_text: str, versions: dict[str, str]) -> str:
    spec = {
        "format": STORE_FORMAT,
        "model": fingerprint,
        "examples": [fe.text for fe in examples],
        "strategy": strategy,
        "settings": {k: v for k, v in asdict(settings).items() if k != "epochs"},
        "predict": predict_text,
        "versions": versions,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


@dataclass
class PreparedRun:
    key: str
    strategy: str
    model: str
    epochs: int
    result: dict[str, Any]  # BurstResult.to_dict() of the whole run
    predictions: dict[str, list[dict[str, Any]]]  # epoch ("1", "2", ...) -> teacher-forced rows
    created: float

    def burst(self, epochs: int) -> BurstResult:
        """The stored run cut to its first `epochs` epochs, as a BurstResult."""
        steps = [StepLog(**s) for s in self.result["steps"] if s["epoch"] <= epochs + 1e-9]
        logs = [EpochLog(**e) for e in self.result["epochs"] if e["epoch"] <= epochs]
        share = len(steps) / max(1, len(self.result["steps"]))
        return BurstResult(
            strategy=self.strategy,
            steps=steps,
            epochs=logs,
            train_runtime=self.result["train_runtime"] * share,
            input_tokens=round(self.result["input_tokens"] * share),
            trained_tokens=round(self.result["trained_tokens"] * share),
            stopped=False,
            epochs_done=float(epochs),
        )

    def predictions_after(self, epochs: int) -> list[dict[str, Any]] | None:
        return self.predictions.get(str(epochs))


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def save(run: PreparedRun) -> Path:
    folder = store_dir()
    folder.mkdir(parents=True, exist_ok=True)
    body = asdict(run)
    data = {"format": STORE_FORMAT, "checksum": _checksum(body), "run": body}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        target = folder / f"{run.key}.json"
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load(key: str) -> tuple[PreparedRun | None, str]:
    """The stored run for `key`, or None and why not ("none stored", "corrupt: ...")."""
    path = store_dir() / f"{key}.json"
    if not path.exists():
        return None, "none stored"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != STORE_FORMAT:
            return None, f"stored in an older format ({data.get('format')})"
        body = data["run"]
        if _checksum(body) != data.get("checksum"):
            return None, "corrupt: its checksum does not match its content"
        run = PreparedRun(**body)
        if run.key != key:
            return None, "corrupt: stored under another key"
        return run, "ok"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"corrupt: {type(exc).__name__}"


def prepare(
    loaded: Any,
    examples: Sequence[FormattedExample],
    strategies: Sequence[str],
    settings: BurstSettings,
    predict_ids: Sequence[int],
    predict_text: str,
    *,
    progress: Callable[[str], None] = lambda msg: None,
) -> list[PreparedRun]:
    """Run each strategy's burst on a fresh copy of the model and store it."""
    import copy

    from inspector.core.predictions import teacher_forced
    from inspector.core.training import TrainingSession

    versions = library_versions()
    fingerprint = model_fingerprint(loaded)
    runs = []
    for strategy in strategies:
        key = run_key(fingerprint, examples, strategy, settings, predict_text, versions)
        progress(f"{strategy}: training {settings.epochs} epochs")
        model = copy.deepcopy(loaded.model)
        predictions: dict[str, list[dict[str, Any]]] = {}
        with TrainingSession(model, loaded.tokenizer, examples, strategy, settings, device=loaded.device) as session:

            def on_epoch(log: EpochLog, session: Any = session) -> None:
                rows = teacher_forced(session.model, loaded.tokenizer, predict_ids)
                predictions[str(log.epoch)] = [r.to_dict() for r in rows]
                progress(f"{strategy}: epoch {log.epoch}, loss {log.loss:.4f}, held-out {log.holdout!r}")

            result = session.run(on_epoch=on_epoch)
        run = PreparedRun(
            key=key,
            strategy=strategy,
            model=loaded.name,
            epochs=settings.epochs,
            result=result.to_dict(),
            predictions=predictions,
            created=time.time(),
        )
        save(run)
        runs.append(run)
        del model
    return runs


def find(loaded: Any, examples: Sequence[FormattedExample], strategy: str, settings: BurstSettings,
         predict_text: str) -> tuple[PreparedRun | None, str]:
    """The prepared run that recorded exactly this burst (or a longer one), if any."""
    key = run_key(model_fingerprint(loaded), examples, strategy, settings, predict_text, library_versions())
    run, why = load(key)
    if run is not None and run.epochs < settings.epochs:
        return None, f"prepared for {run.epochs} epochs only"
    return run, why


def with_epochs(settings: BurstSettings, epochs: int) -> BurstSettings:
    return replace(settings, epochs=epochs)
