"""What runs in the label process: the zygote, and the worker that runs your label function.

The user's label function never runs in the app's process (`sandbox` is the side that asks;
`protocol` says what the two sides say). `python -m inspector.core.labels.process.child` starts the **zygote**: a small,
single-threaded process that holds the tokenizers the function is called with (unpickled
once; transformers is imported here only then) and forks one **worker** per version of the
user's file. A fork costs milliseconds and shares the tokenizers' memory, so every save gets a
fresh process without paying transformers' import again. Where there is no `fork` (Windows),
the zygote starts each worker as a new interpreter and hands it the tokenizers' pickles.

A worker runs the file and its function for the parent (`worker` loads, calls and checks it), one request at a time, under guards:

- a watchdog (`faulthandler.dump_traceback_later`) stops any call that runs past its time
  limit, writing where it was first, so the parent can say which line looped;
- `faulthandler` writes the Python frames of a crash (a segfault through ctypes, an abort);
- `sys.exit` and `os._exit` raise instead of ending the process;
- an address-space limit turns a huge allocation into a MemoryError;
- everything written to stdout or stderr (fd 1 and 2, from Python or C) is captured, its head
  and tail kept, and sent back with the reply instead of reaching the app's terminal.

Each worker is its own process group, so the parent's kill ends anything it started too.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from inspector.core.labels.process.channel import Channel, open_channel
from inspector.core.labels.process.code_errors import LabelCodeError, ProcessExit, raised_error
from inspector.core.labels.process.protocol import (
    OUTPUT_KEPT,
    Answers,
    Call,
    Derive,
    Done,
    Failed,
    Fork,
    HandOver,
    LabelSource,
    Load,
    Loaded,
    NeedTokenizer,
    Printed,
    Refused,
    Status,
)

_MARKER = b"\0causallm-inspect-output-end\0"

# --- the worker ------------------------------------------------------------------------------


class _Output:
    """fd 1 and fd 2 redirected into a pipe that a thread drains, keeping the head and the tail."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        for fd in (1, 2):
            os.dup2(write_fd, fd)
        os.close(write_fd)
        self._read_fd = read_fd
        self._lock = threading.Lock()
        self._seen_marker = threading.Event()
        self._reset()
        threading.Thread(target=self._drain, name="output", daemon=True).start()

    def _reset(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self._pending = b""

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._read_fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                data = self._pending + chunk
                self._pending = b""
                at = data.find(_MARKER)
                while at >= 0:
                    self._keep(data[:at])
                    data = data[at + len(_MARKER) :]
                    self._seen_marker.set()
                    at = data.find(_MARKER)
                # A marker may be split across reads: hold back what could be its start.
                hold = next(
                    (k for k in range(min(len(_MARKER) - 1, len(data)), 0, -1) if _MARKER.startswith(data[-k:])), 0
                )
                if hold:
                    self._pending = data[-hold:]
                    data = data[:-hold]
                self._keep(data)

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        room = OUTPUT_KEPT - len(self.head)
        if room > 0:
            self.head += data[:room]
        self.tail = (self.tail + data)[-OUTPUT_KEPT:]  # the last bytes, overlapping the head when short

    def collect(self) -> Printed | None:
        """What was printed since the last collect, or None."""
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # the user's code may have replaced or closed them
                pass
        self._seen_marker.clear()
        try:
            os.write(1, _MARKER)
            self._seen_marker.wait(2.0)
        except OSError:
            pass
        with self._lock:
            if not self.total:
                return None
            out = Printed(
                bytes(self.head).decode("utf-8", "replace"), bytes(self.tail).decode("utf-8", "replace"), self.total
            )
            self._reset()
        return out


def _limit_memory(extra: int | None) -> None:
    """At most `extra` bytes of address space beyond what the worker maps now (Linux; elsewhere nothing)."""
    if not extra:
        return
    try:
        import resource

        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft = mapped + extra
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (OSError, ValueError, ImportError, AttributeError):
        pass


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the zygote ends (the zygote forks from its only thread)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Worker:
    """The worker's side: run the user's file, call its function on examples, answer the parent."""

    def __init__(self, channel: Channel, tokenizers: dict[str, Any], dump_path: str, memory: int | None) -> None:
        import faulthandler

        self.channel = channel
        self.tokenizers = tokenizers
        self.function: Any = None
        self.output = _Output()
        self._dump = open(dump_path, "w")  # noqa: SIM115 (open for the process's life: faulthandler writes to it)
        faulthandler.enable(file=self._dump, all_threads=True)
        real_exit = os._exit

        def _exit(code: Any = 0) -> None:
            raise ProcessExit(code)

        setattr(os, "_exit", _exit)  # noqa: B010 (a patch: os._exit ends the worker with a report, not silently)
        posix = sys.modules.get("posix") or sys.modules.get("nt")
        if posix is not None:
            setattr(posix, "_exit", _exit)  # noqa: B010
        self._real_exit = real_exit
        _limit_memory(memory)

    def serve(self) -> None:
        while True:
            try:
                request = self.channel.recv()
            except (EOFError, OSError):
                self._real_exit(0)
            if isinstance(request, Load):
                reply: Any = self._guarded(self._load, request, timeout=request.timeout)
            elif isinstance(request, Call):
                reply = self._call(request)
            else:
                reply = Failed(
                    {
                        "kind": "exception",
                        "file": "",
                        "line": None,
                        "message": f"unknown request {type(request).__name__}",
                    }
                )
            reply = replace(reply, printed=self.output.collect())
            try:
                self.channel.send(reply)
            except (OSError, pickle.PicklingError, TypeError) as exc:
                self.channel.send(
                    Failed(
                        {
                            "kind": "wrong-return",
                            "file": "",
                            "line": None,
                            "message": f"the reply could not be sent: {exc}",
                        }
                    )
                )

    def _guarded(self, fn: Any, *args: Any, timeout: float, **kwargs: Any) -> Any:
        """Call `fn` with the watchdog armed: past `timeout` s the process writes where it was and exits."""
        import faulthandler

        faulthandler.dump_traceback_later(timeout, exit=True, file=self._dump)
        try:
            return fn(*args, **kwargs)
        finally:
            faulthandler.cancel_dump_traceback_later()

    def _load(self, load: Load) -> Loaded | Failed:
        from inspector.core.labels.process.worker import run_label_file  # in the worker only, after the fork

        try:
            self.function = run_label_file(LabelSource(Path(load.file), load.function), load.text, load.kind)
        except LabelCodeError as exc:
            return Failed(exc.to_dict())
        except BaseException as exc:  # noqa: BLE001 (sys.exit, os._exit, MemoryError at the file's top level)
            return Failed(raised_error(exc, load.file, load.text, load.function, while_loading=True).to_dict())
        return Loaded(self.function.def_line)

    def _call(self, call: Call) -> Answers | NeedTokenizer:
        fn = self.function
        results: list[Any] = []
        for item in call.items:
            tok = self.tokenizers.get(item.tokenizer)
            if tok is None:
                return NeedTokenizer(item.tokenizer)
            try:
                results.append(self._guarded(fn.answer, item, tok, timeout=call.timeout))
            except LabelCodeError as exc:
                results.append(Failed(exc.to_dict()))
            except BaseException as exc:  # noqa: BLE001 (sys.exit, os._exit inside the function)
                results.append(Failed(raised_error(exc, fn.file, fn.text, fn.name, example=item.example).to_dict()))
            if call.stop_on_error and isinstance(results[-1], Failed):
                break
        return Answers(results)


def _start_worker(address: str, token: str, tokenizers: dict[str, Any], dump_path: str, memory: int | None) -> None:
    """The worker's first steps, in its own process (forked or spawned)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
    except (AttributeError, OSError):
        pass
    channel = open_channel(address, token)
    Worker(channel, tokenizers, dump_path, memory).serve()


# --- the zygote ------------------------------------------------------------------------------


class Zygote:
    """Holds the tokenizers and forks workers; ends them all when the parent goes."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.tokenizers: dict[str, Any] = {}
        self.pickles: dict[str, bytes] = {}  # for spawned workers, where there is no fork
        self.workers: dict[int, Any] = {}  # pid -> Popen (spawned) or None (forked)
        self.statuses: dict[int, int] = {}

    def serve(self) -> None:
        try:
            while True:
                try:
                    request = self.channel.recv()
                except (EOFError, OSError):
                    return
                self._reap()
                try:
                    reply = self._handle(request)
                except Exception as exc:  # noqa: BLE001 (a tokenizer that does not unpickle, a failed fork)
                    reply = Refused(f"{type(exc).__name__}: {exc}")
                self.channel.send(reply)
        finally:
            self._end_all()

    def _handle(self, request: Any) -> Any:
        if isinstance(request, HandOver):
            self.tokenizers[request.key] = pickle.loads(request.payload)  # noqa: S301 (the parent's own tokenizer)
            self.pickles[request.key] = request.payload
            return Done()
        if isinstance(request, Derive):
            self.tokenizers[request.key] = request.variant.make(self.tokenizers[request.base])
            if not hasattr(os, "fork"):
                self.pickles[request.key] = pickle.dumps(self.tokenizers[request.key])
            return Done()
        if isinstance(request, Fork):
            return Done(self._fork(request.address, request.token, request.dump_path, request.memory))
        if isinstance(request, Status):
            return Done(self._status(request.pid, wait=request.wait))
        return Refused(f"unknown request {type(request).__name__}")

    def _fork(self, address: str, token: str, dump_path: str, memory: int | None) -> int:
        if hasattr(os, "fork"):
            pid = os.fork()
            if pid == 0:  # the worker
                try:
                    self.channel.close()
                    _die_with_parent()
                    _start_worker(address, token, self.tokenizers, dump_path, memory)
                finally:
                    os._exit(0)
            self.workers[pid] = None
            return pid
        import subprocess

        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inspector.core.labels.process.child",
                "worker",
                address,
                token,
                dump_path,
                str(memory or 0),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(self.pickles))
        proc.stdin.close()
        self.workers[proc.pid] = proc
        return proc.pid

    def _reap(self) -> None:
        for pid in list(self.workers):
            self._status(pid, wait=False)

    def _status(self, pid: int, wait: bool = True) -> int | None:
        """The worker's exit status as `subprocess` gives it (negative: the signal), once it has ended."""
        if pid in self.statuses:
            return self.statuses[pid]
        if pid not in self.workers:
            return None
        proc = self.workers[pid]
        if proc is not None:
            try:
                code = proc.wait(5) if wait else proc.poll()
            except Exception:  # noqa: BLE001 (subprocess.TimeoutExpired)
                code = None
        else:
            try:
                done, status = os.waitpid(pid, 0 if wait else os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                return None
            code = os.waitstatus_to_exitcode(status)
        if code is not None:
            self.statuses[pid] = code
            self.workers.pop(pid, None)
        return code

    def _end_all(self) -> None:
        import signal

        for pid in list(self.workers):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (OSError, AttributeError):
                try:
                    os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
                except OSError:
                    pass
            self._status(pid, wait=False)


def zygote_main(address: str, token: str, log_path: str) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Nothing the libraries print may reach the parent's terminal.
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for fd in (1, 2):
        os.dup2(log, fd)
    os.close(log)
    Zygote(open_channel(address, token)).serve()


def _spawned_worker_main(address: str, token: str, dump_path: str, memory: str) -> None:
    """A worker started as a new interpreter (no fork): its tokenizers come on stdin."""
    pickles = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 (from our own zygote)
    tokenizers = {key: pickle.loads(payload) for key, payload in pickles.items()}  # noqa: S301
    _start_worker(address, token, tokenizers, dump_path, int(memory) or None)


if __name__ == "__main__":
    if sys.argv[1] == "zygote":
        zygote_main(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "worker":
        _spawned_worker_main(*sys.argv[2:6])
