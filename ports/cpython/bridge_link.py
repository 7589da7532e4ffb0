"""Bridges on the CPython port: one non-blocking TCP connection per bridge, on the server's epoll.

The protocol is broker.bridge's; this file connects, reads, writes and closes. Imported by the
server only when the configuration has a bridge. A bridge with a bridge_cafile runs TLS over the
connection (ports/cpython/tls.py); its handshake is driven step by step from the loop, and a
failed one costs that attempt only, like a refused connection.
"""
import errno
import os
import select
import socket

from broker.bridge import Bridge

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ssl import SSLContext
    from typing import Dict, Optional
    from broker.engine import Broker

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP
_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)


class Link:
    def __init__(self, bridge: Bridge, tls: "Optional[SSLContext]") -> None:
        self.bridge = bridge
        self.tls = tls
        self.sock = None  # type: Optional[socket.socket]
        self.connecting = False  # the TCP connect, then the TLS handshake, in progress
        self.handshaking = False


class Links:
    def __init__(self, broker: "Broker", poller: "select.epoll", scratch: bytearray) -> None:
        """ConfigError when a bridge's TLS files cannot be used."""
        self.broker = broker
        self.poller = poller
        self.scratch = scratch
        host = socket.gethostname()
        self.links = []  # type: list[Link]
        for s in broker.config.bridges:
            ctx = None
            if s.cafile:
                from ports.cpython.tls import client_context  # only with a TLS bridge
                ctx = client_context(s)
            self.links.append(Link(Bridge(broker, s, host), ctx))
        self.by_fd = {}  # type: Dict[int, Link]

    def event(self, fd: int, ev: int, now: int) -> None:
        """epoll reported ev on fd (ignored unless it is a bridge's socket)."""
        link = self.by_fd.get(fd)
        if link is None or link.sock is None:
            return
        b = link.bridge
        if link.connecting:
            if link.handshaking:
                self._handshake(link, now)
                return
            err = link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._drop(link, now, os.strerror(err))
                return
            if link.tls is not None:
                self._start_tls(link, now)
                return
            link.connecting = False
            b.opened(now)
        elif ev & (_IN | _ERR):
            try:
                n = link.sock.recv_into(self.scratch)
            except (BlockingIOError, InterruptedError):
                n = -1
            except OSError as e:
                self._drop(link, now, e.strerror or "socket error")
                return
            if n == 0:
                self._drop(link, now, "closed by the remote broker")
                return
            if n > 0:
                b.feed(self.scratch, n)
        self._settle(link, now)

    def tick(self, now: int) -> None:
        """Timers, connection attempts that are due, and output (a local publish may have
        given a bridge something to send during this turn)."""
        for link in self.links:
            b = link.bridge
            b.tick(now)
            if link.sock is None:
                if b.due(now):
                    self._open(link, now)
            elif not link.connecting:
                self._settle(link, now)
            elif b.must_close:
                self._drop(link, now, "")

    def close(self) -> None:
        """The server is stopping: a last word to each remote broker, then close."""
        for link in self.links:
            if link.sock is not None and not link.connecting:
                link.bridge.stop()
                self._flush(link)
            self._forget(link)

    def _open(self, link: Link, now: int) -> None:
        b = link.bridge
        host, port = b.address()
        b.connecting(now)
        try:
            # A host name is looked up here, blocking the loop for as long as the lookup takes;
            # an address in numbers costs nothing.
            family, kind, proto, _, addr = socket.getaddrinfo(host, port, 0,
                                                              socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
        except OSError as e:
            b.lost(now, e.strerror or str(e))
            return
        sock.setblocking(False)
        err = sock.connect_ex(addr)
        if err and err not in _IN_PROGRESS:
            sock.close()
            b.lost(now, os.strerror(err))
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link.sock = sock
        link.connecting = True
        self.by_fd[sock.fileno()] = link
        self.poller.register(sock.fileno(), _OUT)

    def _start_tls(self, link: Link, now: int) -> None:
        assert link.tls is not None and link.sock is not None
        try:
            # the host name as written in `address` is what the certificate must name
            link.sock = link.tls.wrap_socket(link.sock, server_hostname=link.bridge.address()[0],
                                             do_handshake_on_connect=False)
        except (OSError, ValueError) as e:
            self._drop(link, now, "TLS: %s" % e)
            return
        link.handshaking = True
        self._handshake(link, now)

    def _handshake(self, link: Link, now: int) -> None:
        from ports.cpython.tls import HandshakeFailed, handshake  # loaded by _start_tls
        sock = link.sock
        assert sock is not None
        try:
            wait = handshake(sock)  # type: ignore[arg-type]  # wrapped by _start_tls
        except HandshakeFailed as e:
            self._drop(link, now, "TLS handshake failed: %s" % e)
            return
        if wait:
            self.poller.modify(sock.fileno(), _IN if wait == "read" else _OUT)
            return
        link.connecting = link.handshaking = False
        link.bridge.opened(now)
        self._settle(link, now)

    def _settle(self, link: Link, now: int) -> None:
        """Write what the bridge has; close if it asked to."""
        if not self._flush(link):
            self._drop(link, now, "socket error")
        elif link.bridge.must_close:
            self._drop(link, now, "")
        elif link.sock is not None:
            conn = link.bridge.conn
            if not conn.pending():
                self.broker.drained(conn)
            self.poller.modify(link.sock.fileno(), _IN | _OUT if conn.pending() else _IN)

    def _flush(self, link: Link) -> bool:
        conn = link.bridge.conn
        sock = link.sock
        if sock is None:
            return True
        n = conn.chunk()
        while n:
            try:
                sent = sock.send(memoryview(conn.cbuf)[conn.coff:conn.coff + n])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return False
            conn.sent(sent)
            if sent < n:
                break
            n = conn.chunk()
        return True

    def _drop(self, link: Link, now: int, reason: str) -> None:
        self._forget(link)
        link.bridge.lost(now, reason)

    def _forget(self, link: Link) -> None:
        sock = link.sock
        if sock is None:
            return
        link.sock = None
        link.connecting = link.handshaking = False
        fd = sock.fileno()
        self.by_fd.pop(fd, None)
        try:
            self.poller.unregister(fd)
        except (OSError, ValueError):
            pass
        sock.close()
