"""One network connection as the engine sees it: framer, output buffer, state, session."""
from broker.codec import Reader

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[no-untyped-def,misc]
        return x

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Union
    from broker.session import Message, Session
    Buffer = Union[bytes, bytearray]

# Connection states.
NEW = const(0)          # accepted, waiting for CONNECT
CONNECTED = const(1)
CLOSED = const(2)       # the engine is done with it; the port flushes what is left and closes

NO_OUTPUT = bytearray(0)  # shared by connections holding no output buffer: never written to


class Conn:
    """One network connection: its framer, its output buffer, and the session it is bound to.

    Defaults live on the class: MicroPython keeps an instance's attributes in a per-instance
    table, so an idle connection stores only what differs from them."""

    out = NO_OUTPUT  # type: bytearray  # replaced by a real buffer on the first write
    ooff = 0          # first byte not yet flushed
    olen = 0          # end of the bytes to flush
    in_wq = False
    busy = False      # output reserved since the engine's last idle check
    state = NEW
    session = None  # type: Optional[Session]
    client_id = ""
    username = None  # type: Optional[str]  # the CONNECT's username (None: anonymous)
    level = 0
    keepalive_ms = 0
    will = None  # type: Optional[Message]
    dropped = 0
    polled = 0  # the port's poll mask for this connection (the engine never reads it)
    topic_ok = None  # type: Optional[bytes]  # (CPython) the last topic name found valid
    # A kept message being sent from its own buffer (broker.delivery.spool()), between
    # out[ooff:sp_at] and out[sp_at:olen]: its bytes are sp_head[0:sp_hlen] (fixed header and
    # topic length), the topic, sp_head[sp_hlen:sp_hlen + sp_idlen] (the packet identifier),
    # the payload; sp_done of its sp_size bytes are out.
    sp_msg = None  # type: Optional[Message]
    sp_at = 0
    sp_head = NO_OUTPUT
    sp_hlen = 0
    sp_idlen = 0
    sp_done = 0
    sp_size = 0
    # what chunk() points the port at
    cbuf = NO_OUTPUT  # type: Buffer
    coff = 0

    def __init__(self, handle: "Any", peer: str, max_packet_size: int, now: int) -> None:
        self.handle = handle
        self.peer = peer
        self.reader = Reader(max_packet_size)
        self.last_rx = now
        self.opened = now

    def pending(self) -> int:
        """Bytes still to send, the spooled message's included."""
        n = self.olen - self.ooff
        if self.sp_msg is not None:
            n += self.sp_size - self.sp_done
        return n

    def chunk(self) -> int:
        """What to send next, for the port: cbuf[coff:coff + n], n returned (0: nothing)."""
        m = self.sp_msg
        if m is None or self.ooff < self.sp_at:
            n = (self.olen if m is None else self.sp_at) - self.ooff
            if n:  # (else cbuf would hold on to a buffer the idle check gives back)
                self.cbuf = self.out
                self.coff = self.ooff
            return n
        # the spooled message's four parts, one after the other
        d = self.sp_done
        h = self.sp_hlen
        t = m.tlen
        if d < h:
            self.cbuf = self.sp_head
            self.coff = d
            return h - d
        d -= h
        if d < t:
            self.cbuf = m.data
            self.coff = d
            return t - d
        d -= t
        if d < self.sp_idlen:
            self.cbuf = self.sp_head
            self.coff = h + d
            return self.sp_idlen - d
        self.cbuf = m.data
        self.coff = d - self.sp_idlen + t
        return len(m.data) - self.coff

    def sent(self, n: int) -> None:
        """The port wrote n bytes of what chunk() pointed at."""
        if self.sp_msg is None or self.ooff < self.sp_at:
            self.ooff += n
        else:
            self.sp_done += n
            if self.sp_done == self.sp_size:
                self.sp_msg = None
        if self.ooff == self.olen and self.sp_msg is None:
            self.ooff = self.olen = 0
            self.cbuf = NO_OUTPUT  # nor a spooled message's
