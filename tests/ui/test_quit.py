"""Quit always quits: the app in a real terminal, its label function looping, Ctrl+Q ends the process,
its label process with it, and the terminal is as it was."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal and /proc")


def _read(fd: int, until: float) -> bytes:
    out = b""
    while time.monotonic() < until:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            out += chunk
    return out


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_ctrl_q_quits_while_the_label_function_loops(tiny_path, tmp_path):
    import termios

    pid_file = tmp_path / "pid"
    loop = tmp_path / "loop.py"
    loop.write_text(
        "import os\n"
        "def make_labels(example, tokenizer):\n"
        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    while True:\n"
        "        pass\n"
    )
    main_fd, tty_fd = os.openpty()
    termios_before = termios.tcgetattr(tty_fd)
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "--model", str(tiny_path), "--live",
         "--labels-from", str(loop), "--labels-timeout", "120"],
        stdin=tty_fd, stdout=tty_fd, stderr=tty_fd, env=env, start_new_session=True, close_fds=True,
    )
    try:
        os.set_blocking(main_fd, False)
        screen = b""
        deadline = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < deadline:  # the app is up and calls the function
            screen += _read(main_fd, time.monotonic() + 0.5)
            assert proc.poll() is None, screen[-2000:]
        assert pid_file.exists(), "the label function was never called"
        looping = int(pid_file.read_text())
        assert not _gone(looping)
        os.write(main_fd, b"\x11")  # Ctrl+Q
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            screen += _read(main_fd, time.monotonic() + 0.2)
        assert proc.poll() is not None, "the app did not exit after Ctrl+Q"
        screen += _read(main_fd, time.monotonic() + 0.5)
        assert proc.returncode == 0, screen[-2000:]
        # The terminal is restored: the alternate screen left, the cursor shown, the modes as before.
        assert b"\x1b[?1049l" in screen and b"\x1b[?25h" in screen
        assert termios.tcgetattr(tty_fd) == termios_before
        deadline = time.monotonic() + 10
        while not _gone(looping) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(looping), "the looping label process outlived the app"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main_fd)
        os.close(tty_fd)
