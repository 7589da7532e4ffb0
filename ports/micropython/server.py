"""The MicroPython port: non-blocking sockets on select.poll, feeding the portable engine.

The same loop as the CPython port in MicroPython's own terms: ipoll(), readinto() into one
scratch buffer, write(buf, off, n), time.ticks_ms(). Runs on the unix port and on boards.
"""
import gc
import select
import socket
import sys
import time

from broker.conn import CLOSED
from broker.engine import Broker

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[no-untyped-def,misc]
        return x

# Values from broker.const, defined here so that MicroPython compiles them to literals.
_LOG_NOTICE = const(0x04)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional
    from broker.conn import Conn
    from broker.settings import Config

_SCRATCH = 4096
_SCRATCH_MIN = 1024
_OUT_HEAP_SHARE = 8
_BACKLOG_MAX = 128
_HEAP_FREE_SHARE = 16
_COPY_MIN = 256
_COPY_HEAP_SHARE = 64
_POLL_MS = 250
_IN = select.POLLIN
_OUT = select.POLLOUT
_ERR = select.POLLERR | select.POLLHUP
_EADDRINUSE = 98


def _peer(addr: "Any") -> str:
    """'ip:port' from what accept() returns: a tuple on boards, a raw sockaddr_in on unix."""
    if isinstance(addr, tuple):
        return "%s:%d" % (addr[0], addr[1])
    if len(addr) >= 8 and addr[0] == 2:
        return "%d.%d.%d.%d:%d" % (addr[4], addr[5], addr[6], addr[7], (addr[2] << 8) | addr[3])
    return "unknown"


def _heap_free() -> int:
    """The heap's free bytes (tools/wasm32 replaces it: that port's figure counts the room its
    heap could grow into, which a board's has not)."""
    return gc.mem_free()  # type: ignore[attr-defined]


def _heap_low(n: int) -> bool:
    """True when a new buffer of n bytes would leave less than a sixteenth of the heap free."""
    free = _heap_free()
    if (free - n) * _HEAP_FREE_SHARE >= free + gc.mem_alloc():  # type: ignore[attr-defined]
        return False
    gc.collect()  # what looked used may be garbage not yet collected
    free = _heap_free()
    return (free - n) * _HEAP_FREE_SHARE < free + gc.mem_alloc()  # type: ignore[attr-defined]


def _log(level: int, msg: str) -> None:
    sys.stderr.write("%d: %s\n" % (int(time.time()), msg))


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.broker = Broker(config, _log, time.ticks_ms())  # type: ignore[attr-defined]
        # The engine sizes a slow subscriber's output cap from max_packet_size alone (up to
        # 256 KB with no limit set); here one connection may not take more than an eighth of
        # the heap, or a single client that stops reading could exhaust it.
        heap = _heap_free() + gc.mem_alloc()  # type: ignore[attr-defined]
        if self.broker.out_soft > heap // _OUT_HEAP_SHARE:
            self.broker.out_soft = heap // _OUT_HEAP_SHARE
        # ... and all of them together leave a sixteenth of the heap free for everything else:
        # past that, QoS 0 deliveries that need a bigger buffer are dropped (and counted), and
        # messages that would have to be kept are refused before they are acknowledged.
        self.broker.heap_low = _heap_low
        # A kept message larger than this goes out from its own buffer rather than through a
        # grown output buffer (Broker._room): a board cannot hold a copy of each per subscriber.
        self.broker.copy_max = min(self.broker.out_soft, max(_COPY_MIN, heap // _COPY_HEAP_SHARE))
        self.poller = select.poll()
        self.listeners = {}  # type: Dict[Any, int]
        self.conns = {}  # type: Dict[Any, Conn]
        # One read's worth: half the largest packet is enough (a longer one is gathered by its
        # connection's reader), and 2 KB of a board's heap is worth more than fewer reads.
        self.scratch = bytearray(min(_SCRATCH, max(_SCRATCH_MIN, config.max_packet_size // 2)))
        self.addresses = []  # type: List[str]
        self._ipoll = None  # type: Any  # poller.ipoll, bound once: taking it allocates
        self.unix = {}  # type: Dict[Any, str]  # unix listener socket -> its path
        self.tls = {}  # type: Dict[Any, Any]  # TLS listener socket -> its tls.SSLContext
        # TLS socket -> the socket under it: after a TLS error, closing the first leaves the
        # second open (mbedTLS forgets it), so _drop closes both.
        self.raw = {}  # type: Dict[Any, Any]
        self.unix_files = []  # type: List[Any]  # what remove_unix_files() removes at the end
        self.links = None  # type: Any
        if config.bridges:
            from ports.micropython.bridge_link import Links  # only with a bridge
            self.links = Links(self.broker, self.poller, self.scratch)

    def bind(self) -> None:
        """Open every listener; raises OSError, or unixsock.ListenError for a unix socket."""
        for lst in self.config.listeners:
            if lst.path:
                # only now: a board's configuration has no unix listener, and never loads this
                from ports.micropython.unixsock import open_unix_listener
                sock = open_unix_listener(lst.path, lst.socket_mode, self.unix_files)
                sock.setblocking(False)
                self.listeners[sock] = 0
                self.unix[sock] = lst.path
                self.poller.register(sock, _IN)
                self.addresses.append("unix:" + lst.path)
                continue
            host = lst.host or "0.0.0.0"
            ctx = None
            if lst.certfile:
                from ports.micropython.tls import server_context  # only with a TLS listener
                ctx = server_context(lst)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(socket.getaddrinfo(host, lst.port)[0][-1])
                # a burst of clients waits in the backlog, not for the kernel's SYN retries
                sock.listen(min(max(self.config.max_connections, 8), _BACKLOG_MAX))
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            self.listeners[sock] = lst.port
            if ctx is not None:
                self.tls[sock] = ctx
            self.poller.register(sock, _IN)
            self.addresses.append("%s:%d" % (host, lst.port))

    def step(self, timeout_ms: int) -> None:
        """One turn of the loop: wait up to timeout_ms for sockets, serve them, run the timers,
        flush. Code sharing the board with the broker (an in-process client publishing sensor
        readings) runs between two steps: `while True: server.step(100); sensor.poll()`."""
        if self._ipoll is None:
            self._ipoll = self.poller.ipoll  # type: ignore[attr-defined]
        conns = self.conns
        try:
            for ev in self._ipoll(timeout_ms):
                sock = ev[0]
                flags = ev[1]
                conn = conns.get(sock)
                if conn is None:
                    if sock in self.listeners:
                        self._accept(sock)
                    elif self.links is not None:
                        self.links.event(sock, flags, time.ticks_ms())  # type: ignore[attr-defined]
                    continue
                if flags & _OUT:
                    self._flush(conn)
                if flags & (_IN | _ERR):
                    self._read(conn)
                    # out at once: what one read routed is all a subscriber's buffer holds
                    self._flush_all()
            now = time.ticks_ms()  # type: ignore[attr-defined]
            self.broker.tick(now)
            if self.links is not None:
                self.links.tick(now)
            self._flush_all()
        except MemoryError:
            # Outside feed() (accept, a will on a lost socket): this turn is abandoned, the
            # engine's state is consistent, and the next turn carries on.
            gc.collect()

    def serve(self) -> None:
        """Serve until Ctrl-C, then close every connection and listener. An error from the
        loop closes them too before it propagates, so a board's main.py can start again."""
        try:
            while True:
                self.step(_POLL_MS)
        except KeyboardInterrupt:
            pass
        except BaseException:
            self.close()
            raise
        self.broker.shutdown()
        self._flush_all()
        self.close()

    def close(self) -> None:
        if self.links is not None:
            self.links.close()
        for conn in list(self.conns.values()):
            self._drop(conn)
        self.close_listeners()

    def close_listeners(self) -> None:
        for sock in self.listeners:
            sock.close()
        self.listeners.clear()
        if self.unix_files:
            from ports.unixfiles import remove_unix_files
            remove_unix_files(self.unix_files)

    def _accept(self, lsock: "Any") -> None:
        try:
            sock, addr = lsock.accept()
        except OSError:
            return
        path = self.unix.get(lsock)
        # a unix client has no address: it is known by the socket it came through
        peer = "unix:" + path if path else _peer(addr)
        ctx = self.tls.get(lsock)
        raw = sock
        try:
            if ctx is not None:
                # the handshake runs inside the first non-blocking reads (ports/micropython/tls.py)
                sock.setblocking(False)
                sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn = self.broker.accept(sock, peer)
        except (MemoryError, OSError):  # OSError: mbedTLS out of memory
            conn = None
        if conn is None:
            sock.close()
            raw.close()
            return
        if raw is not sock:
            self.raw[sock] = raw
        if path:
            self.broker.log(_LOG_NOTICE, "New connection from %s." % peer)
        else:
            self.broker.log(_LOG_NOTICE, "New connection from %s on port %d."
                            % (peer, self.listeners[lsock]))
        sock.setblocking(False)
        self.conns[sock] = conn
        self.poller.register(sock, _IN)

    def _read(self, conn: "Conn") -> None:
        try:
            n = conn.handle.readinto(self.scratch)
        except (OSError, ValueError):  # ValueError: mbedTLS refused a client certificate
            self.broker.lost(conn, "socket error")
            return
        if n is None:
            return
        if n == 0:
            self.broker.lost(conn)
            return
        self.broker.feed(conn, self.scratch, n)
        if conn.state == CLOSED:
            self._flush(conn)

    def _flush_all(self) -> None:
        wq = self.broker.wq
        while wq:
            conn = wq.pop()
            conn.in_wq = False
            self._flush(conn)

    def _flush(self, conn: "Conn") -> None:
        sock = conn.handle
        if sock not in self.conns:
            return
        n = conn.chunk()
        while n:
            try:
                sent = sock.write(conn.cbuf, conn.coff, n)
            except (OSError, ValueError):  # ValueError: as in _read
                self.broker.lost(conn, "socket error")
                self._drop(conn)
                return
            if not sent:
                break
            conn.sent(sent)
            if sent < n:
                break
            n = conn.chunk()
        if conn.state == CLOSED:
            self._drop(conn)
        elif n:
            # A peer that does not read is not read either, so answers cannot pile up. Half the
            # cap leaves room for the answers to one more read without growing past it.
            over = conn.pending() > self.broker.out_soft // 2
            self.poller.modify(sock, _OUT if over else _IN | _OUT)
        else:
            self.poller.modify(sock, _IN)
            self.broker.drained(conn)

    def _drop(self, conn: "Conn") -> None:
        sock = conn.handle
        if self.conns.pop(sock, None) is None:
            return
        self.poller.unregister(sock)
        sock.close()
        raw = self.raw.pop(sock, None)
        if raw is not None:
            raw.close()


def serve(config: "Config", banner: str,
          ready: "Optional[Callable[[List[str]], None]]" = None) -> int:
    """Log the banner, listen, and serve until Ctrl-C (0), or say why the broker cannot
    listen (1). ports.micropython.launch reads the configuration and calls this."""
    _log(_LOG_NOTICE, banner)
    try:
        server = Server(config)
    except ValueError as e:  # a bridge's TLS files or runtime (ports/micropython/tls.py)
        sys.stderr.write("Error: %s\n" % e)
        return 1
    except MemoryError:  # its tables and read buffer
        from ports.micropython.launch import out_of_memory  # loaded: it loaded this module
        out_of_memory("starting")
        return 1
    where = ""
    error = ""
    try:
        server.bind()
        from ports.micropython.heapplan import plan  # start-up only: it unloads itself
        error = plan(server.broker, config, _heap_free, _log)
        del plan
    except MemoryError:  # a TLS listener's context, or the plan's own code
        server.close_listeners()
        from ports.micropython.launch import out_of_memory  # loaded: it loaded this module
        out_of_memory("starting")
        return 1
    except OSError as e:
        reason = "address already in use" if e.args and e.args[0] == _EADDRINUSE else str(e)
        where = ", ".join(["%s:%d" % (lst.host or "0.0.0.0", lst.port)
                           for lst in config.listeners if not lst.path])
    except ValueError as e:  # a TLS listener's files or runtime (ports/micropython/tls.py)
        server.close_listeners()
        sys.stderr.write("Error: %s\n" % e)
        return 1
    except Exception as e:
        from ports.micropython.unixsock import ListenError  # loaded already if e is one
        if not isinstance(e, ListenError):
            raise
        where = e.args[0]
        reason = e.args[1]
    if where:
        server.close_listeners()  # removes the socket files of the unix listeners opened
        sys.stderr.write("Error: cannot listen on %s: %s\n" % (where, reason))
        return 1
    if error:
        server.close_listeners()
        sys.stderr.write("Error: %s\n" % error)
        return 1
    for address in server.addresses:
        sys.stderr.write("%d: listening on %s\n" % (int(time.time()), address))
    if ready is not None:
        ready(server.addresses)
    server.serve()
    _log(_LOG_NOTICE, "broker terminating")
    return 0
