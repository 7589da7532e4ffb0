"""One network connection as the engine sees it: framer, output buffer, state, session."""
from broker.codec import Reader

from broker.bytesops import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Union
    from broker.session import Message, Session
    from broker.spool import Spool
    Buffer = Union[bytes, bytearray]

# Connection states.
NEW = const(0)          # accepted, waiting for CONNECT
CONNECTED = const(1)
CLOSED = const(2)       # the engine is done with it; the port flushes what is left and closes

NO_OUTPUT = bytearray(0)  # shared by connections holding no output buffer: never written to


class Conn:
    """One network connection: its framer, its output buffer, and the session it is bound to.

    Defaults live on the class, so that an idle connection stores only what differs
    (docs/design.md)."""

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
    v5 = None  # type: Any  # an MQTT 5 client's state (broker.v5.State)
    keepalive_ms = 0
    will = None  # type: Optional[Message]
    dropped = 0
    polled = 0  # the port's poll mask for this connection (the engine never reads it)
    topic_ok = None  # type: Optional[bytes]  # (CPython) the last short topic name found valid
    spool = None  # type: Optional[Spool]  # a kept message sent from its own buffer
    ws = None  # type: Any  # the port's ports.websocket.Ws, on a websockets listener
    # per_listener_settings true: the Listener it came through (its own allow_anonymous,
    # passwords, acl, client id options), set by the port only then
    listener = None  # type: Any
    # use_identity_as_username or use_subject_as_username (a TLS listener, set by the
    # port): the username the client's certificate gives, "" when it gives none
    certificate_name = None  # type: Optional[Callable[[], str]]
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
        sp = self.spool
        if sp is not None:
            n += sp.size - sp.done
        return n

    def chunk(self) -> int:
        """What to send next, for the port: cbuf[coff:coff + n], n returned (0: nothing)."""
        sp = self.spool
        if sp is not None and self.ooff >= sp.at:
            return sp.chunk(self)
        n = (self.olen if sp is None else sp.at) - self.ooff
        # (n and no buffer: a refusal's constant CONNACK, where broker.output pointed cbuf; no
        # n: cbuf would hold on to a buffer the idle check gives back)
        if n and len(self.out):
            self.cbuf = self.out
            self.coff = self.ooff
        return n

    def sent(self, n: int) -> None:
        """The port wrote n bytes of what chunk() pointed at."""
        sp = self.spool
        if sp is None or self.ooff < sp.at:
            self.ooff += n
        else:
            sp.done += n
            if sp.done == sp.size:
                self.spool = sp = None
        if self.ooff == self.olen and sp is None:
            self.ooff = self.olen = 0
            self.cbuf = NO_OUTPUT  # nor a spooled message's
