"""Bridges on the CPython port: ports/bridge_link.py on the server's epoll, through the socket
calls below. Imported by the server only when the configuration has a bridge.

A bridge with a bridge_cafile runs TLS over the connection (ports/cpython/tls.py); its
handshake is driven step by step from the loop, and a failed one costs that attempt only, like a
refused connection.
"""
import errno
import os
import select
import socket

from ports import bridge_link
from ports.cpython.server import Server

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ssl import SSLContext
    from typing import Optional, Union
    from broker.bridge_settings import BridgeSettings
    from broker.engine import Broker

_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)


class _Sockets:
    """The server's socket calls (ports/loop.py's: recv_into and send on non-blocking sockets,
    known to the epoll by file descriptor), and a bridge's own."""

    key = Server.key
    recv = Server.recv
    send = Server.send

    def hostname(self) -> str:
        return socket.gethostname()

    def tls_context(self, s: "BridgeSettings") -> "SSLContext":
        """ConfigError when the bridge's TLS files cannot be used."""
        from ports.cpython.tls import client_context  # only with a TLS bridge
        return client_context(s)

    def open(self, host: str, port: int) -> "Union[socket.socket, str]":
        try:
            # A host name is looked up here, blocking the loop for as long as the lookup takes;
            # an address in numbers costs nothing.
            family, kind, proto, _, addr = socket.getaddrinfo(host, port, 0,
                                                              socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
        except OSError as e:
            return e.strerror or str(e)
        sock.setblocking(False)
        err = sock.connect_ex(addr)
        if err and err not in _IN_PROGRESS:
            sock.close()
            return os.strerror(err)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def step(self, link: bridge_link.Link, flags: int, poller: "select.epoll") -> "Optional[str]":
        sock = link.sock
        if not link.handshaking:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return os.strerror(err)
            if link.tls is None:
                return ""
            try:
                # the host name as written in `address` is what the certificate must name
                sock = link.sock = link.tls.wrap_socket(
                    sock, server_hostname=link.bridge.address()[0], do_handshake_on_connect=False)
            except (OSError, ValueError) as e:
                return "TLS: %s" % e
            link.handshaking = True
        from ports.cpython.tls import HandshakeFailed, handshake  # loaded by tls_context
        try:
            wait = handshake(sock)
        except HandshakeFailed as e:
            return "TLS handshake failed: %s" % e
        if wait:
            poller.modify(sock.fileno(), select.EPOLLIN if wait == "read" else select.EPOLLOUT)
            return None
        link.handshaking = False
        return ""

    def failed(self, link: bridge_link.Link, e: Exception) -> str:
        return getattr(e, "strerror", None) or "socket error"


class Links(bridge_link.Links):
    def __init__(self, broker: "Broker", poller: "select.epoll", scratch: bytearray) -> None:
        """ConfigError when a bridge's TLS files cannot be used."""
        bridge_link.Links.__init__(self, broker, poller, _Sockets(), scratch)
