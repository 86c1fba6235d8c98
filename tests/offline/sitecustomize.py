"""Loaded by the subprocesses of test_offline.py: any attempt to reach the network fails loudly,
and is written down.

An audit hook (`sys.addaudithook`) sees every DNS lookup, connect and datagram the process
makes, from any thread and any library (the C calls themselves, whatever Python wrapper
calls them): each one is appended to the file `CAUSALLM_INSPECT_NET_LOG` names and then
refused. A library that swallows the refusal, as Hugging Face's telemetry thread does, is
still caught by the test, which fails on any line of the file. Local sockets (AF_UNIX) are
not the network and pass.

Telemetry is sent from a daemon thread that an exit would cut short, so at exit the process
waits (a few seconds at most) for Hugging Face's telemetry queue to be done: a ping that was
queued is always tried, and so always written down.
"""

import atexit
import os
import socket
import sys
import threading
import time

LOG = os.environ.get("CAUSALLM_INSPECT_NET_LOG")
_LOOKUPS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo")
_ON_A_SOCKET = ("socket.connect", "socket.sendto", "socket.sendmsg")  # args: (socket, address, ...)


def _write(line):
    if LOG:
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8", "backslashreplace"))
        finally:
            os.close(fd)


def _audit(event, args):
    if not event.startswith("socket."):
        return
    if event in _ON_A_SOCKET:
        sock = args[0]
        if getattr(sock, "family", None) == getattr(socket, "AF_UNIX", None):  # local IPC is not the network
            return
        what = f"{event} {args[1]!r}"
    elif event in _LOOKUPS:
        what = f"{event} {args[:2]!r}"
    else:
        return
    _write(f"{what} (thread {threading.current_thread().name})")
    raise OSError(f"network blocked by the test: {what}")


def _let_telemetry_finish():
    telemetry = sys.modules.get("huggingface_hub.utils._telemetry")
    queue = getattr(telemetry, "_TELEMETRY_QUEUE", None)
    deadline = time.monotonic() + 10
    while queue is not None and queue.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.02)
    if queue is not None and queue.unfinished_tasks:
        _write(f"telemetry still queued at exit: {queue.unfinished_tasks}")


sys.addaudithook(_audit)
atexit.register(_let_telemetry_finish)
