"""Loaded by the subprocesses of test_offline.py: any attempt to reach the network fails loudly."""

import socket

_real_connect = socket.socket.connect


def _refuse(self, address):
    if self.family == getattr(socket, "AF_UNIX", None):  # local IPC is not the network
        return _real_connect(self, address)
    raise OSError(f"network blocked by the test: connect to {address}")


socket.socket.connect = _refuse
socket.socket.connect_ex = lambda self, address: _refuse(self, address)
socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(OSError(f"network blocked by the test: {a}"))
socket.getaddrinfo = lambda *a, **k: (_ for _ in ()).throw(OSError(f"network blocked by the test: getaddrinfo {a[:2]}"))
