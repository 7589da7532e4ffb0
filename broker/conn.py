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
    # A kept message being sent from its own buffer (spool()), between out[ooff:sp_at] and
    # out[sp_at:olen]: its head (fixed header and topic length, then the packet identifier) is
    # in sp_head; sp_seg is the part being sent (0 head, 1 topic, 2 packet id, 3 payload),
    # sp_off how much of it is out, sp_left the bytes still to send.
    sp_msg = None  # type: Optional[Message]
    sp_at = 0
    sp_head = NO_OUTPUT
    sp_hlen = 0
    sp_qos = 0
    sp_seg = 0
    sp_off = 0
    sp_left = 0
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
        return self.olen - self.ooff + self.sp_left

    def chunk(self) -> int:
        """What to send next, for the port: cbuf[coff:coff + n], n returned (0: nothing)."""
        msg = self.sp_msg
        if msg is None or self.ooff < self.sp_at:
            self.cbuf = self.out
            self.coff = self.ooff
            return (self.olen if msg is None else self.sp_at) - self.ooff
        seg = self.sp_seg
        if seg == 0 or seg == 2:
            self.cbuf = self.sp_head
            start = 0 if seg == 0 else self.sp_hlen
            end = self.sp_hlen if seg == 0 else self.sp_hlen + 2
        else:
            self.cbuf = msg.data
            start = 0 if seg == 1 else msg.tlen
            end = msg.tlen if seg == 1 else len(msg.data)
        self.coff = start + self.sp_off
        return end - self.coff

    def sent(self, n: int) -> None:
        """The port wrote n bytes of what chunk() pointed at."""
        if self.sp_msg is None or self.ooff < self.sp_at:
            self.ooff += n
            if self.ooff == self.olen and self.sp_msg is None:
                self.ooff = self.olen = 0
            return
        self.sp_left -= n
        if self.sp_left == 0:
            self.sp_msg = None
            self.sp_off = 0
            if self.ooff == self.olen:
                self.ooff = self.olen = 0
            return
        self.sp_off += n
        if self.coff + n == self._seg_end():
            self.sp_off = 0
            self.sp_seg += 1
            if self.sp_seg == 2 and not self.sp_qos:
                self.sp_seg = 3

    def _seg_end(self) -> int:
        seg = self.sp_seg
        if seg == 0:
            return self.sp_hlen
        if seg == 2:
            return self.sp_hlen + 2
        msg = self.sp_msg
        assert msg is not None
        return msg.tlen if seg == 1 else len(msg.data)
