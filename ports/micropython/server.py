"""The MicroPython port: non-blocking sockets on select.poll, feeding the portable engine.

The same loop as the CPython port in MicroPython's own terms: ipoll(), readinto() into one
scratch buffer, write(buf, off, n), time.ticks_ms(). What it does with a connection's socket is
ports/loop.py, shared with the CPython port, through Server's key, recv, send, modify and
discard. Runs on the unix port and on boards.
"""
import gc
import socket
import sys
import time

import broker.engine  # noqa: F401  # first: the largest modules compile on the emptiest heap
from ports.loop import drop, event, flush
from broker import keepalive, lifecycle
from broker.output import CONNACK_UNAVAILABLE

from broker.bytesops import const

_LOG_ERR = const(0x01)
_LOG_NOTICE = const(0x04)
_LOG_WARNING = const(0x02)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional
    from broker.conn import Conn
    from broker.engine import Broker
    from broker.settings import Config, Listener

_HEAP_FREE_SHARE = const(16)
_RECOUNT_MS = const(100)
_POLL_MS = const(250)
_IN = const(1)  # select.POLLIN, POLLERR | POLLHUP: the same on every port
_ERR = const(24)
_EAGAIN = const(11)
_ECONNABORTED = const(103)
_AF_INET6 = const(10)  # Linux's, in the raw addresses the unix port's accept() returns
_ACCEPT_BACKOFF_MS = const(1000)  # accept() failing (EMFILE, ENOBUFS): the listeners rest
_SETTLE_MS = const(1000)  # a wave of closed connections is over when none closed this long
_SETTLE_CLOSED = const(64)  # ... or after this many, under a steady churn


def _peer(addr: "Any") -> str:
    """'ip:port' from what accept() returns: a tuple on boards, a raw sockaddr_in or
    sockaddr_in6 on unix. An IPv6 peer is written as mosquitto writes it: '::1:50000'."""
    if isinstance(addr, tuple):
        return "%s:%d" % (addr[0], addr[1])
    if len(addr) < 8:
        return "unknown"
    port = (addr[2] << 8) | addr[3]
    if addr[0] == _AF_INET6:
        return "%s:%d" % (socket.inet_ntop(_AF_INET6, bytes(addr[8:24])), port)
    return "%d.%d.%d.%d:%d" % (addr[4], addr[5], addr[6], addr[7], port)


# What gc.mem_free() counts that the heap cannot have: tools/wasm32 sets it, its port counting
# room it cannot grow into.
_GROWTH = 0


def _heap_free() -> int:
    """The heap's free bytes, less what it cannot grow into (_GROWTH)."""
    return gc.mem_free() - _GROWTH  # type: ignore[attr-defined]


# Bytes that checks may still take without counting the heap again. Counting (gc.mem_free(),
# gc.mem_alloc()) walks the whole heap's allocation table, longer the larger the heap: at every
# message kept, it took two thirds of the time of QoS 1 on a 512K heap. A count leaves half of
# the room it found above the sixteenth to the checks after it, the other half for what is
# allocated meanwhile without a check (a read's buffer, an answer). The heap is counted again
# when that room is spent, for each connection accepted, and _RECOUNT_MS after the last count
# (Server.step). Until the first count the room is 0, so _counted_at needs no start value.
_room = 0
_counted_at = 0  # time.ticks_ms() of the last count


def _heap_low(n: int) -> bool:
    """True when a new buffer of n bytes would leave less than a sixteenth of the heap free."""
    global _room, _counted_at
    if n < _room:
        _room -= n
        return False
    _counted_at = time.ticks_ms()  # type: ignore[attr-defined]
    free = _heap_free()
    total = free + gc.mem_alloc()  # type: ignore[attr-defined]
    if (free - n) * _HEAP_FREE_SHARE < total:
        gc.collect()  # what looked used may be garbage not yet collected
        free = _heap_free()
        total = free + gc.mem_alloc()  # type: ignore[attr-defined]
        if (free - n) * _HEAP_FREE_SHARE < total:
            _room = 0
            return True
    _room = (free - n - total // _HEAP_FREE_SHARE) >> 1
    return False


def _heap_low_now(n: int) -> bool:
    """_heap_low(n), with the heap counted now."""
    global _room
    _room = 0
    return _heap_low(n)


def _log(level: int, msg: str) -> None:
    sys.stderr.write("%d: %s\n" % (int(time.time()), msg))


class Server:
    ws = None  # type: Optional[Dict[Any, str]]  # websockets listener socket -> its http_dir
    logs = None  # type: Any  # log_dest topic: the ports.logdest.Log whose lines it publishes

    if TYPE_CHECKING:  # set by ports.micropython.startup.prepare(), which __init__ calls
        config: "Config"
        broker: "Broker"
        listeners: "Dict[Any, int]"  # listening socket -> its port (0: unix)
        conns: "Dict[Any, Conn]"
        scratch: "bytearray"
        addresses: "List[str]"
        unix: "Dict[Any, str]"  # unix listener socket -> its path
        tls: "Dict[Any, Any]"  # TLS listener socket -> its tls.SSLContext
        raw: "Dict[Any, Any]"  # TLS socket -> the socket under it
        unix_files: "List[Any]"  # what remove_unix_files() removes at the end
        poller: "Any"
        links: "Any"  # ports.micropython.bridge_link.Links, with a bridge
        _ipoll: "Any"  # poller.ipoll, bound once: taking it allocates
        paused: int
        resume_at: int
        closed: int
        closed_at: int
        max_sockets: int
        # per_listener_settings true: listener socket -> its Listener (the options its clients get)
        per_listener_settings: "Dict[Any, Listener]"

    store = None  # type: Any  # ports.persist.Store, with `persistence true`

    def __init__(self, config: Config,
                 log: "Optional[Callable[[int, str], None]]" = None) -> None:
        # start-up code, in a module of its own that bind() unloads: a board's heap does not
        # keep it while serving
        from ports.micropython.startup import prepare
        prepare(self, config, log)

    def bind(self) -> None:
        """Open every listener (ports.micropython.startup.bind: OSError, ValueError), then
        unload the start-up code."""
        from ports.micropython import startup
        try:
            startup.bind(self)
        finally:
            startup.unload()

    def step(self, timeout_ms: int) -> None:
        """One turn of the loop: wait up to timeout_ms for sockets, serve them, run the timers,
        flush. Code sharing the board with the broker (an in-process client publishing sensor
        readings) runs between two steps: `while True: server.step(100); sensor.poll()`.

        The heap running out while one socket is served costs that client, never the others'
        turn: each event is served on its own."""
        global _room
        if self._ipoll is None:
            self._ipoll = self.poller.ipoll
        conns = self.conns
        incoming = False
        for ev in self._ipoll(timeout_ms):
            sock = ev[0]
            flags = ev[1]
            conn = conns.get(sock)
            if conn is None:
                if sock in self.listeners:
                    incoming = True  # accepted once the walk is over: see _accept_all
                elif self.links is not None:
                    try:
                        self.links.event(sock, flags, time.ticks_ms())  # type: ignore[attr-defined]
                    except MemoryError:
                        gc.collect()  # that bridge's socket is served again at the next turn
                continue
            try:
                event(self, conn, flags)
                if flags & (_IN | _ERR):
                    # out at once: what one read routed is all a subscriber's buffer holds
                    self._flush_all()
            except MemoryError:
                self._out_of_memory(conn)
        if incoming and not self.paused:  # (a poller that ignores the mask may report them)
            self._accept_all()
        now = time.ticks_ms()  # type: ignore[attr-defined]
        if _room and time.ticks_diff(now, _counted_at) >= _RECOUNT_MS:  # type: ignore[attr-defined]
            _room = 0  # counted again at the next check: see _heap_low
        try:
            keepalive.tick(self.broker, now)
            if self.links is not None:
                self.links.tick(now)
            if self.store is not None:
                self.store.tick()
        except MemoryError:
            gc.collect()  # the timers run again at the next turn
        logs = self.logs
        if logs is not None and logs.pending:
            logs.publish(self.broker)  # between two turns: never from inside the routing
        self._flush_all()
        if self.paused or self.closed:
            self._after(now)

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
        lifecycle.shutdown(self.broker)
        self._flush_all()
        if self.store is not None:
            self.store.save(True)
        self.close()

    def close(self) -> None:
        if self.links is not None:
            self.links.close()
        for conn in list(self.conns.values()):
            drop(self, conn)
        self.close_listeners()

    def close_listeners(self) -> None:
        for sock in self.listeners:
            sock.close()
        self.listeners.clear()
        if self.unix_files:
            from ports.unixfiles import remove_unix_files
            remove_unix_files(self.unix_files)

    def _out_of_memory(self, conn: Conn) -> None:
        """The heap ran out while conn was served outside feed() (which sees to its own): the
        engine drops it as it does there, and the port closes it now."""
        gc.collect()
        lifecycle.out_of_memory(self.broker, conn)
        try:
            flush(self, conn)
        except MemoryError:
            drop(self, conn)

    def _listen(self, on: bool) -> None:
        """Poll the listeners for new connections, or stop polling them."""
        self.paused = 0 if on else 1
        for sock in self.listeners:
            self.poller.modify(sock, _IN if on else 0)

    def _after(self, now: int) -> None:
        """The end of a turn where the listeners are not polled, or sockets were closed. The
        listeners are polled again once sockets are below max_sockets, and the rest after a
        failed accept() is over. Once a wave of closed connections is over (none for
        _SETTLE_MS, or _SETTLE_CLOSED of them), the garbage it left is collected: what is
        allocated from then on is not placed in what the storm gave back, splitting it, only
        because its garbage was still there."""
        ticks_diff = time.ticks_diff  # type: ignore[attr-defined]
        if self.paused and len(self.conns) < self.max_sockets and (
                self.paused == 1 or ticks_diff(now, self.resume_at) >= 0):
            self._listen(True)
        if self.closed and (self.closed >= _SETTLE_CLOSED
                            or ticks_diff(now, self.closed_at) >= _SETTLE_MS):
            self.closed = 0
            gc.collect()
            # Then the engine's lists that the storm grew, and that shrank in place since, are
            # made again: each stays where a block was free during the storm, splitting the
            # heap the storm gave back.
            b = self.broker
            b.conns = b.conns[:]
            b.wq = b.wq[:]

    def _accept_all(self) -> None:
        """Accept every connection waiting, up to max_sockets, after which the others wait in
        the listen backlog until a socket closes. It runs after the poll walk: registering a
        socket while ipoll() walks the poll set could move the entries it has yet to visit.
        When accept() fails (EMFILE, ENFILE, ENOBUFS, out of memory), it would fail again at
        once: the listeners rest a while, and the clients already connected are served."""
        why = ""
        for lsock in self.listeners:
            why = ""
            while not why and len(self.conns) < self.max_sockets:
                try:
                    why = self._accept(lsock)
                except MemoryError:
                    gc.collect()
                    why = "out of memory"
            if why != "-":  # failed ("" only at max_sockets): not the next listener either
                break
        if why and why != "-":
            lifecycle.log_limited(self.broker, lifecycle.LIMIT_ACCEPT, _LOG_ERR,
                                  "Error accepting a connection: %s; not accepting for %d ms."
                                  % (why, _ACCEPT_BACKOFF_MS))
            now = time.ticks_ms()  # type: ignore[attr-defined]
            self.resume_at = time.ticks_add(now, _ACCEPT_BACKOFF_MS)  # type: ignore[attr-defined]
            self._listen(False)
            self.paused = 2
        elif len(self.conns) >= self.max_sockets:
            self._listen(False)

    def _accept(self, lsock: "Any") -> str:
        """Accept one connection from lsock and hand it to the engine and the poll, all or
        nothing (a connection the engine kept but the port lost would be answered by nobody,
        and closed as silent at the connect timeout). "" to go on, "-" when none is waiting,
        else why accept() failed. With less than a sixteenth of the heap free, the client is
        told CONNACK 0x03 (server unavailable) from a constant before its CONNECT is read, and
        closed."""
        try:
            sock, addr = lsock.accept()
        except OSError as e:
            code = e.args[0] if e.args else 0
            if code == _ECONNABORTED:
                return ""  # that client has gone already: the next one
            if code == _EAGAIN:
                return "-"
            return "errno %d" % code  # 24: EMFILE, 23: ENFILE, 105: ENOBUFS
        path = self.unix.get(lsock)
        ctx = self.tls.get(lsock)
        raw = sock
        conn = None
        try:
            # a unix client has no address: it is known by the socket it came through
            peer = "unix:" + path if path else _peer(addr)
            if _heap_low_now(0):
                lifecycle.log_limited(self.broker, lifecycle.LIMIT_MEMORY, _LOG_WARNING,
                                      "Refusing connection from %s: the heap is nearly full."
                                      % peer)
                if ctx is None:  # (a TLS client could not read it before its handshake)
                    sock.setblocking(False)
                    sock.write(CONNACK_UNAVAILABLE)
                raise OSError(0)
            sock.setblocking(False)
            if ctx is not None:
                # the handshake runs inside the first non-blocking reads (ports/micropython/tls.py)
                sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn = lifecycle.accept(self.broker, sock, peer)
            if conn is None:
                raise OSError(0)
            if self.ws is not None and lsock in self.ws:
                from ports.websocket import Ws  # loaded with the first websockets client
                conn.ws = Ws(self.broker, conn, self.ws[lsock])
            if hasattr(self, "per_listener_settings"):
                conn.listener = self.per_listener_settings[lsock]
            self.conns[sock] = conn
            if raw is not sock:
                self.raw[sock] = raw
        except (OSError, MemoryError) as e:  # OSError(0): refused above, and said why there
            self.conns.pop(sock, None)
            self.raw.pop(sock, None)
            sock.close()
            raw.close()
            if conn is not None:
                lifecycle.close(self.broker, conn, "", False)  # its bookkeeping needs no memory
            if isinstance(e, MemoryError):
                raise
            if e.args and e.args[0]:  # mbedTLS (code, text), or a socket call's errno
                lifecycle.log_limited(self.broker, lifecycle.LIMIT_ACCEPT, _LOG_ERR,
                                      "Error accepting a connection: %s."
                                      % (e.args[1] if len(e.args) > 1 else e))
            return ""
        # A registration that runs out of memory leaves sock's entry in the poll set empty,
        # and the next ipoll() or unregister() would read through it (SIGSEGV). Registering
        # sock again fills it; if even that finds no memory, the loop cannot go on: the server
        # stops (a board's main.py starts it again).
        try:
            self.poller.register(sock, _IN)
        except MemoryError:
            gc.collect()
            try:
                self.poller.register(sock, _IN)
            except MemoryError:
                raise RuntimeError("poll: out of memory")
        if path:
            self.broker.log(_LOG_NOTICE, "New connection from %s." % peer)
        else:
            self.broker.log(_LOG_NOTICE, "New connection from %s on port %d."
                            % (peer, self.listeners[lsock]))
        return ""

    def _flush_all(self) -> None:
        b = self.broker
        conn = b.next_to_flush()
        while conn is not None:
            try:
                flush(self, conn)
            except MemoryError:
                self._out_of_memory(conn)
            conn = b.next_to_flush()

    # The socket calls of ports.loop: readinto and write on non-blocking sockets, a
    # select.poll keyed by the socket itself.

    def key(self, sock: "Any") -> "Any":
        return sock

    def recv(self, sock: "Any", buf: bytearray) -> "Optional[int]":
        return sock.readinto(buf)

    def send(self, sock: "Any", buf: "Any", off: int, n: int) -> "Optional[int]":
        return sock.write(buf, off, n)

    def modify(self, conn: "Conn", mask: int) -> None:
        self.poller.modify(conn.handle, mask)

    def discard(self, sock: "Any") -> None:
        self.closed += 1
        self.closed_at = time.ticks_ms()  # type: ignore[attr-defined]
        self.poller.unregister(sock)
        sock.close()
        raw = self.raw.pop(sock, None)
        if raw is not None:
            raw.close()


def serve(config: "Config", banner: str,
          ready: "Optional[Callable[[List[str]], None]]" = None) -> int:
    """Log the banner, listen, and serve until Ctrl-C (0), or say why the broker cannot
    listen (1). ports.micropython.launch reads the configuration and calls this."""
    try:
        from ports.micropython import startup  # unloaded once the server listens (bind())
    except MemoryError:
        from ports.micropython.launch import out_of_memory  # loaded: it loaded this module
        out_of_memory("starting")
        return 1
    log = startup.logger(config)
    log(_LOG_NOTICE, banner)
    server = startup.start(config, log)
    del startup
    gc.collect()  # the start-up code, gone
    if server is None:
        return 1
    if ready is not None:
        ready(server.addresses)
    server.serve()
    log(_LOG_NOTICE, "broker terminating")
    return 0
