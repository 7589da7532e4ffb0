# A stand-in `socket` module for MicroPython's webassembly port, which has no sockets: the
# broker's connections are Node.js sockets (tools/wasm32/serve.mjs), and their bytes pass through
# two buffers in the port's C heap, outside the GC heap, as a board's network stack keeps its
# packet buffers outside it:
#
# - inbox: bytes that arrived for one socket; serve.mjs fills it, calls arrived(sid, n), lets
#   the server read, and takes back what it left unread (unread(sid)) for later;
# - outbox: records [sid:2][n:2][n bytes] that write() appends and serve.mjs sends on after
#   each call; bytes 0..3 hold the records' total length. Two values of n are requests instead:
#   0xFFFF closes the socket, and 0xFFFE, followed by [port:2][length:2][host], opens an
#   outgoing connection (a bridge's), which serve.mjs reports with opened() or refused().
#
# Poller stands in for select.poll(): ipoll() never blocks, serve.mjs calls the server's step()
# whenever something happened, on a timer, and at once again while a socket is ready (ready()),
# as a board's loop finds its poll ready.
import struct

import uctypes

AF_INET = 2
SOCK_STREAM = 1
SOL_SOCKET = 1
SO_REUSEADDR = 2
_EAGAIN = 11
_ENOBUFS = 105
_EINPROGRESS = 115
_POLLIN = 1
_POLLOUT = 4
_POLLERR = 8
_POLLHUP = 16
_CLOSE = 0xFFFF
_CONNECT = 0xFFFE
_OUTGOING = 0x8000  # sids from here on are outgoing connections; serve.mjs numbers the others
_HEAD = 4

_inbox = memoryview(bytearray(0))
_outbox = bytearray(0)
_listener = None  # type: ignore[var-annotated]
_pending = []  # (sid, peer port) connected, not yet accepted
# sid -> what arrived() offered a socket not accepted yet (all left unread), or -1 when its
# peer has gone
_early = {}
_open = {}  # sid -> socket
_next_sid = _OUTGOING


def setup(in_addr, in_size, out_addr, out_size):
    global _inbox, _outbox
    _inbox = memoryview(uctypes.bytearray_at(in_addr, in_size))
    _outbox = uctypes.bytearray_at(out_addr, out_size)


def connected(sid, port):
    _pending.append((sid, port))


def arrived(sid, n):
    s = _open.get(sid)
    if s is not None:
        s.avail = n
        s.off = 0
    else:
        _early[sid] = n  # not accepted yet (the server's sockets are at their cap): unread


def unread(sid):
    """How many of the bytes given by arrived() the server has not read; forgets them."""
    s = _open.get(sid)
    if s is None:
        return _early.pop(sid, 0)
    left = s.avail - s.off
    s.avail = s.off = 0
    return left


def blocked(sid, flag):
    """Node holds what the kernel did not take: writes wait until it drains."""
    s = _open.get(sid)
    if s is not None:
        s.blocked = flag


def opened(sid):
    s = _open.get(sid)
    if s is not None:
        s.connecting = False


def refused(sid):
    s = _open.get(sid)
    if s is not None:
        s.connecting = False
        s.failed = s.eof = True


def hung_up(sid):
    s = _open.get(sid)
    if s is not None:
        s.eof = True
    elif any(p[0] == sid for p in _pending):
        _early[sid] = -1  # gone before it was accepted: accept() gives it at end of file


def getaddrinfo(host, port):
    return [(AF_INET, SOCK_STREAM, 0, "", (host, port))]


def _used():
    return struct.unpack_from("<I", _outbox, 0)[0]


def _record(sid, n, size):
    """Start a record for sid that says n and holds size bytes; the offset of its data, or -1
    when it does not fit."""
    used = _used()
    size += 4
    if _HEAD + used + size > len(_outbox):
        return -1
    struct.pack_into("<HH", _outbox, _HEAD + used, sid, n)
    struct.pack_into("<I", _outbox, 0, used + size)
    return _HEAD + used + 4


class socket:
    # class attributes until connect() sets them: an accepted socket, as a board's lwIP one,
    # keeps its size in the heap figures
    connecting = False
    failed = False

    def __init__(self, af=AF_INET, kind=SOCK_STREAM, sid=0):
        self.sid = sid
        self.avail = 0  # bytes in the inbox for this socket, read up to off
        self.off = 0
        self.eof = False
        self.blocked = False
        self.port = 0

    def setsockopt(self, level, name, value):
        pass

    def setblocking(self, flag):
        pass

    def bind(self, addr):
        self.port = addr[1]

    def listen(self, backlog):
        global _listener
        _listener = self

    def connect(self, addr):
        global _next_sid
        host = addr[0].encode()
        self.sid = _next_sid
        _next_sid += 1
        pos = _record(self.sid, _CONNECT, 4 + len(host))
        if pos < 0:
            raise OSError(_ENOBUFS)
        struct.pack_into("<HH", _outbox, pos, addr[1], len(host))
        _outbox[pos + 4:pos + 4 + len(host)] = host
        _open[self.sid] = self
        self.connecting = True
        raise OSError(_EINPROGRESS)

    def accept(self):
        if not _pending:
            raise OSError(_EAGAIN)
        sid, port = _pending.pop(0)
        s = socket(sid=sid)
        if _early.pop(sid, 0) < 0:
            s.eof = True
        _open[sid] = s
        return s, ("127.0.0.1", port)

    def readinto(self, buf, n=-1):
        k = min(self.avail - self.off, len(buf))
        if 0 <= n < k:
            k = n
        if k > 0:
            buf[0:k] = _inbox[self.off:self.off + k]
            self.off += k
            return k
        if self.eof:
            return 0
        return None

    def write(self, buf, off=0, n=-1):
        if self.blocked:
            return None
        if n < 0:
            n = len(buf) - off
        n = min(n, _CONNECT - 1)
        pos = _record(self.sid, n, n)
        if pos < 0:
            return None
        _outbox[pos:pos + n] = memoryview(buf)[off:off + n]
        return n

    def close(self):
        if self is _listener or _open.pop(self.sid, None) is None:
            return
        _record(self.sid, _CLOSE, 0)


class Poller:
    def __init__(self):
        self.masks = {}

    def register(self, sock, mask=_POLLIN | _POLLOUT):
        self.masks[sock] = mask

    def modify(self, sock, mask):
        self.masks[sock] = mask

    def unregister(self, sock):
        self.masks.pop(sock, None)

    def ipoll(self, timeout=-1, flags=0):
        ready = []
        for sock in self.masks:
            ev = _events(sock, self.masks[sock])
            if ev:
                ready.append((sock, ev))
        return ready

    def ready(self):
        """Whether ipoll() would report a socket now (without making its list)."""
        for sock in self.masks:
            if _events(sock, self.masks[sock]):
                return True
        return False


def _events(sock, mask):
    if sock is _listener:
        return _POLLIN if _pending else 0
    if sock.connecting:
        return 0
    if sock.failed:
        return _POLLERR | _POLLHUP
    ev = 0
    unread = sock.avail - sock.off
    if mask & _POLLIN and (unread or sock.eof):
        ev |= _POLLIN if unread else _POLLHUP
    if mask & _POLLOUT and not sock.blocked and _HEAD + _used() + 64 < len(_outbox):
        ev |= _POLLOUT
    return ev
