"""What both ports' loops do with a connection's socket: serve its poll events, read its bytes
into the engine, flush its output, close it once the engine is done with it. Each function
takes the port's server, which makes the socket calls that differ between the ports
(ports/loop_server.pyi).
"""
from broker.bytesops import const
from broker import lifecycle
from broker.conn import CLOSED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from broker.conn import Conn
    from ports.loop_server import Server

# poll's and epoll's flags: the same values on every port
_IN = const(1)
_OUT = const(4)
_ERR = const(24)  # POLLERR | POLLHUP


def event(server: "Server", conn: "Conn", flags: int) -> None:
    """The poll reported flags for conn's socket."""
    if flags & _OUT:
        flush(server, conn)
    if flags & (_IN | _ERR):
        read(server, conn)


def read(server: "Server", conn: "Conn") -> None:
    b = server.broker
    try:
        n = server.recv(conn.handle, server.scratch)
    except (OSError, ValueError):
        lifecycle.lost(b, conn, "socket error")
        return
    if n is None:
        return
    if n == 0:
        lifecycle.lost(b, conn)
        return
    ws = conn.ws
    if ws is None:
        b.feed(conn, server.scratch, n)
    else:
        ws.read(server.scratch, n)  # MQTT over WebSockets: its frames taken apart first
    if conn.state == CLOSED:
        flush(server, conn)


def flush(server: "Server", conn: "Conn") -> None:
    """Send what conn's output holds, as much as its socket takes now; close the socket once
    the engine is done with it."""
    sock = conn.handle
    if server.key(sock) not in server.conns:
        return
    # over WebSockets, the Ws puts each frame's header before the output and answers HTTP;
    # its chunk() is -1 when a file it serves goes on at the next turn
    src = conn if conn.ws is None else conn.ws  # type: Any
    n = src.chunk()
    while n > 0:
        try:
            sent = server.send(sock, src.cbuf, src.coff, n)
        except (OSError, ValueError):
            drop(server, conn)
            lifecycle.lost(server.broker, conn, "socket error")
            return
        if not sent:
            break
        src.sent(sent)
        if sent < n:
            break
        n = src.chunk()
    if conn.state == CLOSED:
        drop(server, conn)
    elif n:
        # A peer that does not read is not read either, so answers cannot pile up. Half the
        # cap leaves room for the answers to one more read without growing past it.
        server.modify(conn, _OUT if conn.pending() > server.broker.out_soft // 2 else _IN | _OUT)
    else:
        server.modify(conn, _IN)
        server.broker.drained(conn)


def drop(server: "Server", conn: "Conn") -> None:
    """Close conn's socket, once."""
    sock = conn.handle
    if server.conns.pop(server.key(sock), None) is not None:
        server.discard(sock)
        if conn.ws is not None:
            conn.ws.close()
