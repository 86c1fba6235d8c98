"""The label process's messages: length-prefixed pickles over a local socket, both ways.

Only this program's own processes are at either end (the listener is a private folder's Unix
socket, or loopback TCP with a token where there are no Unix sockets).
"""

from __future__ import annotations

import pickle
from typing import Any


def connect(address: str) -> Any:
    """A socket connected to the parent's listener: a path (AF_UNIX) or `host:port` (loopback TCP)."""
    import socket

    if hasattr(socket, "AF_UNIX") and not address.startswith("tcp:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
    else:
        host, _, port = address[len("tcp:") :].rpartition(":")
        sock = socket.create_connection((host, int(port)))
    return sock


class Channel:
    """Pickled messages, each prefixed with its length, over a connected socket."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(len(data).to_bytes(8, "little") + data)

    def _read(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        while view:
            got = self.sock.recv_into(view, min(len(view), 1 << 20))
            if not got:
                raise EOFError("the other side closed the channel")
            view = view[got:]
        return bytes(buf)

    def recv(self) -> Any:
        size = int.from_bytes(self._read(8), "little")
        return pickle.loads(self._read(size))  # noqa: S301 (between our own processes)

    def readable(self, timeout: float | None) -> bool:
        """Whether a message (or the end) can be read within `timeout` seconds."""
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            return bool(sel.select(timeout))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def open_channel(address: str, token: str) -> Channel:
    """Connect to the parent and say who this is."""
    channel = Channel(connect(address))
    channel.send(token)
    return channel
