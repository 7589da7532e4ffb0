"""Bridges on the MicroPython port: one non-blocking TCP connection per bridge, on the server's
poll. connect() on a non-blocking socket raises EINPROGRESS; POLLOUT then says it is up, POLLERR
or POLLHUP that it failed. Imported by the server only when the configuration has a bridge.

A bridge with a bridge_cafile wraps the connected socket in TLS (ports/micropython/tls.py) and
sends CONNECT at once: mbedTLS runs the handshake inside the non-blocking writes, which return
None until it is done. A failed handshake (mbedTLS raises ValueError for a certificate) costs
that attempt only, like a refused connection.
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


def _why(e: Exception) -> str:
    # mbedTLS's ValueError: its lines, one per reason; OSError: an errno or an mbedTLS code
    return "; ".join([w.strip() for w in str(e.args[0] if e.args else e).split("\n")
                      if w.strip()])


class Link:
    def __init__(self, bridge: Bridge, tls: "Any") -> None:
        self.bridge = bridge
        self.tls = tls  # a tls.SSLContext, or None
        self.sock = None  # type: Any
        self.raw = None  # type: Any  # the socket under a TLS one: mbedTLS does not close it
        self.connecting = False
        self.handshaking = False


class Links:
    def __init__(self, broker: "Broker", poller: "Any", scratch: bytearray) -> None:
        """ValueError (ports.micropython.tls.TlsError) when a bridge's TLS cannot be set up."""
        self.broker = broker
        self.poller = poller
        self.scratch = scratch
        host = _hostname()
        self.links = []  # type: list[Link]
        for s in broker.config.bridges:
            ctx = None
            if s.cafile:
                from ports.micropython.tls import client_context  # only with a TLS bridge
                ctx = client_context(s)
            self.links.append(Link(Bridge(broker, s, host), ctx))
        self.by_sock = {}  # type: Dict[Any, Link]

    def event(self, sock: "Any", flags: int, now: int) -> None:
        """poll reported flags on sock (ignored unless it is a bridge's socket)."""
        link = self.by_sock.get(sock)
        if link is None:
            return
        try:
            self._event(link, sock, flags, now)
        except MemoryError:
            # this attempt is lost, not the bridge: it tries again after restart_timeout, and
            # what it has not sent is still queued
            self._drop(link, now, "out of memory")

    def _event(self, link: Link, sock: "Any", flags: int, now: int) -> None:
        b = link.bridge
        if link.connecting:
            if flags & _ERR:
                self._drop(link, now, "connection refused or unreachable")
                return
            link.connecting = False
            if link.tls is not None and not self._start_tls(link, now):
                return
            b.opened(now)
        elif flags & (_IN | _ERR):
            try:
                n = sock.readinto(self.scratch)
            except (OSError, ValueError) as e:
                self._drop(link, now, self._failed(link, e))
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

    def _start_tls(self, link: Link, now: int) -> bool:
        raw = link.sock
        try:
            sock = link.tls.wrap_socket(raw, server_side=False, do_handshake_on_connect=False,
                                        server_hostname=link.bridge.address()[0])
        except (OSError, ValueError) as e:  # OSError: mbedTLS out of memory
            self._drop(link, now, "TLS: %s" % _why(e))
            return False
        self.by_sock.pop(raw, None)
        self.poller.unregister(raw)
        link.raw = raw
        link.sock = sock
        link.handshaking = True
        self.by_sock[sock] = link
        self.poller.register(sock, _IN | _OUT)
        return True

    def _failed(self, link: Link, e: Exception) -> str:
        if link.handshaking:
            return "TLS handshake failed: %s" % _why(e)
        if isinstance(e, ValueError):
            return "TLS: %s" % _why(e)
        return "socket error %s" % e.args[0]

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
            self.poller.modify(link.sock, _IN | _OUT if conn.pending() else _IN)

    def _flush(self, link: Link) -> str:
        """Why the connection failed, or ""."""
        conn = link.bridge.conn
        sock = link.sock
        if sock is None:
            return ""
        n = conn.chunk()
        while n:
            try:
                sent = sock.write(conn.cbuf, conn.coff, n)
            except (OSError, ValueError) as e:
                if isinstance(e, OSError) and e.args[0] == _EAGAIN:
                    return ""
                return self._failed(link, e)
            if sent is not None:  # over TLS, None until the handshake is done
                link.handshaking = False
            if not sent:
                break
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
        self.by_sock.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (OSError, ValueError):
            pass
        sock.close()
        if link.raw is not None:
            link.raw.close()
            link.raw = None
