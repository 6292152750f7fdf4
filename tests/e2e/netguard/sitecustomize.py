"""Loaded at start-up by every Python process of an e2e test (via PYTHONPATH): refuses and logs
any name lookup or connection that is not local, so a test can assert that nothing tried."""

import os
import socket

_LOG = os.environ.get("GREENBENCH_NETLOG")
_LOCAL = {"localhost", "127.0.0.1", "::1", "", None}


def _refuse(what: str) -> None:
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {what}\n")
    raise OSError(f"network access refused in greenbench tests: {what}")


_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host not in _LOCAL:
        _refuse(f"getaddrinfo {host}")
    return _getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self, address):  # type: ignore[no-untyped-def]
    host = address[0] if isinstance(address, tuple) else None
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOCAL:
        _refuse(f"connect {address}")
    return _connect(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
