"""Start-up of the MicroPython port's server: how many clients the heap holds, the tables made
at that size, the listeners (IPv4, IPv6, unix, TLS), and the one-line errors when they cannot
be opened. ports.micropython.server loads it while it starts and drops it once it listens
(unload()), so that a board's heap does not keep this code while serving.
"""
import gc
import os
import socket
import sys
import time

from broker.engine import Broker
from broker.settings import DEFAULT_MAX_CONNECTIONS

from broker.bytesops import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional
    from broker.settings import Config, Listener
    from ports.micropython.server import Server

_LOG_NOTICE = const(0x04)  # from broker.const
_PENDING_CONNECTIONS = const(16)  # broker.lifecycle's: sockets past max_connections
_SCRATCH = const(4096)
_SCRATCH_MIN = const(1024)
_OUT_HEAP_SHARE = const(8)
_COPY_MIN = const(256)
_COPY_HEAP_SHARE = const(64)
_LOG_WARNING = const(0x02)
_IN = const(1)  # select.POLLIN
_BACKLOG_MAX = const(128)
_EADDRINUSE = const(98)
_EAFNOSUPPORT = const(97)
_AF_INET = const(2)
_IPPROTO_IPV6 = const(41)
_IPV6_V6ONLY = const(26)
# What one client takes of the heap while it connects and is served, in words: 2.5 KB on
# 64-bit, 1.25 KB on a 32-bit board. Measured on the 64-bit unix port with the default limits:
# 1.1 KB per connected idle client, 1.3 KB with a subscription; a storm of them connecting at
# once fragments the heap as well (at 256 words, 100 clients connecting at once to a 256K heap
# still ran it out now and then). Without max_connections in the configuration, the broker
# admits as many clients as three quarters of the heap left free after start-up hold at that
# size; the last quarter is for the messages.
_CONN_WORDS = const(320)
_SPARE_POLL = const(8)  # poll entries beyond the clients: listeners, bridges, a probe's stdin
# Sockets up to which the tables are left to grow as clients come: a board profile's (8
# clients, 24 sockets) reach a few hundred bytes, which making them at start-up would cost for
# the broker's whole life; beyond, a storm would move tables of kilobytes about the heap.
_PRESIZE_MIN = const(32)


def logger(config: "Config") -> "Callable[[int, str], None]":
    """What logs a line: the port's _log, unless the configuration names other destinations
    than stderr or turns log_timestamp off."""
    if config.log_dest == "stderr" and getattr(config, "log_timestamp", True):
        from ports.micropython.server import _log  # loaded: it is loading this module
        return _log
    from ports.logdest import Log  # only then
    return Log(config)


def prepare(server: "Server", config: "Config",
            log: "Optional[Callable[[int, str], None]]") -> None:
    """Server.__init__: the engine, the read buffer, and the sockets bounded by
    max_connections (derived from the heap without one in the configuration, or with -1, said
    in one line); every table that grows with them is made at full size now, while the heap
    is in one piece: grown during a storm of connections, each would be reallocated wherever
    a block was free then, and stay there after the storm, in the middle of the heap it gave
    back (a client that needed a large block was refused by a stormed broker, served by a
    fresh one). Every attribute is set here, none later: the table of an instance's
    attributes grows too with the first assignment of each."""
    from ports.micropython import server as port  # loaded: it is loading this module
    server.config = config
    if log is None:
        log = logger(config)
    b = Broker(config, log, time.ticks_ms())  # type: ignore[attr-defined]
    if getattr(log, "topic", False):
        server.logs = log
    server.broker = b
    # The engine sizes a slow subscriber's output cap from max_packet_size alone (up to
    # 256 KB with no limit set); here one connection may not take more than an eighth of the
    # heap, or a single client that stops reading could exhaust it.
    heap = port._heap_free() + gc.mem_alloc()  # type: ignore[attr-defined]
    if b.out_soft > heap // _OUT_HEAP_SHARE:
        b.out_soft = heap // _OUT_HEAP_SHARE
    # ... and all of them together leave a sixteenth of the heap free for everything else:
    # past that, QoS 0 deliveries that need a bigger buffer are dropped (and counted), and
    # messages that would have to be kept are refused before they are acknowledged.
    b.heap_low = port._heap_low
    # A kept message larger than this goes out from its own buffer rather than through a
    # grown output buffer (broker.delivery): a board cannot hold a copy of each per subscriber.
    b.copy_max = min(b.out_soft, max(_COPY_MIN, heap // _COPY_HEAP_SHARE))
    server.listeners = {}
    server.conns = {}
    # One read's worth: half the largest packet is enough (a longer one is gathered by its
    # connection's reader), and 2 KB of a board's heap is worth more than fewer reads.
    server.scratch = bytearray(min(_SCRATCH, max(_SCRATCH_MIN, config.max_packet_size // 2)))
    server.addresses = []
    server._ipoll = None
    server.unix = {}
    server.tls = {}
    if getattr(config, "per_listener_settings", False):
        server.per_listener_settings = {}
    # TLS socket -> the socket under it: after a TLS error, closing the first leaves the second
    # open (mbedTLS forgets it), so the server closes both.
    server.raw = {}
    server.unix_files = []
    # The listeners are polled unless `paused`: 1 while the sockets are at max_sockets
    # (clients wait in the listen backlog, not in the heap), 2 after accept() failed, until
    # resume_at. `closed` sockets were closed since the heap was last settled, the last at
    # closed_at.
    server.paused = 0
    server.resume_at = 0
    server.closed = 0
    server.closed_at = 0
    gc.collect()  # what start-up has made so far and dropped is not the broker's to count
    free = port._heap_free()
    holds = free * 3 // 4 // (_CONN_WORDS * (8 if sys.maxsize > 0x7FFFFFFF else 4))
    if config.max_connections == DEFAULT_MAX_CONNECTIONS:
        config.max_connections = max(1, holds)
        port._log(_LOG_NOTICE, "max_connections %d: what this heap holds (%d KB free; set"
                  " max_connections to choose)" % (config.max_connections, free // 1024))
    server.max_sockets = config.max_connections + _PENDING_CONNECTIONS
    room = min(server.max_sockets, holds + _PENDING_CONNECTIONS)
    # select.poll() with room for these sockets made now, where it needs it. The unix port
    # keeps its file descriptors in one array that grows, four at a time, into a new block
    # when it cannot grow in place; on a fragmented heap that block is not found while plenty
    # is free, and a registration that fails there leaves an empty entry that the next
    # ipoll() reads through (modselect.c's poll_set_poll_once: SIGSEGV). Registering n
    # descriptors now and removing them, last first, leaves the array and the hash table
    # behind it at full size, so a socket registered later only takes its own small entry.
    # poll() refuses an array longer than the process may open files (ulimit -n): n is
    # halved until it takes it. A port that polls objects, not descriptors (a board's),
    # refuses an int at once: it gets a poller as it comes.
    import select
    n = room + _SPARE_POLL
    while True:
        poller = select.poll()
        try:
            poller.register(0, 0)
        except (OSError, TypeError):
            poller = select.poll()  # the first holds the refused entry: it is not used
            break
        for fd in range(1, n):
            poller.register(fd, 0)
        for fd in range(n - 1, -1, -1):
            poller.unregister(fd)
        try:
            poller.poll(0)
            break
        except OSError:  # EINVAL: n is over RLIMIT_NOFILE
            n //= 2
    server.poller = poller
    server.links = None
    if config.bridges:
        from ports.micropython.bridge_link import links  # only with a bridge
        server.links = links(b, server.poller, server.scratch)
    if config.persistence is not None:
        from ports.persist import open_store  # only with `persistence true`
        server.store = open_store(b, log, server.links)
    if room <= _PRESIZE_MIN:
        return
    # The socket table, and the engine's tables that grow with the clients: its sessions,
    # and routing's list of the sessions a message goes to (add_session grows it).
    if len(b.hits) <= room:
        b.hits.extend([None] * (room + 1 - len(b.hits)))
    tables = [server.conns, b.sessions]  # type: List[Any]
    for table in tables:
        for i in range(room):
            table[i] = None
        for i in range(room - 1, -1, -1):  # last first: the hash table is left empty
            del table[i]


def bind(server: "Server") -> None:
    """Open every listener. A listener that cannot be opened raises OSError(its name, why),
    or unixsock.ListenError for a unix socket; a TLS listener's files or runtime ValueError.
    An IPv6 address gets an IPv6 socket, and "::" takes IPv4 clients too (dual stack); a
    MicroPython without IPv6 listens on IPv4 for "::", and says so."""
    for lst in server.config.listeners:
        if lst.path:
            # only now: a board's configuration has no unix listener, and never loads this
            from ports.micropython.unixsock import open_unix_listener
            sock = open_unix_listener(lst.path, lst.socket_mode, server.unix_files)
            sock.setblocking(False)
            server.listeners[sock] = 0
            server.unix[sock] = lst.path
            if hasattr(server, "per_listener_settings"):
                server.per_listener_settings[sock] = lst
            server.poller.register(sock, _IN)
            server.addresses.append("unix:" + lst.path)
            continue
        host = lst.host or "0.0.0.0"
        # the listener's address for the log: an IPv6 address in brackets
        name = ("[%s]:%d" if ":" in host else "%s:%d") % (host, lst.port)
        ctx = None
        if lst.certfile:
            from ports.micropython.tls import server_context  # only with a TLS listener
            ctx = server_context(lst)
        family = _AF_INET
        if ":" in host:
            family = getattr(socket, "AF_INET6", 0)
            if not family and host != "::":
                raise OSError(name, "this MicroPython has no IPv6")
            if not family:
                from ports.micropython.server import _log
                _log(_LOG_WARNING, "Listener %s: this MicroPython has no IPv6, listening on"
                     " IPv4 only." % name)
                family = _AF_INET
                host = "0.0.0.0"
                name = "%s:%d" % (host, lst.port)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if host == "::":
                try:
                    sock.setsockopt(_IPPROTO_IPV6, _IPV6_V6ONLY, 0)
                except OSError:
                    pass  # a stack without the option: IPv6 only
            sock.bind(socket.getaddrinfo(host, lst.port)[0][-1])
            # a burst of clients waits in the backlog, not for the kernel's SYN retries
            sock.listen(min(max(server.max_sockets, 8), _BACKLOG_MAX))
        except OSError as e:
            sock.close()
            code = e.args[0] if e.args else 0
            if code == _EADDRINUSE:
                raise OSError(name, "address already in use")
            if code == _EAFNOSUPPORT:
                raise OSError(name, "address family not supported (no IPv6 here?)")
            raise OSError(name, str(e))
        sock.setblocking(False)
        server.listeners[sock] = lst.port
        if hasattr(server, "per_listener_settings"):
            server.per_listener_settings[sock] = lst
        if ctx is not None:
            server.tls[sock] = ctx
        if lst.websockets:
            if lst.http_dir and not _is_dir(lst.http_dir):  # as mosquitto
                raise ValueError("listener %s: http_dir %s is not a directory"
                                 % (name, lst.http_dir))
            if server.ws is None:
                server.ws = {}
                # now, while the heap is emptiest, and before the heap plan, which counts them
                import ports.websocket  # noqa: F401
                import ports.wshttp  # noqa: F401
            server.ws[sock] = lst.http_dir
        server.poller.register(sock, _IN)
        server.addresses.append(name)


def start(config: "Config",
          log: "Optional[Callable[[int, str], None]]" = None) -> "Optional[Server]":
    """The server, listening; or None after saying why not in one line."""
    from ports.micropython.server import Server
    try:
        server = Server(config, log)
    except ValueError as e:  # a bridge's TLS files or runtime (ports/micropython/tls.py)
        sys.stderr.write("Error: %s\n" % e)
        return None
    except MemoryError:  # its tables and read buffer
        from ports.micropython.launch import out_of_memory  # loaded: it loaded this module
        out_of_memory("starting")
        return None
    error = ""
    try:
        server.bind()
        from ports.micropython.heapplan import plan  # it unloads itself
        from ports.micropython.server import _heap_free, _log
        error = plan(server.broker, config, _heap_free, _log)
    except MemoryError:  # a TLS listener's context, or the plan's own code
        server.close_listeners()
        from ports.micropython.launch import out_of_memory  # loaded: it loaded this module
        out_of_memory("starting")
        return None
    except ValueError as e:  # a TLS listener's files or runtime (ports/micropython/tls.py)
        server.close_listeners()
        sys.stderr.write("Error: %s\n" % e)
        return None
    except Exception as e:
        # OSError(listener, why), or unixsock.ListenError (loaded already if e is one)
        if not (isinstance(e, OSError) and isinstance(e.args[0], str)
                or type(e).__name__ == "ListenError"):
            raise
        server.close_listeners()  # removes the socket files of the unix listeners opened
        sys.stderr.write("Error: cannot listen on %s: %s\n" % (e.args[0], e.args[1]))
        return None
    if error:
        server.close_listeners()
        sys.stderr.write("Error: %s\n" % error)
        return None
    for address in server.addresses:
        sys.stderr.write("%d: listening on %s\n" % (int(time.time()), address))
    return server


def _is_dir(path: str) -> bool:
    try:
        return bool(os.stat(path)[0] & 0x4000)
    except OSError:
        return False


def unload() -> None:
    """Forget this module, so that the next collection frees it (the caller keeps no name of
    it): from sys.modules and from the package, which keeps its imported submodules."""
    import ports.micropython
    name = "ports.micropython.startup"
    if name in sys.modules:
        del sys.modules[name]
    if hasattr(ports.micropython, "startup"):
        delattr(ports.micropython, "startup")
