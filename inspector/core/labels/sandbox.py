"""The parent's side of the label process: your label function runs where it can be stopped.

A `Sandbox` starts the zygote of `inspector.core.labels.child` on first use, hands it the
tokenizers the function is called with, and keeps one warm worker per version of the user's
file (a fork of the zygote: milliseconds). Every call is one request with all its examples,
answered within a time limit per example (`--labels-timeout`, default `DEFAULT_TIMEOUT` s);
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 5.0  # seconds per example a label function may take
START_TIMEOUT = 60.0  # the zygote's start and a tokenizer's hand-over (transformers' import, a big vocabulary)
MAX_WORKERS = 3  # warm versions kept at most (the newest); older ones end
GRACE = 3.0  # beyond the watchdog's own limit, before the parent kills a worker itself
_derived: dict[int, tuple[Any, Any, str]] = {}  # id(tokenizer) -> (its weakref, its base's, "module:function")


def note_derived(tokenizer: Any, base: Any, recipe: str) -> None:
    """`tokenizer` is `recipe(base)`, `recipe` a "module:function" of ours: the label process makes
    its own copy that way instead of receiving a pickle of it (seconds for a big vocabulary)."""
    _derived[id(tokenizer)] = (weakref.ref(tokenizer), weakref.ref(base), recipe)


def _derivation(tokenizer: Any) -> tuple[Any, str] | None:
    found = _derived.get(id(tokenizer))
    if found is None or found[0]() is not tokenizer or found[1]() is None:
        return None
    return found[1](), found[2]


def memory_limit() -> int:
    """Bytes of address space a worker may map beyond the zygote's: a quarter of the machine's RAM, 1 to 8 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    return int(min(8 << 30, max(1 << 30, total // 4)))


class WorkerGone(Exception):
    """The worker ended (or was ended) before it answered; `status` says how, `dump` what it wrote."""

    def __init__(self, why: str, status: int | None, dump: str) -> None:
        self.why = why  # "timeout" (the parent's deadline), "ended", "replaced", "closed"
        self.status = status
        self.dump = dump
        super().__init__(why)

    def to_dict(self, example: int | None, timeout: float, *, while_loading: bool = False) -> dict[str, Any]:
        """What the caller turns into the user's error (`custom.stopped_error`): how it ended, on what."""
        return {"gone": self.why, "status": self.status, "dump": self.dump, "example": example,
                "timeout": timeout, "while_loading": while_loading}


KEPT = 4000  # characters of printed output kept from its start, and from its end


@dataclass
class Printed:
    """What a call of the function printed (stdout and stderr): its first and last `KEPT`
    characters (the same text when it is short) and its size in bytes."""

    head: str
    tail: str
    bytes: int

    @property
    def whole(self) -> bool:
        """Whether `head` is all of it."""
        return self.bytes <= len(self.head.encode())

    def then(self, later: Printed | None) -> Printed:
        """This output followed by `later`'s."""
        if later is None:
            return self
        head = (self.head + later.head)[:KEPT] if self.whole else self.head
        tail = (self.tail + later.tail)[-KEPT:] if later.whole else later.tail
        return Printed(head, tail, self.bytes + later.bytes)

    def text(self, limit: int = 2000) -> str:
        """The output as a user reads it: all of it when short, else its start and end with a note."""
        if self.whole and len(self.head) <= limit:
            return self.head
        half = limit // 2
        return f"{self.head[:half]}\n… ({self.bytes:,} bytes in all; the first and last lines shown) …\n{self.tail[-half:]}"


class _Worker:
    """One worker process: the version it runs, its channel, where faulthandler writes."""

    def __init__(self, pid: int, channel: Any, dump_path: str, generation: int) -> None:
        self.pid = pid
        self.channel = channel
        self.dump_path = dump_path
        self.generation = generation
        self.lock = threading.RLock()
        self.loaded: dict[str, Any] | None = None  # the load request's reply
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
        self._tokenizers: dict[int, tuple[Any, str]] = {}  # id(tokenizer) -> (weakref or object, key)
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
        self._tokenizers = {}
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
            [sys.executable, "-m", "inspector.core.labels.child", "zygote", self._address, token,
             os.path.join(self._dir, "zygote.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, start_new_session=os.name == "posix", close_fds=True,
        )
        self._control = self._accept(token, START_TIMEOUT, zygote=True)
        self._tokenizers.clear()
        self._key_generation.clear()

    def _accept(self, token: str, timeout: float, *, zygote: bool = False) -> Any:
        """The channel of the process that connects with `token` (the zygote, or a worker it forked)."""
        from inspector.core.labels.channel import Channel

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

    def _ask(self, request: tuple[Any, ...], timeout: float) -> tuple[Any, ...]:
        """A request to the zygote and its reply (under the lock)."""
        self._control.send(request)
        if not self._control.readable(timeout):
            self._stop_zygote()
            raise RuntimeError(f"the label process did not answer ({request[0]}) within {timeout:.0f} s")
        reply = self._control.recv()
        if reply[0] == "failed":
            raise RuntimeError(f"the label process could not {request[0]}: {reply[1]}")
        return reply

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
        found = self._tokenizers.get(id(tokenizer))
        if found is not None:
            ref, key = found
            if (ref() if isinstance(ref, weakref.ref) else ref) is tokenizer:
                return key
        key = secrets.token_hex(6)
        derived = _derivation(tokenizer)
        if derived is not None:  # made from another tokenizer by a function of ours: the zygote makes it too
            base, recipe = derived
            self._ask(("derive", key, self._tokenizer_key(base), recipe), START_TIMEOUT)
        else:
            payload = pickle.dumps(tokenizer, protocol=pickle.HIGHEST_PROTOCOL)
            self._ask(("tokenizer", key, payload), START_TIMEOUT)
        try:
            ref: Any = weakref.ref(tokenizer)
        except TypeError:
            ref = tokenizer
        self._tokenizers[id(tokenizer)] = (ref, key)
        self._generation += 1
        self._key_generation[key] = self._generation
        return key

    def prepare(self, tokenizer: Any) -> None:
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
        _, pid = self._ask(("fork", self._address, token, dump_path, self.memory), START_TIMEOUT)
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
                return self._ask(("status", worker.pid, True), 10.0)[1]
            except (RuntimeError, OSError, EOFError):
                return None

    def retire(self, keep: Sequence[str] = ()) -> None:
        """End the workers of every version but `keep` (a newer version replaced them), busy or not."""
        self._check_owner()
        with self._lock:
            for version in [v for v in self._workers if v not in keep]:
                self._kill(self._workers.pop(version))

    def _worker_for(self, version: str, load: dict[str, Any], tokenizer_keys: Sequence[str]) -> _Worker:
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
                worker.loaded = self._request(worker, ("load", load, self.timeout), self.timeout + GRACE)
        return worker

    def _generation_needed(self, keys: Sequence[str]) -> int:
        """The generation at which the last of `keys` reached the zygote (a worker forked before lacks it)."""
        return max((self._key_generation.get(k, 0) for k in keys), default=0)

    def _request(self, worker: _Worker, request: tuple[Any, ...], deadline: float) -> tuple[Any, ...]:
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

    def load(self, version: str, file: str, text: str, function: str,
             params: Sequence[str] = ("example", "tokenizer")) -> tuple[Any, ...]:
        """Run the file in a fresh worker: ("loaded", info, printed) or ("error", LabelCodeError dict, printed).

        `params`: the parameters the function must take."""
        self._check_owner()
        spec = {"file": file, "text": text, "function": function, "params": list(params)}
        try:
            worker = self._worker_for(version, spec, ())
        except WorkerGone as gone:
            return ("error", gone.to_dict(None, self.timeout, while_loading=True), None)
        reply = worker.loaded
        assert reply is not None
        if reply[0] != "loaded":  # a file that does not load: its worker is of no use
            with self._lock:
                self._forget(worker)
        return reply

    def call(self, version: str, load: dict[str, Any], items: Sequence[dict[str, Any]], tokenizers: Sequence[Any],
             stop_on_error: bool) -> tuple[list[Any], Any]:
        """Call the function on every item; (per item: labels or a LabelCodeError dict, printed output).

        `tokenizers[i]` is the tokenizer item i is called with. A worker that is stopped or dies
        fails the item it was on; with `stop_on_error` the items after it are not run, else a new
        worker goes on with them.
        """
        self._check_owner()
        results: list[Any] = []
        printed: list[Any] = []
        todo = list(range(len(items)))
        refork = 0
        while todo:
            with self._lock:
                self._start()
                keys = [self._tokenizer_key(tokenizers[i]) for i in todo]
            batch = [dict(items[i], tokenizer=k) for i, k in zip(todo, keys)]
            try:
                worker = self._worker_for(version, load, keys)
                if worker.loaded and worker.loaded[0] == "error":
                    error = dict(worker.loaded[1])
                    return [error for _ in items], _printed(printed + [worker.loaded[2]])
                reply = self._request(worker, ("label", batch, self.timeout, stop_on_error),
                                      self.timeout * len(batch) + GRACE)
            except WorkerGone as gone:
                # The item it was on: the first with no answer yet.
                at = todo[0]
                results.append(gone.to_dict(items[at].get("example"), self.timeout))
                todo = todo[1:]
                if stop_on_error:
                    break
                continue
            if reply[0] == "need-tokenizer":  # cannot happen with the generations right; fork anew once
                with self._lock:
                    self._forget(worker)
                refork += 1
                if refork > 1:
                    raise RuntimeError(f"the label process lost a tokenizer ({reply[1]})")
                continue
            _, answers, out = reply
            printed.append(out)
            results.extend(answers)
            todo = todo[len(answers):]
            if stop_on_error and answers and not isinstance(answers[-1], list):
                break
        return results, _printed(printed)


def _printed(outputs: Sequence[Any]) -> Printed | None:
    out: Printed | None = None
    for o in outputs:
        if o:
            p = Printed(o["head"], o["tail"], o["bytes"])
            out = p if out is None else out.then(p)
    return out


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
