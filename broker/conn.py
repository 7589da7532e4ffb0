"""One network connection as the engine sees it: framer, output buffer, state, session."""
from broker.codec import Reader

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[no-untyped-def,misc]
        return x

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional
    from broker.session import Message, Session

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

    def __init__(self, handle: "Any", peer: str, max_packet_size: int, now: int) -> None:
        self.handle = handle
        self.peer = peer
        self.reader = Reader(max_packet_size)
        self.last_rx = now
        self.opened = now

    def pending(self) -> int:
        return self.olen - self.ooff

    def sent(self, n: int) -> bool:
        """The port wrote n bytes of the pending output; True once all of it is out."""
        self.ooff += n
        if self.ooff < self.olen:
            return False
        self.ooff = self.olen = 0
        return True
