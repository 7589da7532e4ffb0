"""Bridges on the CPython port: one non-blocking TCP connection per bridge, on the server's epoll.

The protocol is broker.bridge's; this file connects, reads, writes and closes. Imported by the
server only when the configuration has a bridge.
"""
import errno
import os
import select
import socket

from broker.bridge import Bridge

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional
    from broker.engine import Broker

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP
_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)


class Link:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.sock = None  # type: Optional[socket.socket]
        self.connecting = False


class Links:
    def __init__(self, broker: "Broker", poller: "select.epoll", scratch: bytearray) -> None:
        self.poller = poller
        self.scratch = scratch
        host = socket.gethostname()
        self.links = [Link(Bridge(broker, s, host)) for s in broker.config.bridges]
        self.by_fd = {}  # type: Dict[int, Link]

    def event(self, fd: int, ev: int, now: int) -> None:
        """epoll reported ev on fd (ignored unless it is a bridge's socket)."""
        link = self.by_fd.get(fd)
        if link is None or link.sock is None:
            return
        b = link.bridge
        if link.connecting:
            err = link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._drop(link, now, os.strerror(err))
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

    def _settle(self, link: Link, now: int) -> None:
        """Write what the bridge has; close if it asked to."""
        if not self._flush(link):
            self._drop(link, now, "socket error")
        elif link.bridge.must_close:
            self._drop(link, now, "")
        elif link.sock is not None:
            self.poller.modify(link.sock.fileno(), _IN | _OUT if link.bridge.pending() else _IN)

    def _flush(self, link: Link) -> bool:
        b = link.bridge
        if link.sock is None or not b.pending():
            return True
        try:
            b.sent(link.sock.send(memoryview(b.out)[b.ooff:b.olen]))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return False
        return True

    def _drop(self, link: Link, now: int, reason: str) -> None:
        self._forget(link)
        link.bridge.lost(now, reason)

    def _forget(self, link: Link) -> None:
        sock = link.sock
        if sock is None:
            return
        link.sock = None
        link.connecting = False
        fd = sock.fileno()
        self.by_fd.pop(fd, None)
        try:
            self.poller.unregister(fd)
        except (OSError, ValueError):
            pass
        sock.close()
