"""One network connection as the engine sees it: framer, output buffer, state, session."""
from broker.codec import Reader
from broker.const import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional
    from broker.session import Message, Session

# Connection states.
NEW = const(0)          # accepted, waiting for CONNECT
CONNECTED = const(1)
CLOSED = const(2)       # the engine is done with it; the port flushes what is left and closes


class Conn:
    """One network connection: its framer, its output buffer, and the session it is bound to."""

    def __init__(self, handle: "Any", peer: str, max_packet_size: int, now: int) -> None:
        self.handle = handle
        self.peer = peer
        self.reader = Reader(max_packet_size)
        self.out = bytearray(0)
        self.ooff = 0          # first byte not yet flushed
        self.olen = 0          # end of the bytes to flush
        self.in_wq = False
        self.state = NEW
        self.session = None  # type: Optional[Session]
        self.client_id = ""
        self.level = 0
        self.keepalive_ms = 0
        self.last_rx = now
        self.opened = now
        self.will = None  # type: Optional[Message]
        self.dropped = 0

    def pending(self) -> int:
        return self.olen - self.ooff
