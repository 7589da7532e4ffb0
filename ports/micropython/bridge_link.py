"""Bridges on the MicroPython port: ports/bridge_link.py on the server's poll, through the
socket calls below. connect() on a non-blocking socket raises EINPROGRESS; POLLOUT then says it
is up, POLLERR or POLLHUP that it failed. Imported by the server only when the configuration has
a bridge.

A bridge with a bridge_cafile wraps the connected socket in TLS (ports/micropython/tls.py) and
sends CONNECT at once: mbedTLS runs the handshake inside the non-blocking writes, which return
None until it is done. A failed handshake (mbedTLS raises ValueError for a certificate) costs
that attempt only, like a refused connection.
"""
import socket

from broker.bytesops import const
from ports import bridge_link
from ports.micropython.server import Server

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional
    from broker.bridge_settings import BridgeSettings
    from broker.engine import Broker

_IN = const(1)  # select.POLLIN, POLLOUT, POLLERR | POLLHUP: the same on every port
_OUT = const(4)
_ERR = const(24)
_EINPROGRESS = const(115)  # Linux and lwIP alike
_EAGAIN = const(11)


def _why(e: Exception) -> str:
    # mbedTLS's ValueError: its lines, one per reason; OSError: an errno or an mbedTLS code
    return "; ".join([w.strip() for w in str(e.args[0] if e.args else e).split("\n")
                      if w.strip()])


class _Sockets:
    """The server's socket calls (ports/loop.py's: readinto and write on non-blocking sockets,
    known to the poll as themselves), and a bridge's own."""

    key = Server.key
    recv = Server.recv
    send = Server.send

    def hostname(self) -> str:
        try:
            import network  # a board: its DHCP host name
            return str(network.hostname())
        except (ImportError, AttributeError, OSError):
            return ""

    def tls_context(self, s: "BridgeSettings") -> "Any":
        """ValueError (ports.micropython.tls.TlsError) when the bridge's TLS cannot be set
        up."""
        from ports.micropython.tls import client_context  # only with a TLS bridge
        return client_context(s)

    def open(self, host: str, port: int) -> "Any":
        try:
            # A host name is looked up here, blocking the loop while it lasts; an address in
            # numbers costs nothing.
            addr = socket.getaddrinfo(host, port)[0][-1]
            sock = socket.socket()
        except OSError as e:
            return "cannot resolve %s: %s" % (host, e.args[0])
        sock.setblocking(False)
        try:
            sock.connect(addr)
        except OSError as e:
            if e.args[0] not in (_EINPROGRESS, _EAGAIN):
                sock.close()
                return "socket error %s" % e.args[0]
        return sock

    def step(self, link: bridge_link.Link, flags: int, poller: "Any") -> "Optional[str]":
        if flags & _ERR:
            return "connection refused or unreachable"
        if link.tls is None:
            return ""
        raw = link.sock
        try:
            sock = link.tls.wrap_socket(raw, server_side=False, do_handshake_on_connect=False,
                                        server_hostname=link.bridge.address()[0])
        except (OSError, ValueError) as e:  # OSError: mbedTLS out of memory
            return "TLS: %s" % _why(e)
        poller.unregister(raw)
        link.raw = raw
        link.sock = sock
        link.handshaking = True  # until a write goes through
        poller.register(sock, _IN | _OUT)
        return ""

    def failed(self, link: bridge_link.Link, e: Exception) -> str:
        if link.handshaking:
            return "TLS handshake failed: %s" % _why(e)
        if isinstance(e, ValueError):
            return "TLS: %s" % _why(e)
        return "socket error %s" % e.args[0]


def links(broker: "Broker", poller: "Any", scratch: bytearray) -> bridge_link.Links:
    """The bridges on the server's poll; ValueError (ports.micropython.tls.TlsError) when a
    bridge's TLS cannot be set up. (A function, not a subclass: a class more would stay on a
    board's heap.)"""
    return bridge_link.Links(broker, poller, _Sockets(), scratch)
