"""The parent's side of the label process: your label function runs where it can be stopped.

A `Sandbox` starts the zygote of `child` on first use, hands it the
tokenizers the function is called with, and keeps one warm worker per version of the user's
file (a fork of the zygote: milliseconds). Every call is one request with all its examples,
answered within a time limit per example (`--labels-timeout`, default `protocol.DEFAULT_TIMEOUT` s);
past it, or when the worker dies (a crash, an `os._exit` that got through, the kernel's OOM
killer), the worker is gone, the call comes back as the user's `LabelCodeError` (where it
was, from the watchdog's or `faulthandler`'s frames), and the next call forks a fresh one.
Replacing a version ends its worker, so nothing of an old version keeps a core busy.

Nothing here blocks without a deadline, and `close()` (also at exit) ends the zygote, which
ends its workers; a zygote whose parent died ends them too (it reads the end of its channel).
"""

from __future__ import annotations

import atexit
import os
import pickle
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from inspector.core.data.tokenizer_variants import derivation
from inspector.core.labels.process.channel import Channel
from inspector.core.labels.process.code_errors import WorkerGone
from inspector.core.labels.process.protocol import (
    DEFAULT_TIMEOUT,
    GRACE,
    START_TIMEOUT,
    Answers,
    Call,
    Derive,
    Done,
    Failed,
    Fork,
    HandOver,
    Item,
    Load,
    Loaded,
    NeedTokenizer,
    Printed,
    Refused,
    Status,
    joined,
)

MAX_WORKERS = 3  # warm versions kept at most (the newest); older ones end


def memory_limit() -> int:
    """Bytes of address space a worker may map beyond the zygote's: a quarter of the machine's RAM, 1 to 8 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    return int(min(8 << 30, max(1 << 30, total // 4)))


class _Worker:
    """One worker process: the version it runs, its channel, where faulthandler writes."""

    def __init__(self, pid: int, channel: Any, dump_path: str, generation: int) -> None:
        self.pid = pid
        self.channel = channel
        self.dump_path = dump_path
        self.generation = generation
        self.lock = threading.RLock()
        self.loaded: Loaded | Failed | None = None  # the load request's reply
        self.dead = False

    def read_dump(self) -> str:
        try:
            return Path(self.dump_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


class Sandbox:
    """The label process of this program (see the module's docstring). Thread-safe."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, memory: int | None = None) -> None:
        self.timeout = float(timeout)
        self.memory = memory_limit() if memory is None else memory
        self._lock = threading.RLock()  # the zygote's channel and the table of workers
        self._dir: str | None = None
        self._listener: Any = None
        self._address = ""
        self._zygote: subprocess.Popen[bytes] | None = None
        self._control: Any = None
        self._tokenizers = _TokenizerKeys()  # the zygote's key of each tokenizer handed over
        self._generation = 0  # grows with every tokenizer the zygote gets: older forks lack it
        self._key_generation: dict[str, int] = {}  # tokenizer key -> the generation it came with
        self._workers: dict[str, _Worker] = {}  # version (fingerprint) -> its worker
        self._owner = os.getpid()

    def __reduce__(self) -> Any:
        # Sent to another process (a spawned pool worker): that process's own label process.
        return (default_sandbox, ())

    def _check_owner(self) -> None:
        """In a forked copy of this process the zygote and workers are the parent's: start afresh,
        leaving them alone."""
        if os.getpid() == self._owner:
            return
        self._owner = os.getpid()
        self._lock = threading.RLock()
        self._zygote = None
        self._control = None
        self._listener = None
        self._dir = None
        self._workers = {}
        self._tokenizers = _TokenizerKeys()
        self._key_generation = {}

    # --- the zygote ---------------------------------------------------------------------------

    def _start(self) -> None:
        import socket

        self._check_owner()
        if self._zygote is not None and self._zygote.poll() is None:
            return
        self._stop_zygote()
        self._dir = tempfile.mkdtemp(prefix="causallm-inspect-labels-")
        if hasattr(socket, "AF_UNIX"):
            self._address = os.path.join(self._dir, "s")
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(self._address)
        else:  # no Unix sockets: loopback only, and a token proves who connects
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.bind(("127.0.0.1", 0))
            self._address = f"tcp:127.0.0.1:{self._listener.getsockname()[1]}"
        self._listener.listen(8)
        token = secrets.token_hex(16)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the modules this process sees
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self._zygote = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inspector.core.labels.process.child",
                "zygote",
                self._address,
                token,
                os.path.join(self._dir, "zygote.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=os.name == "posix",
            close_fds=True,
        )
        self._control = self._accept(token, START_TIMEOUT, zygote=True)
        self._tokenizers.clear()
        self._key_generation.clear()

    def _accept(self, token: str, timeout: float, *, zygote: bool = False) -> Any:
        """The channel of the process that connects with `token` (the zygote, or a worker it forked)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (self._zygote is not None and self._zygote.poll() is not None):
                raise RuntimeError(self._start_failure(zygote))
            self._listener.settimeout(min(left, 0.5))
            try:
                sock, _ = self._listener.accept()
            except OSError:  # socket.timeout is an OSError
                continue
            sock.settimeout(None)
            channel = Channel(sock)
            if not channel.readable(5.0):
                channel.close()
                continue
            try:
                said = channel.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                channel.close()
                continue
            if said == token:
                return channel
            channel.close()  # not the one we wait for (a worker that connected late)

    def _start_failure(self, zygote: bool) -> str:
        log = ""
        if self._dir:
            try:
                log = Path(self._dir, "zygote.log").read_text(errors="replace").strip().splitlines()[-1:]
                log = log[0] if log else ""
            except OSError:
                log = ""
        what = "the label process did not start" if zygote else "the label process could not start a worker"
        return f"{what}{': ' + log if log else ''}"

    def _ask(self, request: HandOver | Derive | Fork | Status, timeout: float) -> int | None:
        """A request to the zygote and what it answered (`Done.value`), under the lock."""
        what = type(request).__name__.lower()
        self._control.send(request)
        if not self._control.readable(timeout):
            self._stop_zygote()
            raise RuntimeError(f"the label process did not answer ({what}) within {timeout:.0f} s")
        reply = self._control.recv()
        if isinstance(reply, Refused):
            raise RuntimeError(f"the label process could not {what}: {reply.reason}")
        assert isinstance(reply, Done), reply
        return reply.value

    def _stop_zygote(self) -> None:
        for worker in list(self._workers.values()):
            self._kill(worker)
        self._workers.clear()
        if self._control is not None:
            self._control.close()  # the zygote reads the end, ends its workers and exits
            self._control = None
        if self._zygote is not None:
            try:
                self._zygote.wait(2)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait(2)
            self._zygote = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._dir is not None:
            import shutil

            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def close(self) -> None:
        """End the zygote and every worker (a later call starts them again)."""
        self._check_owner()
        if self._lock.acquire(timeout=0.5):
            try:
                self._stop_zygote()
            finally:
                self._lock.release()
            return
        # Busy handing a tokenizer over or forking: end the processes under it (its wait then fails).
        for worker in list(self._workers.values()):
            self._kill(worker)
        zygote = self._zygote
        if zygote is not None:
            zygote.kill()

    @property
    def zygote_pid(self) -> int | None:
        return self._zygote.pid if self._zygote is not None and self._zygote.poll() is None else None

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers.values() if not w.dead]

    # --- tokenizers ---------------------------------------------------------------------------

    def _tokenizer_key(self, tokenizer: Any) -> str:
        """The zygote's name for `tokenizer`, handing it over first if it has not got it."""
        found = self._tokenizers.get(tokenizer)
        if found is not None:
            return found
        key = secrets.token_hex(6)
        derived = derivation(tokenizer)
        if derived is not None:  # a known variant of another tokenizer: the zygote makes it too
            base, variant = derived
            self._ask(Derive(key, self._tokenizer_key(base), variant), START_TIMEOUT)
        else:
            payload = pickle.dumps(tokenizer, protocol=pickle.HIGHEST_PROTOCOL)
            self._ask(HandOver(key, payload), START_TIMEOUT)
        self._tokenizers.put(tokenizer, key)
        self._generation += 1
        self._key_generation[key] = self._generation
        return key

    def hand_over(self, tokenizer: Any) -> None:
        """Hand `tokenizer` to the label process now (it takes seconds for a large vocabulary), so
        the first call does not wait for it."""
        self._check_owner()
        with self._lock:
            self._start()
            self._tokenizer_key(tokenizer)

    # --- workers ------------------------------------------------------------------------------

    def _fork(self, version: str) -> _Worker:
        token = secrets.token_hex(16)
        assert self._dir is not None
        dump_path = os.path.join(self._dir, f"dump-{secrets.token_hex(4)}")
        Path(dump_path).touch()
        pid = self._ask(Fork(self._address, token, dump_path, self.memory), START_TIMEOUT)
        assert pid is not None
        channel = self._accept(token, START_TIMEOUT)
        worker = _Worker(pid, channel, dump_path, self._generation)
        self._workers[version] = worker
        while len(self._workers) > MAX_WORKERS:  # dicts keep their order: the first is the oldest
            self._kill(self._workers.pop(next(iter(self._workers))))
        return worker

    def _kill(self, worker: _Worker) -> None:
        import signal

        if worker.dead:
            return
        worker.dead = True
        kill = getattr(signal, "SIGKILL", signal.SIGTERM)
        try:
            os.killpg(worker.pid, kill)
        except (OSError, AttributeError):
            try:
                os.kill(worker.pid, kill)
            except OSError:
                pass
        worker.channel.close()

    def _status(self, worker: _Worker) -> int | None:
        with self._lock:
            if self._control is None:
                return None
            try:
                return self._ask(Status(worker.pid, True), 10.0)
            except (RuntimeError, OSError, EOFError):
                return None

    def retire(self, keep: Sequence[str] = ()) -> None:
        """End the workers of every version but `keep` (a newer version replaced them), busy or not."""
        self._check_owner()
        with self._lock:
            for version in [v for v in self._workers if v not in keep]:
                self._kill(self._workers.pop(version))

    def _worker_for(self, version: str, load: Load, tokenizer_keys: Sequence[str]) -> _Worker:
        """A live worker of `version` that has every tokenizer it needs, its file run."""
        with self._lock:
            self._start()
            worker = self._workers.get(version)
            if worker is not None and (worker.dead or worker.generation < self._generation_needed(tokenizer_keys)):
                self._kill(self._workers.pop(version))
                worker = None
            if worker is None:
                worker = self._fork(version)
        with worker.lock:
            if worker.loaded is None:
                worker.loaded = self._request(worker, replace(load, timeout=self.timeout), self.timeout + GRACE)
        return worker

    def _generation_needed(self, keys: Sequence[str]) -> int:
        """The generation at which the last of `keys` reached the zygote (a worker forked before lacks it)."""
        return max((self._key_generation.get(k, 0) for k in keys), default=0)

    def _request(self, worker: _Worker, request: Load | Call, deadline: float) -> Any:
        """Send a request to the worker and wait at most `deadline` seconds for its reply."""
        with worker.lock:
            if worker.dead:
                raise WorkerGone("replaced", None, "")
            try:
                worker.channel.send(request)
                if not worker.channel.readable(deadline):
                    with self._lock:
                        self._forget(worker)
                    raise WorkerGone("timeout", self._status(worker), worker.read_dump())
                return worker.channel.recv()
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                replaced = worker.dead
                with self._lock:
                    self._forget(worker)
                if replaced:
                    raise WorkerGone("replaced", None, "") from exc
                raise WorkerGone("ended", self._status(worker), worker.read_dump()) from exc

    def _forget(self, worker: _Worker) -> None:
        self._kill(worker)
        for version, w in list(self._workers.items()):
            if w is worker:
                del self._workers[version]

    # --- what the label function asks -----------------------------------------------------------

    def load(self, version: str, load: Load) -> Loaded | Failed:
        """Run the file in a fresh worker: what it answered (its printed output with it)."""
        self._check_owner()
        try:
            worker = self._worker_for(version, load, ())
        except WorkerGone as gone:
            return Failed(gone.on(None, self.timeout, while_loading=True))
        reply = worker.loaded
        assert reply is not None
        if not isinstance(reply, Loaded):  # a file that does not load: its worker is of no use
            with self._lock:
                self._forget(worker)
        return reply

    def call(
        self, version: str, load: Load, items: Sequence[Item], tokenizers: Sequence[Any], stop_on_error: bool
    ) -> tuple[list[Any], Printed | None]:
        """Call the function on every item; (per item: its checked return or a Failed, printed output).

        `tokenizers[i]` is the tokenizer item i is called with (its `tokenizer` key is set here).
        A worker that is stopped or dies fails the item it was on; with `stop_on_error` the items
        after it are not run, else a new worker goes on with them.
        """
        self._check_owner()
        results: list[Any] = []
        printed: list[Printed | None] = []
        todo = list(range(len(items)))
        refork = 0
        while todo:
            with self._lock:
                self._start()
                keys = [self._tokenizer_key(tokenizers[i]) for i in todo]
            batch = [replace(items[i], tokenizer=k) for i, k in zip(todo, keys)]
            try:
                worker = self._worker_for(version, load, keys)
                if isinstance(worker.loaded, Failed):
                    return [worker.loaded for _ in items], joined([*printed, worker.loaded.printed])
                reply = self._request(
                    worker, Call(batch, self.timeout, stop_on_error), self.timeout * len(batch) + GRACE
                )
            except WorkerGone as gone:
                # The item it was on: the first with no answer yet.
                at = todo[0]
                results.append(Failed(gone.on(items[at].example, self.timeout)))
                todo = todo[1:]
                if stop_on_error:
                    break
                continue
            if isinstance(reply, NeedTokenizer):  # cannot happen with the generations right; fork anew once
                with self._lock:
                    self._forget(worker)
                refork += 1
                if refork > 1:
                    raise RuntimeError(f"the label process lost a tokenizer ({reply.key})")
                continue
            assert isinstance(reply, Answers), reply
            printed.append(reply.printed)
            results.extend(reply.results)
            todo = todo[len(reply.results) :]
            if stop_on_error and reply.results and isinstance(reply.results[-1], Failed):
                break
        return results, joined(printed)


class _TokenizerKeys:
    """The zygote's key of each tokenizer handed over, owned by the tokenizers (weakly) where they
    allow it, else held."""

    def __init__(self) -> None:
        self._weak: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._held: list[tuple[Any, str]] = []  # tokenizers that are neither hashable nor weakly referable

    def get(self, tokenizer: Any) -> str | None:
        try:
            return self._weak.get(tokenizer)
        except TypeError:
            return next((key for tok, key in self._held if tok is tokenizer), None)

    def put(self, tokenizer: Any, key: str) -> None:
        try:
            self._weak[tokenizer] = key
        except TypeError:
            self._held.append((tokenizer, key))

    def clear(self) -> None:
        self._weak.clear()
        self._held.clear()


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """This process's label process (one for every label function), started on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox()
            atexit.register(_default.close)
        return _default


def close_default() -> None:
    """End this process's label process, if it was started."""
    if _default is not None:
        _default.close()


def set_timeout(seconds: float) -> None:
    """The time limit per example of every label function of this process (`--labels-timeout`)."""
    default_sandbox().timeout = float(seconds)
