"""Lessons 11 to 15 on the embedded Gemma: `lesson N --plain` and the exported script print the
same figures, digit for digit (the tiny model's agreement is in tests/test_lesson_commands.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_lesson_commands import (  # tests/ is on the path
    same_packing_figures,
    same_reasoning_figures,
    same_tool_call_figures,
    same_truncation_figures,
    same_weights_figures,
)

from inspector.cli import main

pytestmark = pytest.mark.integration


def _plain_and_script(capsys, n, tmp_path, *script_args) -> tuple[str, str]:
    assert main(["lesson", str(n), "--plain", "--device", "cpu"]) == 0
    lesson, _ = capsys.readouterr()
    target = tmp_path / f"lesson{n}.py"
    assert main(["export", str(n), "--device", "cpu", "-o", str(target)]) == 0
    capsys.readouterr()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, str(target), *script_args], capture_output=True, text=True, env=env, timeout=900,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return lesson, done.stdout


def test_lesson_11_plain_and_export_agree_on_gemma(capsys, tmp_path):
    same_packing_figures(*_plain_and_script(capsys, 11, tmp_path))


def test_lesson_12_plain_and_export_agree_on_gemma(capsys, tmp_path):
    same_truncation_figures(*_plain_and_script(capsys, 12, tmp_path))


def test_lesson_13_plain_and_export_agree_on_gemma(capsys, tmp_path):
    same_weights_figures(*_plain_and_script(capsys, 13, tmp_path))


def test_lesson_14_plain_and_export_agree_on_gemma(capsys, tmp_path):
    lesson, script = _plain_and_script(capsys, 14, tmp_path)
    same_reasoning_figures(lesson, script)
    # Gemma cuts the think markers into plain tokens; and it merges text across a generation block's edge
    assert "'<think>' is 3 tokens" in lesson and "cross a generation block's edge" in lesson


def test_lesson_15_plain_and_export_agree_on_gemma(capsys, tmp_path):
    same_tool_call_figures(*_plain_and_script(capsys, 15, tmp_path))
