"""Unix socket listeners (`listener 0 PATH`) for the MicroPython port, on the unix port only.

Imported only when the configuration has a unix socket listener, so a board never loads it.
MicroPython's bind() and connect() take the raw sockaddr bytes, not a path: for AF_UNIX that is
a struct sockaddr_un, sa_family as a native 16-bit integer followed by the NUL-terminated path.
Its os module has stat() and remove() but no chmod(), so `socket_mode` is refused here.
"""
import os
import socket
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List

_S_IFMT = 0o170000
_S_IFSOCK = 0o140000
_ENOENT = 2
_ECONNREFUSED = 111


class ListenError(Exception):
    """A unix socket listener cannot be opened: args are (listener name, reason)."""


def _sockaddr(path: str) -> bytes:
    return struct.pack("H", socket.AF_UNIX) + path.encode() + b"\0"


def _stale(addr: bytes) -> bool:
    """Whether nobody accepts connections on the socket file at addr."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(addr)
    except OSError as e:
        return e.args[0] in (_ECONNREFUSED, _ENOENT)
    finally:
        probe.close()
    return False


def open_unix_listener(path: str, mode: int, files: "List[Any]") -> "Any":
    """A listening AF_UNIX socket at path; a stale socket file there is replaced, a live one or
    a file that is not a socket is refused. Appends (path, st_dev, st_ino) to files, for
    remove_unix_files(). Raises ListenError."""
    name = "unix:" + path
    if not hasattr(socket, "AF_UNIX"):
        raise ListenError(name, "this MicroPython has no unix sockets (socket.AF_UNIX is"
                                " missing; only the unix port has them)")
    if mode >= 0 and not hasattr(os, "chmod"):
        raise ListenError(name, "socket_mode is not supported on MicroPython (its os module"
                                " has no chmod): remove the line, or run the CPython broker")
    addr = _sockaddr(path)
    st = None
    try:
        st = os.stat(path)
    except OSError as e:
        if e.args[0] != _ENOENT:
            raise ListenError(name, str(e))
    if st is not None:
        if st[0] & _S_IFMT != _S_IFSOCK:
            raise ListenError(name, "the file exists and is not a socket (not replacing it)")
        if not _stale(addr):
            raise ListenError(name, "address already in use")
        os.remove(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise ListenError(name, str(e))
    try:
        if mode >= 0:
            os.chmod(path, mode)  # a MicroPython with chmod (none has it today)
        sock.listen(8)
        st = os.stat(path)
    except OSError as e:
        sock.close()
        os.remove(path)
        raise ListenError(name, str(e))
    files.append((path, st[2], st[1]))
    return sock
