"""Model loading offline, the cache folder and its completeness rule, device choice."""

from __future__ import annotations

import json

import pytest

from inspector.core import models
from inspector.core.errors import InspectorError


def test_local_folder_loads_with_right_padding(tiny_path):
    lm = models.load_model(str(tiny_path), device="cpu")
    assert lm.source == "folder" and lm.device == "cpu" and lm.from_cache
    assert lm.tokenizer.padding_side == "right"
    assert lm.max_length == 128
    assert not lm.trust_remote_code


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "here"))
    assert models.cache_dir() == tmp_path / "here"
    assert models.embedded_cache_path().parent == tmp_path / "here" / "models"


def test_cache_dir_default_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(models.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "xdg" / "causallm-inspect"


def test_a_cache_folder_counts_only_when_complete(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    assert not models.cache_is_complete(folder)  # no marker: a conversion that did not finish
    (folder / models._COMPLETE).write_text(json.dumps({"format": models.CACHE_FORMAT, "files": ["model.safetensors"]}))
    assert models.cache_is_complete(folder)
    meta = {"format": models.CACHE_FORMAT, "files": ["model.safetensors"], "sizes": {"model.safetensors": 1}}
    (folder / models._COMPLETE).write_text(json.dumps(meta))
    assert models.cache_is_complete(folder)
    (folder / "model.safetensors").write_bytes(b"xy")
    assert not models.cache_is_complete(folder)  # a file of another size: truncated or replaced
    (folder / "model.safetensors").write_bytes(b"x")
    meta["xxh3"] = {"model.safetensors": models._xxh3(folder / "model.safetensors")}
    (folder / models._COMPLETE).write_text(json.dumps(meta))
    assert models.cache_is_complete(folder)
    (folder / "model.safetensors").write_bytes(b"y")  # same size, other bytes: a checksum mismatch
    assert not models.cache_is_complete(folder)
    (folder / "model.safetensors").write_bytes(b"x")
    (folder / "model.safetensors").unlink()
    assert not models.cache_is_complete(folder)  # a file it lists went missing
    (folder / models._COMPLETE).write_text("{broken")
    assert not models.cache_is_complete(folder)


def test_failed_conversion_leaves_no_half_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF but not really")
    with pytest.raises(InspectorError, match="could not be read as a GGUF model"):
        models.load_model(str(bad), device="cpu")
    leftovers = [p.name for p in (tmp_path / "cache" / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_devices(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.pick_device("cpu") == "cpu"
    assert models.pick_device(None) in ("cpu", "mps")
    with pytest.raises(InspectorError, match="no CUDA GPU"):
        models.pick_device("cuda")
    with pytest.raises(InspectorError, match="unknown device"):
        models.pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.pick_device("auto") == "cuda"


def test_a_file_that_is_not_a_model(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hi")
    with pytest.raises(InspectorError, match="is a file, not a model folder"):
        models.load_model(str(f), device="cpu")


def test_cache_report_lists_entries(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    (tmp_path / "models" / "half").mkdir(parents=True)
    report = models.cache_report()
    assert report["cache_dir"] == str(tmp_path)
    assert report["entries"] == [{"name": "half", "path": str(tmp_path / "models" / "half"), "complete": False, "bytes": 0}]
    assert report["embedded"]["converted"] is False


def test_hub_id_loads_from_the_local_hugging_face_cache_without_network(tiny_path, tmp_path, monkeypatch):
    """A model id works when it is in the HF cache (as after `hf download`); nothing is fetched."""
    import shutil

    hub = tmp_path / "hub"
    snap = hub / "models--someone--tiny-chat" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_path, snap)
    (hub / "models--someone--tiny-chat" / "refs").mkdir()
    (hub / "models--someone--tiny-chat" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hub))
    lm = models.load_model("someone/tiny-chat", device="cpu")
    assert lm.source == "hub" and lm.name == "someone/tiny-chat"
    assert lm.tokenizer.bos_token == "<s>"
