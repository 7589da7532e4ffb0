"""Bridges on the MicroPython port: one non-blocking TCP connection per bridge, on the server's
poll. connect() on a non-blocking socket raises EINPROGRESS; POLLOUT then says it is up, POLLERR
or POLLHUP that it failed. Imported by the server only when the configuration has a bridge.
"""
import select
import socket

from broker.bridge import Bridge

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict
    from broker.engine import Broker

_IN = select.POLLIN
_OUT = select.POLLOUT
_ERR = select.POLLERR | select.POLLHUP
_EINPROGRESS = 115  # Linux and lwIP alike
_EAGAIN = 11


def _hostname() -> str:
    try:
        import network  # a board: its DHCP host name
        return str(network.hostname())
    except (ImportError, AttributeError, OSError):
        return ""


class Link:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.sock = None  # type: Any
        self.connecting = False


class Links:
    def __init__(self, broker: "Broker", poller: "Any", scratch: bytearray) -> None:
        self.poller = poller
        self.scratch = scratch
        host = _hostname()
        self.links = [Link(Bridge(broker, s, host)) for s in broker.config.bridges]
        self.by_sock = {}  # type: Dict[Any, Link]

    def event(self, sock: "Any", flags: int, now: int) -> None:
        """poll reported flags on sock (ignored unless it is a bridge's socket)."""
        link = self.by_sock.get(sock)
        if link is None:
            return
        b = link.bridge
        if link.connecting:
            if flags & _ERR:
                self._drop(link, now, "connection refused or unreachable")
                return
            link.connecting = False
            b.opened(now)
        elif flags & (_IN | _ERR):
            try:
                n = sock.readinto(self.scratch)
            except OSError as e:
                self._drop(link, now, "socket error %s" % e.args[0])
                return
            if n == 0:
                self._drop(link, now, "closed by the remote broker")
                return
            if n:
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
            # A host name is looked up here, blocking the loop while it lasts; an address in
            # numbers costs nothing.
            addr = socket.getaddrinfo(host, port)[0][-1]
            sock = socket.socket()
        except OSError as e:
            b.lost(now, "cannot resolve %s: %s" % (host, e.args[0]))
            return
        sock.setblocking(False)
        try:
            sock.connect(addr)
        except OSError as e:
            if e.args[0] not in (_EINPROGRESS, _EAGAIN):
                sock.close()
                b.lost(now, "socket error %s" % e.args[0])
                return
        link.sock = sock
        link.connecting = True
        self.by_sock[sock] = link
        self.poller.register(sock, _OUT)

    def _settle(self, link: Link, now: int) -> None:
        """Write what the bridge has; close if it asked to."""
        if not self._flush(link):
            self._drop(link, now, "socket error")
        elif link.bridge.must_close:
            self._drop(link, now, "")
        elif link.sock is not None:
            self.poller.modify(link.sock, _IN | _OUT if link.bridge.pending() else _IN)

    def _flush(self, link: Link) -> bool:
        b = link.bridge
        if link.sock is None or not b.pending():
            return True
        try:
            n = link.sock.write(b.out, b.ooff, b.olen - b.ooff)
        except OSError as e:
            return e.args[0] == _EAGAIN
        b.sent(n or 0)
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
        self.by_sock.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (OSError, ValueError):
            pass
        sock.close()
