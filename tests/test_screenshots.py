"""scripts/screenshots.py makes the docs' pictures with the app: one of them, made here on the tiny model."""

from __future__ import annotations

import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _screenshots():
    spec = importlib.util.spec_from_file_location("screenshots_script", ROOT / "scripts" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def test_the_help_picture_is_the_app_s_own_screenshot(tiny_path, tmp_path):
    shots = _screenshots()
    path = shots.shoot("help", tmp_path / "out", model=str(tiny_path), folder=tmp_path / "work")
    assert path == tmp_path / "out" / "help.svg"
    svg = path.read_text(encoding="utf-8")
    root = ET.fromstring(svg)  # well-formed, and an SVG
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = "".join(root.itertext()).replace("\xa0", " ")
    assert "Ctrl+P" in text and "Esc closes this help" in text  # F1, scrolled to the keys
    assert "causallm-inspect" in text and "tiny" in text  # the header: the app and the model's folder name
    assert str(tmp_path) not in svg


def test_a_picture_that_lacks_what_it_is_of_is_an_error():
    shots = _screenshots()
    shots.contains('<text>Token&#160;grid</text><text>a &lt;bos&gt;</text>', "Token grid", "a <bos>")
    with pytest.raises(shots.ShotError, match="does not show 'perro'"):
        shots.contains("<text>Token&#160;grid</text>", "Token grid", "perro")
    assert set(shots.SHOTS) == {"labels", "lesson", "strategies", "predictions", "batch", "data", "recording",
                                "live-coding", "help"}  # the names the docs link (docs/images/NAME.svg)
