"""MQTT over WebSockets (RFC 6455), sans-I/O, for both ports: the HTTP request that opens a
connection, then the frames around the MQTT bytes. Imported only when a listener says
`protocol websockets`; a connection accepted there gets a Ws as conn.ws, and ports/loop.py
hands it what the socket read (read()) and takes what to send from it (chunk(), sent()).

In: frames are taken apart in the buffer the port read into. Their payload is unmasked and moved
to the front of that buffer, over the frame headers, and fed to the engine from there, so that
a frame's bytes are never copied elsewhere and a frame costs no memory of its own: what a Ws
holds (its header bytes, a control frame's payload) is fixed when it is made. A split frame's
payload goes to the engine as it comes: the MQTT reader gathers a packet, as over TCP.

Out: whatever the engine has queued for the connection when the port flushes goes out as one
binary frame, its 2 to 10 byte header sent first from the Ws, then the bytes from the
connection's own output (Conn.chunk()), never copied.
"""
from broker import lifecycle
from broker.bytesops import MPY, const, micropython

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Union
    from broker.conn import Conn
    from broker.engine import Broker
    Buffer = Union[bytes, bytearray]

# phases
REQUEST = const(0)  # reading the HTTP request
HTTP = const(1)     # answering it over HTTP, then closing
OPEN = const(2)     # upgraded: WebSocket frames both ways
CLOSING = const(3)  # a Close frame is on its way out; nothing more is read

_REQUEST_MAX = const(2048)  # an HTTP request's head, at most (else 400)
# A file goes out at most this many pieces (ports.wshttp's 512 bytes) per turn of the loop, so
# that a large page sent to a fast reader never keeps the other clients waiting, nor makes
# more in one turn than a board collects (the 32-bit port collects only between two turns).
_PIECES_PER_TURN = const(8)
_LOG_NOTICE = const(0x04)

# h: the header of the frame coming in (at most 14 bytes), its masking key, the header going out
_KEY = const(14)
_OUT = const(18)
# ctl: a control frame's payload coming in (125 bytes at most, section 5.5), then the control
# frame going out
_CTL_OUT = const(128)

# what chunk() pointed the port at
_RESP = const(1)
_FILE = const(2)
_HDR = const(3)
_DATA = const(4)
_CTL = const(5)

_OP_CONTINUATION = const(0)
_OP_TEXT = const(1)
_OP_BINARY = const(2)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)

# Close status codes (section 7.4.1)
_PROTOCOL_ERROR = const(1002)
_UNSUPPORTED_DATA = const(1003)
_TOO_BIG = const(1009)

if MPY:
    @micropython.viper
    def _unmask(buf: ptr8, o: int, i: int, k: int, h: ptr8, m: int) -> int:
        j = 0
        while j < k:
            buf[o + j] = buf[i + j] ^ h[_KEY + ((m + j) & 3)]
            j += 1
        return (m + k) & 3
else:
    def _unmask(buf: "Any", o: int, i: int, k: int, h: "Any", m: int) -> int:
        """Unmask buf[i:i + k] into buf[o:o + k] (o <= i), the key's byte m first; the key's
        byte for the next one."""
        key = bytes(h[_KEY + ((m + j) & 3)] for j in range(4))
        mask = (key * ((k + 3) >> 2))[:k]
        v = int.from_bytes(buf[i:i + k], "little") ^ int.from_bytes(mask, "little")
        buf[o:o + k] = v.to_bytes(k, "little")
        return (m + k) & 3


class Ws:
    """One connection's WebSocket state. Defaults on the class (docs/design.md)."""

    phase = REQUEST
    req = None  # type: Optional[bytearray]  # the request's head, until it is answered
    rn = 0
    resp = b""  # type: Buffer  # the HTTP response's head (and an error's body) to send
    roff = 0
    file = None  # type: Any  # http_dir's file being sent, in pieces through fbuf
    fbuf = None  # type: Any
    foff = 0
    fend = 0
    fturn = 0       # the file's pieces sent this turn
    # the frame coming in
    hn = 0          # its header's bytes in h
    left = 0        # its payload bytes still to come
    op = 0
    mpos = 0        # the masking key's byte for the next payload byte
    fragmented = False  # a binary message goes on in continuation frames
    ctl = None  # type: Optional[bytearray]  # made at the first control frame
    cn = 0          # a control frame's payload bytes in ctl
    peer_closed = False
    # what goes out
    hoff = 0        # the frame header h[hoff:hend] still to send
    hend = 0
    oleft = 0       # payload bytes of the frame being sent still to send
    qend = 0        # the control frame ctl[_CTL_OUT + qoff:_CTL_OUT + qend] still to send
    qoff = 0
    what = 0
    cbuf = b""  # type: Buffer
    coff = 0

    def __init__(self, b: "Broker", conn: "Conn", http_dir: str) -> None:
        self.b = b
        self.conn = conn
        self.http_dir = http_dir
        self.h = bytearray(28)
        self.max_frame = b.config.max_packet_size

    # -- in -----------------------------------------------------------------------------------

    def read(self, buf: bytearray, n: int) -> None:
        """The socket read buf[0:n]."""
        i = 0
        if self.phase == REQUEST:
            i = self._request(buf, n)
        if self.phase != OPEN or i >= n:
            return
        o = self._frames(buf, i, n)
        b = self.b
        conn = self.conn
        if o:
            b.feed(conn, buf, o)
        if self.phase == CLOSING:
            if self.peer_closed:
                lifecycle.lost(b, conn)
            else:
                lifecycle.close(b, conn, "", True)

    def _request(self, buf: bytearray, n: int) -> int:
        """Gather the request's head; once it is whole, answer it. Where its bytes end in
        buf (n while it is not whole)."""
        req = self.req
        if req is None:
            self.req = req = bytearray(_REQUEST_MAX)
        rn = self.rn
        k = n if n < _REQUEST_MAX - rn else _REQUEST_MAX - rn
        req[rn:rn + k] = memoryview(buf)[0:k]
        end = req.find(b"\r\n\r\n", rn - 3 if rn > 3 else 0, rn + k)
        if end < 0:
            self.rn = rn + k
            if self.rn == _REQUEST_MAX:
                self.req = None
                from ports.wshttp import refuse
                refuse(self, 400)
                self._wake()
            return n
        self.req = None
        end += 4
        from ports.wshttp import answer  # the first request on a websockets listener
        answer(self, req, end)
        self._wake()
        return end - rn

    @micropython.native
    def _frames(self, buf: bytearray, i: int, n: int) -> int:
        """Take the frames of buf[i:n] apart: their MQTT bytes, unmasked, to buf[0:o]; o."""
        h = self.h
        o = 0
        while i < n and self.phase == OPEN:
            left = self.left
            if left:
                k = n - i
                if k > left:
                    k = left
                if self.op >= _OP_CLOSE:
                    ctl = self.ctl
                    cn = self.cn
                    m = self.mpos
                    j = 0
                    while j < k:
                        ctl[cn + j] = buf[i + j] ^ h[_KEY + ((m + j) & 3)]  # type: ignore[index]
                        j += 1
                    self.cn = cn + k
                    self.mpos = (m + k) & 3
                else:
                    self.mpos = _unmask(buf, o, i, k, h, self.mpos)
                    o += k
                i += k
                self.left = left - k
                if left == k and self.op >= _OP_CLOSE:
                    self._control()
                continue
            hn = self.hn
            h[hn] = buf[i]
            i += 1
            hn += 1
            self.hn = hn
            if hn < 2:
                continue
            ln = h[1] & 0x7F
            need = 6 if ln < 126 else 8 if ln == 126 else 14
            if hn == 2 and not self._first(ln):
                break
            if hn < need:
                continue
            self.hn = 0
            if ln == 126:
                ln = (h[2] << 8) | h[3]
            elif ln == 127:
                if h[2] & 0x80:  # section 5.2: the most significant bit MUST be 0
                    self._fail(_PROTOCOL_ERROR, "a frame length of 64 bits")
                    break
                ln = 0
                j = 2
                while j < 10:
                    if ln > self.max_frame:
                        break
                    ln = (ln << 8) | h[j]
                    j += 1
            if ln > self.max_frame:
                self._fail(_TOO_BIG, "a frame larger than max_packet_size")
                break
            h[_KEY] = h[need - 4]
            h[_KEY + 1] = h[need - 3]
            h[_KEY + 2] = h[need - 2]
            h[_KEY + 3] = h[need - 1]
            self.mpos = 0
            op = h[0] & 0x0F
            self.op = op
            self.left = ln
            if op >= _OP_CLOSE:
                if self.ctl is None:
                    self.ctl = bytearray(256)
                self.cn = 0
                if ln == 0:
                    self._control()
            else:
                self.fragmented = not h[0] & 0x80
        return o

    def _first(self, ln: int) -> bool:
        """Check a frame's first two bytes (section 5.2); False when the frame is refused."""
        h = self.h
        op = h[0] & 0x0F
        why = ""
        code = _PROTOCOL_ERROR
        if h[0] & 0x70:
            why = "a frame with reserved bits set"  # no extension was negotiated
        elif not h[1] & 0x80:
            why = "an unmasked frame"  # section 5.1: a client masks every frame
        elif op == _OP_TEXT:
            # [MQTT-6.0.0-1]: MQTT Control Packets come in binary frames only
            why = "a text frame"
            code = _UNSUPPORTED_DATA
        elif op >= _OP_CLOSE:
            if op > _OP_PONG:
                why = "a frame of opcode %d" % op
            elif ln > 125 or not h[0] & 0x80:  # section 5.5
                why = "a control frame fragmented or over 125 bytes"
        elif op == _OP_CONTINUATION:
            if not self.fragmented:
                why = "a continuation frame with no message to continue"
        elif op != _OP_BINARY:
            why = "a frame of opcode %d" % op
        elif self.fragmented:
            why = "a new message before the last one ended"
        if why:
            self._fail(code, why)
            return False
        return True

    def _control(self) -> None:
        """A whole control frame came in: its payload is ctl[0:cn]."""
        op = self.op
        self.op = _OP_BINARY  # what a continuation frame after it continues
        if op == _OP_PONG:
            return
        ctl = self.ctl
        cn = self.cn
        if op == _OP_CLOSE:
            if cn == 1:
                self._fail(_PROTOCOL_ERROR, "a Close frame with a 1-byte body")
                return
            # section 5.5.1: the answer echoes the status code
            self._send_control(0x88, 2 if cn > 2 else cn)
            self.peer_closed = True
            self.phase = CLOSING
            return
        self._send_control(0x8A, cn)  # a Pong with the Ping's Application data (5.5.3)

    def _send_control(self, b0: int, n: int) -> None:
        """Queue a control frame whose payload is ctl[0:n]."""
        ctl = self.ctl
        assert ctl is not None
        ctl[_CTL_OUT] = b0
        ctl[_CTL_OUT + 1] = n
        ctl[_CTL_OUT + 2:_CTL_OUT + 2 + n] = ctl[0:n]
        self.qend = n + 2
        self.qoff = 0
        self._wake()

    def _fail(self, code: int, why: str) -> None:
        """Fail the WebSocket connection (section 7.1.7): a Close frame with code, then the
        TCP connection is closed."""
        self.b.log(_LOG_NOTICE, "Client %s sent %s over WebSockets, disconnecting."
                   % (self.conn.client_id or self.conn.peer, why))
        if self.ctl is None:
            self.ctl = bytearray(256)
        self.ctl[0] = code >> 8
        self.ctl[1] = code & 0xFF
        self._send_control(0x88, 2)
        self.phase = CLOSING

    def _wake(self) -> None:
        """Have the port flush this connection."""
        conn = self.conn
        if not conn.in_wq:
            conn.in_wq = True
            self.b.wq.append(conn)

    # -- out: what the port sends, as Conn.chunk() and Conn.sent() ---------------------------

    @micropython.native
    def chunk(self) -> int:
        """What to send next: cbuf[coff:coff + n], n returned (0: nothing; -1: more of a file,
        at the next turn)."""
        if self.roff < len(self.resp):
            self.what = _RESP
            self.cbuf = self.resp
            self.coff = self.roff
            return len(self.resp) - self.roff
        if self.phase < OPEN:
            return self._http_chunk()
        if self.hoff < self.hend:
            self.what = _HDR
            self.cbuf = self.h
            self.coff = self.hoff
            return self.hend - self.hoff
        conn = self.conn
        if self.oleft:
            n = conn.chunk()
            if n > self.oleft:
                n = self.oleft
            self.what = _DATA
            self.cbuf = conn.cbuf
            self.coff = conn.coff
            return n
        n = 0
        if self.qend == 0 or self.ctl[_CTL_OUT] != 0x8A:  # type: ignore[index]  # a Pong first
            n = conn.chunk()
        if n:
            self._header(n)
            self.what = _HDR
            self.cbuf = self.h
            self.coff = _OUT
            return self.hend - _OUT
        if self.qend:
            self.what = _CTL
            self.cbuf = self.ctl  # type: ignore[assignment]
            self.coff = _CTL_OUT + self.qoff
            return self.qend - self.qoff
        return 0

    @micropython.native
    def _header(self, n: int) -> None:
        """A binary frame's header for n bytes, FIN set, unmasked (a server never masks)."""
        h = self.h
        h[_OUT] = 0x82
        if n < 126:
            h[_OUT + 1] = n
            end = _OUT + 2
        elif n < 65536:
            h[_OUT + 1] = 126
            h[_OUT + 2] = n >> 8
            h[_OUT + 3] = n & 0xFF
            end = _OUT + 4
        else:
            h[_OUT + 1] = 127
            h[_OUT + 2] = h[_OUT + 3] = h[_OUT + 4] = h[_OUT + 5] = 0
            h[_OUT + 6] = (n >> 24) & 0xFF
            h[_OUT + 7] = (n >> 16) & 0xFF
            h[_OUT + 8] = (n >> 8) & 0xFF
            h[_OUT + 9] = n & 0xFF
            end = _OUT + 10
        self.hoff = _OUT
        self.hend = end
        self.oleft = n

    def _http_chunk(self) -> int:
        """The file being sent, a piece at a time; once all is sent, the connection closes."""
        f = self.file
        if f is not None:
            if self.foff == self.fend:
                if self.fturn == _PIECES_PER_TURN:
                    self.fturn = 0
                    return -1
                self.fturn += 1
                try:
                    k = f.readinto(self.fbuf)
                except OSError:
                    k = 0
                self.foff = 0
                self.fend = k or 0
            if self.fend:
                self.what = _FILE
                self.cbuf = self.fbuf
                self.coff = self.foff
                return self.fend - self.foff
            f.close()
            self.file = self.fbuf = None
        if self.phase == HTTP:
            lifecycle.close(self.b, self.conn, "", False)
        return 0

    @micropython.native
    def sent(self, k: int) -> None:
        """The port wrote k bytes of what chunk() pointed at."""
        w = self.what
        if w == _DATA:
            self.oleft -= k
            self.conn.sent(k)
        elif w == _HDR:
            self.hoff += k
            if self.hoff == self.hend:
                self.hoff = self.hend = 0
        elif w == _CTL:
            self.qoff += k
            if self.qoff == self.qend:
                self.qoff = self.qend = 0
        elif w == _RESP:
            self.roff += k
            if self.roff == len(self.resp):
                self.resp = b""
                self.roff = 0
        else:
            self.foff += k
            # the connect timeout cuts a client that stopped reading, not a long download
            self.conn.opened = self.b.now
        self.cbuf = b""

    def close(self) -> None:
        """The connection is gone: a file being sent is closed."""
        if self.file is not None:
            self.file.close()
            self.file = self.fbuf = None
