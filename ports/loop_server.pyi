# The port's server as ports/loop.py uses it: ports/cpython/server.py's and
# ports/micropython/server.py's Server both are one. Only mypy reads this file: in loop.py
# itself, the text would be parsed and compiled from source on MicroPython, in the heap.
from typing import Any, Dict, Optional, Protocol

from broker.conn import Conn
from broker.engine import Broker


class Server(Protocol):
    broker: Broker
    conns: Dict[Any, Conn]  # key(sock) -> its connection, for every socket being served
    scratch: bytearray  # every read lands here, and the engine parses it in place

    # The socket calls, which differ between the ports. recv and send raise OSError, or
    # ValueError (mbedTLS refusing a client certificate), when the connection has failed.

    def key(self, sock: Any) -> Any:
        """What the poll reports sock as: its file descriptor on CPython, the socket itself on
        MicroPython."""

    def recv(self, sock: Any, buf: bytearray) -> Optional[int]:
        """Bytes read into buf; 0 at end of file, None when none has come."""

    def send(self, sock: Any, buf: Any, off: int, n: int) -> Optional[int]:
        """Bytes of buf[off:off + n] written; 0 or None when none could be."""

    def modify(self, conn: Conn, mask: int) -> None:
        """Poll conn's socket for mask: POLLIN, POLLOUT or both."""

    def discard(self, sock: Any) -> None:
        """Take sock out of the poll, and close it."""
