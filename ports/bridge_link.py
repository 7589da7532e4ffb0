"""Bridges on a port's loop: one non-blocking TCP connection per bridge (broker.bridge), on the
server's poller, with the same steps on both ports: connect, read into the server's scratch
buffer, send the bridge's output as a client's is sent (Conn.chunk, Conn.sent, then
Broker.drained), close, and try again when the bridge says so. Imported by the server only
when the configuration has a bridge.

The socket calls, which differ, are behind `io`, an adapter each port's bridge_link.py defines:
  io.key(sock)                    what the server's poller knows the socket as (CPython: its
                                  file descriptor; MicroPython: the socket itself)
  io.hostname()                   this machine's name, for the default remote client id
  io.tls_context(settings)        a bridge's TLS context (bridge_cafile); raises what the
                                  server reports as a configuration error
  io.open(host, port)             a socket whose non-blocking connect has begun, or why not
  io.step(link, flags, poller)    the poller reported flags while the link connects (TCP, then
                                  TLS): None while it goes on, "" once it is up, else why not
  io.recv(sock, buf)              bytes read into buf; 0 at end of file, None when none came
  io.send(sock, buf, off, n)      bytes of buf[off:off + n] written; 0 or None when none could
                                  be (MicroPython's TLS: None until the handshake is done)
  io.failed(link, e)              why recv or send raised e (OSError, or ValueError for TLS)
"""
from broker.bridge import Bridge
from broker.bytesops import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List
    from broker.engine import Broker

# poll's and epoll's flags: the same values on every port
_IN = const(1)
_OUT = const(4)
_ERR = const(24)  # POLLERR | POLLHUP


class Link:
    sock = None  # type: Any
    raw = None  # type: Any  # (MicroPython) the socket under a TLS one: mbedTLS does not close it
    connecting = False  # the TCP connect, then the TLS handshake, in progress
    handshaking = False

    def __init__(self, bridge: Bridge, tls: "Any") -> None:
        self.bridge = bridge
        self.tls = tls  # the port's TLS context, or None


class Links:
    def __init__(self, broker: "Broker", poller: "Any", io: "Any", scratch: bytearray) -> None:
        self.broker = broker
        self.poller = poller  # the server's
        self.io = io
        self.scratch = scratch
        host = io.hostname()
        self.links = []  # type: List[Link]
        for s in broker.config.bridges:
            self.links.append(Link(Bridge(broker, s, host),
                                   io.tls_context(s) if s.cafile else None))

    def event(self, key: "Any", flags: int, now: int) -> None:
        """The poller reported flags for key (ignored unless it is a bridge's socket)."""
        for link in self.links:
            if link.sock is not None and self.io.key(link.sock) == key:
                try:
                    self._event(link, flags, now)
                except MemoryError:
                    # this attempt is lost, not the bridge: it tries again after
                    # restart_timeout, and what it has not sent is still queued
                    self._drop(link, now, "out of memory")
                return

    def _event(self, link: Link, flags: int, now: int) -> None:
        b = link.bridge
        if link.connecting:
            why = self.io.step(link, flags, self.poller)
            if why is None:
                return
            if why:
                self._drop(link, now, why)
                return
            link.connecting = False
            b.opened(now)
        elif flags & (_IN | _ERR):
            try:
                n = self.io.recv(link.sock, self.scratch)
            except (OSError, ValueError) as e:
                self._drop(link, now, self.io.failed(link, e))
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
        sock = self.io.open(host, port)
        if isinstance(sock, str):
            b.lost(now, sock)
            return
        link.sock = sock
        link.connecting = True
        self.poller.register(self.io.key(sock), _OUT)

    def _settle(self, link: Link, now: int) -> None:
        """Write what the bridge has; close if it asked to."""
        why = self._flush(link)
        if why:
            self._drop(link, now, why)
        elif link.bridge.must_close:
            self._drop(link, now, "")
        elif link.sock is not None:
            conn = link.bridge.conn
            if not conn.pending():
                self.broker.drained(conn)
            self.poller.modify(self.io.key(link.sock), _IN | _OUT if conn.pending() else _IN)

    def _flush(self, link: Link) -> str:
        """Why the connection failed, or ""."""
        conn = link.bridge.conn
        sock = link.sock
        if sock is None:
            return ""
        n = conn.chunk()
        while n:
            try:
                sent = self.io.send(sock, conn.cbuf, conn.coff, n)
            except (OSError, ValueError) as e:
                return self.io.failed(link, e)
            if sent is None:
                break
            link.handshaking = False
            conn.sent(sent)
            if sent < n:
                break
            n = conn.chunk()
        return ""

    def _drop(self, link: Link, now: int, reason: str) -> None:
        self._forget(link)
        link.bridge.lost(now, reason)

    def _forget(self, link: Link) -> None:
        sock = link.sock
        if sock is None:
            return
        link.sock = None
        link.connecting = link.handshaking = False
        try:
            self.poller.unregister(self.io.key(sock))
        except (OSError, ValueError):
            pass
        sock.close()
        raw = link.raw
        if raw is not None:
            link.raw = None
            raw.close()
