"""The CPython port: non-blocking sockets on one epoll loop, feeding the portable engine.

Each loop turn reads what every ready socket has (one recv_into into a shared scratch buffer),
lets the engine parse it in place, then flushes each connection's output with one send. What
the loop does with a connection's socket is ports/loop.py, shared with the MicroPython port;
the socket calls it makes are Server's key, recv, send, modify and discard.
"""
import errno
import os
import select
import signal
import socket
import stat
import sys
import time

from broker import keepalive, lifecycle
from broker.cli import USAGE, UsageError, banner, parse_args
from broker.config import Config, ConfigError, Listener
from broker.const import LOG_ERR, LOG_NOTICE
from broker.conn import Conn
from broker.engine import Broker
from broker.keepalive import TICKS_MASK, ticks_diff
from broker.bytesops_host import piece
from broker.lifecycle import LIMIT_ACCEPT
from ports.logdest import Log
from ports.cpython import compiled
from ports.cpython.process import daemonize, drop_privileges, remove_pid_file, write_pid_file
from ports.loop import drop, event, flush
from ports.readfile import read_file
from ports.unixfiles import remove_unix_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ssl import SSLContext, SSLSocket
    from typing import Callable, Dict, List, Optional, TextIO, Tuple, Union
    from ports.cpython.bridge_link import Links
    from ports.persist import Store

_SCRATCH = 65536
_POLL_MS = 250
_ACCEPT_BACKOFF_MS = 1000  # accept() failing (EMFILE, ENFILE, ENOBUFS): the listeners rest
_IN = select.EPOLLIN


def ticks_ms() -> int:
    return int(time.monotonic() * 1000) & TICKS_MASK


def where(host: str, port: int) -> str:
    """A TCP listener's address for the log: an IPv6 address in brackets."""
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def _tcp_listener(host: str, port: int, v6only: bool = False) -> socket.socket:
    """A listening TCP socket. An IPv6 address gets an IPv6 socket; "::" takes IPv4 clients
    too (dual stack, their addresses then read ::ffff:a.b.c.d) unless v6only (socket_domain
    ipv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _unix_stale(path: str) -> bool:
    """Whether the socket file at path is stale: nobody accepts connections on it."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except socket.timeout:
        return False  # a live listener with a full backlog
    except OSError as e:
        if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return True
        raise OSError(e.errno, e.strerror or str(e), path)
    finally:
        probe.close()
    return False


def open_unix_listener(path: str, mode: int) -> socket.socket:
    """A listening AF_UNIX socket at path. A stale socket file there is replaced (as mosquitto
    does); a live one, or a file that is not a socket, is refused. mode >= 0 is applied before
    listen(), so no client connects through the umask's mode. An OSError raised here has path
    as its filename (main() names the listener with it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, "the file exists and is not a socket (not replacing it)",
                          path)
        if not _unix_stale(path):
            raise OSError(errno.EADDRINUSE, "address already in use", path)
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        sock.bind(path)
        bound = True
        if mode >= 0:
            os.chmod(path, mode)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if bound:
            os.unlink(path)
        raise OSError(e.errno, e.strerror or str(e), path)
    return sock


def _certificate_name(sock: "Union[socket.socket, SSLSocket]",
                      lst: Listener) -> "Callable[[], str]":
    import ssl  # loaded: the listener has TLS
    from ports.cpython.tls import certificate_name
    # as mosquitto, use_identity_as_username wins when both are true
    subject = not getattr(lst, "use_identity_as_username", False)
    assert isinstance(sock, ssl.SSLSocket)
    return lambda: certificate_name(sock, subject)


class Server:
    def __init__(self, config: Config,
                 log: "Optional[Callable[[int, str], None]]" = None) -> None:
        self.config = config
        self.log = log or Log(config)  # type: Callable[[int, str], None]
        self.broker = Broker(config, self.log, ticks_ms())
        self.poller = select.epoll()
        self.listeners = {}  # type: Dict[int, socket.socket]
        self.conns = {}  # type: Dict[int, Conn]
        self.tls = {}  # type: Dict[int, SSLContext]  # listening fd -> context, TLS listeners
        self.ws = {}  # type: Dict[int, str]  # listening fd -> http_dir, websockets listeners
        # listening fd -> its Listener, whose options its clients get with per_listener_settings
        self.bound = {}  # type: Dict[int, Listener]
        # listening fd -> where its clients came: its port, or "unix:PATH" (peer and log lines)
        self.local = {}  # type: Dict[int, Union[int, str]]
        # listening fd -> its address family, an int (socket.family makes an enum each time)
        self.family = {}  # type: Dict[int, int]
        self.scratch = bytearray(_SCRATCH)
        self.running = False
        self.addresses = []  # type: List[str]
        # (path, st_dev, st_ino) of each unix socket file this server made; close() removes them
        self.unix_files = []  # type: List[tuple[str, int, int]]
        # stop() writes a byte here (from any thread, or a signal handler) to wake serve() at once.
        self.waker, self.wake_w = socket.socketpair()
        self.waker.setblocking(False)
        self.wake_w.setblocking(False)
        self.poller.register(self.waker.fileno(), _IN)
        # After accept() failed (out of file descriptors), the listeners are not polled until
        # resume_at: polled, a listener with a client waiting would wake the loop at once, only
        # for accept() to fail the same way.
        self.resting = False
        self.resume_at = 0
        self.reload_pending = False
        self.links = None  # type: Optional[Links]
        if config.bridges:
            from ports.cpython.bridge_link import Links  # only with a bridge
            self.links = Links(self.broker, self.poller, self.scratch)
        self.store = None  # type: Optional[Store]
        if config.persistence is not None:
            from ports.persist import open_store  # only with `persistence true`
            self.store = open_store(self.broker, self.log, self.links)

    def bind(self) -> None:
        """Open every listener; raises OSError (the caller reports it)."""
        for lst in self.config.listeners:
            if lst.path:
                usock = open_unix_listener(lst.path, lst.socket_mode)
                st = os.stat(lst.path)
                self.unix_files.append((lst.path, st.st_dev, st.st_ino))
                usock.setblocking(False)
                self.listeners[usock.fileno()] = usock
                self.family[usock.fileno()] = socket.AF_UNIX
                self._own_options(usock, lst)
                self.local[usock.fileno()] = name = "unix:" + lst.path
                self.poller.register(usock.fileno(), _IN)
                self.addresses.append(name)
                continue
            host = lst.host or "0.0.0.0"
            if lst.http_dir and not os.path.isdir(lst.http_dir):  # as mosquitto
                raise ConfigError("listener %s: http_dir %s is not a directory"
                                  % (where(host, lst.port), lst.http_dir))
            ctx = None
            if lst.certfile:
                from ports.cpython.tls import server_context  # only with a TLS listener
                ctx = server_context(lst)
            sock = _tcp_listener(host, lst.port, getattr(lst, "v6only", False))
            sock.setblocking(False)
            self.listeners[sock.fileno()] = sock
            self.family[sock.fileno()] = int(sock.family)
            self._own_options(sock, lst)
            if ctx is not None:
                self.tls[sock.fileno()] = ctx
            if lst.websockets:
                self.ws[sock.fileno()] = lst.http_dir
            self.poller.register(sock.fileno(), _IN)
            self.nodelay(sock)
            port = sock.getsockname()[1]
            self.local[sock.fileno()] = port
            self.addresses.append(where(host, port))

    def _own_options(self, sock: socket.socket, lst: Listener) -> None:
        self.bound[sock.fileno()] = lst

    def nodelay(self, sock: socket.socket) -> None:
        """set_tcp_nodelay, on a TCP listener: Linux gives each socket accept() returns its
        listener's TCP_NODELAY, one setsockopt() less per client."""
        on = getattr(self.config, "set_tcp_nodelay", True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if on else 0)

    def step(self, timeout_ms: int) -> None:
        """One turn of the loop: wait up to timeout_ms for sockets, serve them, run the timers,
        flush. Code embedding the broker (an in-process client) can run between two steps."""
        events = self.poller.poll(timeout_ms / 1000.0)
        log = self.log
        if isinstance(log, Log):  # the turn's log lines written at once, after it
            log.hold()
            try:
                self._turn(events)
            finally:
                log.release()
        else:
            self._turn(events)

    def _turn(self, events: "List[Tuple[int, int]]") -> None:
        conns = self.conns
        for fd, ev in events:
            conn = conns.get(fd)
            if conn is None:
                lsock = self.listeners.get(fd)
                if lsock is not None:
                    self._accept(lsock)
                elif fd == self.waker.fileno():
                    # stop() was called, maybe before serve() began, or SIGHUP (hangup())
                    if b"\0" in self.waker.recv(64):
                        self.running = False
                elif self.links is not None:
                    self.links.event(fd, ev, ticks_ms())
                continue
            event(self, conn, ev)
        # what the events wrote goes out before the timers run: a message's latency
        self._flush_all()
        now = ticks_ms()
        keepalive.tick(self.broker, now)
        if self.links is not None:
            self.links.tick(now)
        if self.store is not None:
            self.store.tick()
        self._flush_all()
        if self.resting and ticks_diff(now, self.resume_at) >= 0:
            self._listen(True)
        if self.reload_pending:
            self.reload_pending = False
            self.reload()
        pending = getattr(self.log, "pending", None)
        if pending:
            self.log.publish(self.broker)  # type: ignore[attr-defined]
            self._flush_all()

    def reload(self) -> None:
        """SIGHUP: reread the configuration file (-c), or only reopen the log file."""
        path = getattr(self.config, "config_file", "")
        if path:
            from ports.cpython.reload import reload  # the first SIGHUP
            reload(self, path)
        elif isinstance(self.log, Log):
            try:
                self.log.apply(self.config)
            except OSError as e:
                self.broker.log(LOG_ERR, "Error reopening the log file: %s" % e)

    def hangup(self) -> None:
        """SIGHUP's handler: the reload runs in the loop, between two turns."""
        self.reload_pending = True
        try:
            self.wake_w.send(b"\1")
        except OSError:
            pass

    def _listen(self, on: bool) -> None:
        self.resting = not on
        for fd in self.listeners:
            self.poller.modify(fd, _IN if on else 0)

    def _rest(self, e: OSError) -> None:
        """accept() failed, and would again at once: the listeners rest a while. The clients
        already connected are served meanwhile, and the waiting ones stay in the backlog."""
        lifecycle.log_limited(self.broker, LIMIT_ACCEPT, LOG_ERR,
                              "Error accepting a connection: %s; not accepting for %d ms."
                              % (e.strerror or e, _ACCEPT_BACKOFF_MS))
        self.resume_at = (ticks_ms() + _ACCEPT_BACKOFF_MS) & TICKS_MASK
        self._listen(False)

    def serve(self) -> None:
        """Serve until stop(), then close every connection and listener."""
        self.running = True
        while self.running:
            self.step(_POLL_MS)
        lifecycle.shutdown(self.broker)
        self._flush_all()
        if self.store is not None:
            self.store.save(True)
        self.close()

    def stop(self) -> None:
        self.running = False
        try:
            self.wake_w.send(b"\0")
        except OSError:
            pass  # a wake-up is already pending, or the server is closed

    def close(self) -> None:
        if self.links is not None:
            self.links.close()
        for conn in list(self.conns.values()):
            drop(self, conn)
        for sock in self.listeners.values():
            self.poller.unregister(sock.fileno())
            sock.close()
        self.listeners.clear()
        remove_unix_files(self.unix_files)
        self.poller.close()
        self.waker.close()
        self.wake_w.close()

    def _accept(self, lsock: socket.socket) -> None:
        lfd = lsock.fileno()
        local = self.local[lfd]
        family = self.family[lfd]
        while True:
            try:
                # socket.accept() without what it adds in Python: the family and type turned
                # into enums, a look at the default timeout
                fd, addr = lsock._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # that client has gone already
            except OSError as e:
                self._rest(e)  # EMFILE, ENFILE, ENOBUFS, ENOMEM
                return
            try:
                sock = socket.socket(family, socket.SOCK_STREAM, 0, fd)
            except OSError as e:
                os.close(fd)  # nothing owns the descriptor yet
                self._refused(e)
                continue
            # a unix client has no address: it is known by the socket it came through
            peer = "%s:%d" % (addr[0], addr[1]) if isinstance(local, int) else local
            ctx = self.tls.get(lfd)
            conn = None  # type: Optional[Conn]
            try:
                if ctx is not None:
                    # the handshake runs inside the first non-blocking reads (ports/cpython/tls.py)
                    sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                conn = lifecycle.accept(self.broker, sock, peer)
                if conn is None:
                    sock.close()
                    continue
                http_dir = self.ws.get(lfd)
                if http_dir is not None:
                    from ports.websocket import Ws  # only with a websockets listener
                    conn.ws = Ws(self.broker, conn, http_dir)
                lst = self.bound[lfd]
                if getattr(self.config, "per_listener_settings", False):
                    conn.listener = lst
                if ctx is not None and (getattr(lst, "use_identity_as_username", False)
                                        or getattr(lst, "use_subject_as_username", False)):
                    conn.certificate_name = _certificate_name(sock, lst)
                sock.setblocking(False)
                self.poller.register(sock.fileno(), _IN)
            except OSError as e:
                # All or nothing: a connection the engine kept but the loop does not poll would
                # be answered by nobody until its connect timeout.
                sock.close()
                if conn is not None:
                    lifecycle.close(self.broker, conn, "", False)
                self._refused(e)
                continue
            self.conns[sock.fileno()] = conn
            conn.polled = _IN
            if not isinstance(local, int):
                self.broker.log(LOG_NOTICE, "New connection from %s." % peer)
            else:
                self.broker.log(LOG_NOTICE, "New connection from %s on port %d."
                                % (peer, local))

    def _refused(self, e: OSError) -> None:
        """A connection accept() handed over could not be served; the next one may be."""
        lifecycle.log_limited(self.broker, LIMIT_ACCEPT, LOG_ERR,
                              "Error accepting a connection: %s." % (e.strerror or e))

    def _flush_all(self) -> None:
        b = self.broker
        conn = b.next_to_flush()
        while conn is not None:
            flush(self, conn)
            conn = b.next_to_flush()

    # The socket calls of ports.loop: recv_into and send on non-blocking sockets, an epoll
    # keyed by file descriptor.

    def key(self, sock: socket.socket) -> int:
        return sock.fileno()

    def recv(self, sock: socket.socket, buf: bytearray) -> "Optional[int]":
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            return None

    def send(self, sock: socket.socket, buf: "Union[bytes, bytearray]", off: int,
             n: int) -> int:
        try:
            return sock.send(piece(buf, off, n))
        except (BlockingIOError, InterruptedError):
            return 0

    def modify(self, conn: Conn, mask: int) -> None:
        if mask != conn.polled:  # one epoll_ctl less per flush in the common case
            self.poller.modify(conn.handle.fileno(), mask)
            conn.polled = mask

    def discard(self, sock: socket.socket) -> None:
        try:
            self.poller.unregister(sock.fileno())
        except (OSError, ValueError):
            pass
        sock.close()


def main(argv: "List[str]") -> int:
    try:
        config = parse_args(argv, read_file)
    except UsageError as e:
        if str(e):
            sys.stderr.write("Error: %s\n" % e)
        sys.stderr.write(USAGE)
        return 0 if not str(e) else 1
    except ConfigError as e:
        sys.stderr.write("Error: %s\n" % e)
        return 1
    try:
        server = Server(config)
    except ConfigError as e:  # a bridge's bridge_cafile, bridge_certfile or bridge_keyfile
        sys.stderr.write("Error: %s\n" % e)
        return 1
    except OSError as e:  # log_dest file PATH
        sys.stderr.write("Error: cannot open the log file %s: %s\n"
                         % (e.filename, e.strerror or e))
        return 1
    server.log(LOG_NOTICE, "%s (%s)" % (banner(), compiled.build))
    try:
        server.bind()
    except ConfigError as e:  # a TLS listener's certfile, keyfile or cafile
        server.close()
        sys.stderr.write("Error: %s\n" % e)
        return 1
    except OSError as e:
        reason = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        # an error from a unix socket listener names its path (open_unix_listener)
        at = ("unix:%s" % e.filename if e.filename else
              ", ".join(where(lst.host or "0.0.0.0", lst.port)
                        for lst in config.listeners if not lst.path))
        server.close()  # removes the socket files of the unix listeners already opened
        sys.stderr.write("Error: cannot listen on %s: %s\n" % (at, reason))
        return 1

    if getattr(config, "daemon", False):
        for address in server.addresses:
            sys.stderr.write("%d: listening on %s\n" % (int(time.time()), address))
        sys.stderr.flush()
        daemonize()  # before pid_file: it names the process that goes on
    try:
        pid_file = write_pid_file(config)
        drop_privileges(config, server.log)
    except OSError as e:
        server.close()
        sys.stderr.write("Error: %s\n" % e)
        return 1

    def on_signal(signum: int, frame: "object") -> None:
        server.stop()

    def on_hangup(signum: int, frame: "object") -> None:
        server.hangup()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    for address in server.addresses:
        # Always on stderr, whatever log_type says: tools wait for this line (launch contract).
        sys.stderr.write("%d: listening on %s\n" % (int(time.time()), address))
    sys.stderr.flush()
    server.serve()
    server.log(LOG_NOTICE, "broker terminating")
    remove_pid_file(pid_file)
    if isinstance(server.log, Log):
        server.log.close()
    return 0
