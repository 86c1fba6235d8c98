"""Prepared runs for talks, their storage: find, save, load and explain a stored run or demo.

`causallm-inspect prepare` (`inspector.core.recording`) trains each strategy once
through the Lab and stores here what the app shows of a burst: per-step losses, the held-out answer and teacher-forced predictions after every
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import FormattedExample
from inspector.core.models import cache_dir, writable_folder
from inspector.core.training.burst import BurstResult, BurstSettings, EpochLog, StepLog

if TYPE_CHECKING:
    from inspector.core.lessons.demos import DemoContext
    from inspector.core.models import LoadedModel


STORE_FORMAT = 2


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


def model_fingerprint(loaded: LoadedModel) -> str:
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


def run_spec(fingerprint: str, examples: Sequence[FormattedExample], strategy: str, settings: BurstSettings,
             predict_text: str, versions: dict[str, str]) -> dict[str, Any]:
    """Everything a stored run depends on; its hash is the run's key."""
    return {
        "format": STORE_FORMAT,
        "model": fingerprint,
        "examples": [fe.text for fe in examples],
        # what is trained of each: a turn policy or a message's flag changes it with the same text
        "trained": [[list(span) for span in fe.answer_spans] + [fe.completion_from] for fe in examples],
        "strategy": strategy,
        "settings": {k: v for k, v in asdict(settings).items() if k != "epochs"},
        "predict": predict_text,
        "versions": versions,
    }


def spec_key(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


@dataclass
class PreparedRun:
    key: str
    strategy: str
    model: str
    epochs: int
    result: dict[str, Any]  # BurstResult.to_dict() of the whole run
    # epoch ("1", "2", ...) -> text -> teacher-forced rows (PredictionRow.to_dict()) after that epoch
    predictions: dict[str, dict[str, list[dict[str, Any]]]]
    step_seconds: list[float]  # wall time of each step as a viewer waited for it (held-out answers included)
    spec: dict[str, Any]  # what the key was made of, to explain why another burst finds no run
    created: float

    @property
    def total_steps(self) -> int:
        return len(self.result["steps"])

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.total_steps // max(1, self.epochs))

    def step_logs(self) -> list[StepLog]:
        """The recorded steps, each with its seconds. A run stored before steps carried their own
        gets the wait recorded for it instead (the held-out answer after an epoch counted in the
        next step), so its replay still shows seconds per step."""
        logs = [StepLog(**s) for s in self.result["steps"]]
        return [
            replace(log, seconds=self.step_seconds[i]) if log.seconds is None and i < len(self.step_seconds) else log
            for i, log in enumerate(logs)
        ]

    def epoch_log(self, epoch: int) -> EpochLog | None:
        return next((EpochLog(**e) for e in self.result["epochs"] if e["epoch"] == epoch), None)

    def segment(self, start: int, end: int, *, stopped: bool = False) -> BurstResult:
        """Steps start..end-1 of the stored run (0-based), as the BurstResult of a burst that ran them."""
        steps = self.step_logs()[start:end]
        spe = self.steps_per_epoch
        logs = [EpochLog(**e) for e in self.result["epochs"] if start < e["epoch"] * spe <= end]
        share = len(steps) / max(1, self.total_steps)
        return BurstResult(
            strategy=self.strategy,
            steps=steps,
            epochs=logs,
            train_runtime=self.result["train_runtime"] * share,
            input_tokens=round(self.result["input_tokens"] * share),
            trained_tokens=round(self.result["trained_tokens"] * share),
            stopped=stopped,
            epochs_done=end / self.steps_per_epoch,
        )

    def burst(self, epochs: int) -> BurstResult:
        """The stored run cut to its first `epochs` epochs, as a BurstResult."""
        return self.segment(0, min(self.total_steps, epochs * self.steps_per_epoch))

    def predictions_for(self, text: str, epoch: int) -> list[Any] | None:
        """Teacher-forced rows of `text` after `epoch` epochs, if this run stored them."""
        from inspector.core.training.predictions import PredictionRow

        rows = self.predictions.get(str(epoch), {}).get(text)
        return None if rows is None else [PredictionRow.from_dict(r) for r in rows]

    @property
    def created_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _write(key: str, body: dict[str, Any]) -> Path:
    """Store `body` under `key`: written to a temporary file, then renamed, with a checksum."""
    folder = writable_folder(store_dir())
    data = {"format": STORE_FORMAT, "checksum": _checksum(body), "run": body}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        target = folder / f"{key}.json"
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _read(key: str) -> tuple[dict[str, Any] | None, str]:
    path = store_dir() / f"{key}.json"
    if not path.exists():
        return None, "none stored"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != STORE_FORMAT:
            return None, f"stored in an older format ({data.get('format')}): run prepare again"
        body = data["run"]
        if _checksum(body) != data.get("checksum"):
            return None, "corrupt: its checksum does not match its content"
        if body.get("key") != key:
            return None, "corrupt: stored under another key"
        return body, "ok"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"corrupt: {type(exc).__name__}"


def save(run: PreparedRun | PreparedDemo) -> Path:
    return _write(run.key, asdict(run))


def _load_as(key: str, cls: type, marker: str, what: str) -> tuple[Any, str]:
    """The record stored under `key` as a `cls` (a body with a `marker` field), or None and why not."""
    body, why = _read(key)
    if body is None or marker not in body:
        return None, why if body is None else f"corrupt: not a {what}"
    try:
        return cls(**body), "ok"
    except TypeError as exc:
        return None, f"corrupt: {type(exc).__name__}"


def load(key: str) -> tuple[PreparedRun | None, str]:
    """The stored run for `key`, or None and why not ("none stored", "corrupt: ...")."""
    return _load_as(key, PreparedRun, "result", "training run")


# --- lesson demos that train ------------------------------------------------------------


@dataclass
class PreparedDemo:
    """A lesson demo that trains or makes HF trainers (`step-timing`, `packing`...), run once: its text."""

    key: str
    name: str
    title: str
    text: str
    seconds: float  # how long it ran
    spec: dict[str, Any]
    created: float

    @property
    def created_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))


def demo_spec(fingerprint: str, ctx: DemoContext, name: str, versions: dict[str, str]) -> dict[str, Any]:
    from inspector.core.training.burst import DEFAULT_LEARNING_RATE

    return {
        "format": STORE_FORMAT,
        "kind": "demo",
        "model": fingerprint,
        "demo": name,
        "examples": [fe.text for fe in ctx.examples],
        "example": ctx.example.text,
        "strategy": ctx.strategy,
        "settings": {
            "epochs": ctx.epochs,
            "learning_rate": ctx.learning_rate if ctx.learning_rate is not None else DEFAULT_LEARNING_RATE,
            "seed": ctx.seed,
        },
        "versions": versions,
    }


def find_demo(loaded: LoadedModel, ctx: DemoContext, name: str) -> tuple[PreparedDemo | None, str]:
    """The stored result of demo `name` run with exactly this context, or why there is none."""
    key = spec_key(demo_spec(model_fingerprint(loaded), ctx, name, library_versions()))
    return _load_as(key, PreparedDemo, "text", "demo")


_SPEC_NAMES = {
    "examples": "training examples",
    "settings": "burst settings",
    "predict": "held-out text",
    "versions": "library versions",
    "format": "store format",
}


def _difference(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """What differs between a stored run's spec and the wanted one, in words."""
    parts = []
    for field_name, name in _SPEC_NAMES.items():
        a, b = stored.get(field_name), wanted.get(field_name)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            detail = ", ".join(f"{k} {a.get(k)!r} there, {b.get(k)!r} here" for k in keys[:3])
            parts.append(f"{name} ({detail})")
        else:
            parts.append(name)
    return "; ".join(parts) or "its key"


def explain_miss(spec: dict[str, Any]) -> str:
    """Why no stored run fits `spec`: the nearest stored run of the same model and strategy, and how it differs."""
    folder = store_dir()
    best: tuple[int, str] | None = None
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        run, _ = load(path.stem)  # demos and broken files load as None
        if run is None or run.spec.get("model") != spec["model"] or run.strategy != spec["strategy"]:
            continue
        diff = _difference(run.spec, spec)
        score = diff.count(";")
        if best is None or score < best[0]:
            best = (score, f"the prepared {run.strategy} run differs in {diff}")
    return best[1] if best else "none stored"


def stored_runs_of(loaded: LoadedModel) -> list[str]:
    """The strategies of the prepared runs stored for this model's weights (any data or settings).

    The app's runs selector says "prepared" only where there is something to replay.
    """
    folder = store_dir()
    fingerprint = model_fingerprint(loaded)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        run, _ = load(path.stem)  # demos and broken files load as None
        if run is not None and run.spec.get("model") == fingerprint:
            found.append(run.strategy)
    return found


def find(loaded: LoadedModel, examples: Sequence[FormattedExample], strategy: str, settings: BurstSettings,
         predict_text: str, *, explain: bool = True) -> tuple[PreparedRun | None, str]:
    """The prepared run that recorded exactly this burst (or a longer one), if any, or why not
    (`explain`: how the nearest stored run differs, which reads every stored run)."""
    spec = run_spec(model_fingerprint(loaded), examples, strategy, settings, predict_text, library_versions())
    run, why = load(spec_key(spec))
    if run is None and why == "none stored" and explain:
        return None, explain_miss(spec)
    if run is not None and run.epochs < settings.epochs:
        return None, f"prepared for {run.epochs} epochs only"
    return run, why
