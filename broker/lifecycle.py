"""The broker's tables and the life of a connection around the protocol state machine.

broker.engine.Broker derives from Lifecycle: accepting a socket, CONNACK, the keepalive and
CONNECT timers, closing (with the will), session discard and shutdown live here, with the
messages the broker publishes itself (wills, in-process clients). None of it is on the routing
path, and keeping it apart halves the engine module, which MicroPython must compile within
the heap when it runs from source.
"""
# broker.subscriptions first: the largest of these to compile from source (see broker.engine's
# imports)
from broker.subscriptions import SubscriptionTable
from broker.bytesops import MPY
from broker.codec import Publish, put_ack
from broker.conn import CLOSED, CONNECTED, NO_OUTPUT, Conn
from broker.retain import RetainedTable, retained_share
from broker.session import FLAG_QOS_MASK, FLAG_RETAIN, Ledger, Message, Session

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[no-untyped-def,misc]
        return x

# Values from broker.const, defined here so that MicroPython compiles them to literals.
_LOG_DEBUG = const(0x40)
_LOG_ERR = const(0x01)
_LOG_NOTICE = const(0x04)
_LOG_WARNING = const(0x02)
_CONNACK_SERVER_UNAVAILABLE = const(3)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union
    from broker.settings import Config
    from broker.sysinfo import SysTopics
    Buffer = Union[bytes, bytearray]

TICKS_MASK = const(0x3FFFFFFF)  # ms clocks wrap here so they stay small ints on a board
_HALF = const(0x20000000)
_HITS_INITIAL = const(16)
_OUT_SOFT_MIN = const(4096)
_OUT_SOFT_MAX = const(262144)
_PENDING_CONNECTIONS = const(16)  # sockets allowed beyond max_connections, to answer CONNACK 0x03
# The answer to a client refused for want of room: shared by all, and a constant, so that
# refusing needs no memory (the heap may be what ran out). Never written to: a closed
# connection gets no more output.
CONNACK_UNAVAILABLE = b"\x20\x02\x00\x03"

# Conditions whose log lines come in floods (a storm of clients, a heap that ran out): the first
# line of each in an interval is logged, the others are counted and summed up in one line when
# the interval is over (log_limited()).
LIMIT_OUT_OF_MEMORY = const(0)
LIMIT_CONNECTIONS = const(1)   # sockets or clients refused: too many connections
LIMIT_ACCEPT = const(2)        # accept() failing (EMFILE, ENFILE, ENOBUFS)
LIMIT_MEMORY = const(3)        # messages or clients refused: no room to keep them
_LIMITS = const(4)
_LIMIT_INTERVAL_MS = const(10000)

# Indexes of Broker.totals.
T_PACKETS_RECEIVED = const(0)
T_PACKETS_SENT = const(1)
T_BYTES_RECEIVED = const(2)
T_BYTES_SENT = const(3)
T_MESSAGES_RECEIVED = const(4)
T_MESSAGES_SENT = const(5)
T_MESSAGES_DROPPED = const(6)
T_CONNECTIONS = const(7)


def packet_name(t: int) -> str:
    """For log lines and errors only: broker.const stays unloaded on the routing path."""
    from broker.const import PACKET_NAMES
    return PACKET_NAMES[t]


def ticks_diff(a: int, b: int) -> int:
    return ((a - b + _HALF) & TICKS_MASK) - _HALF


class Lifecycle:
    """A broker's tables and its connections' life; broker.engine.Broker adds the routing."""

    # Made when first needed (a quiet broker keeps none of them): log_limited()'s counts and
    # when they began; sessions ended by broker.expiry.
    limited = None  # type: Optional[List[Any]]
    limited_since = 0
    sessions_expired = 0
    sessions_evicted = 0

    if TYPE_CHECKING:  # broker.engine.Broker's, called from here
        def reserve(self, conn: Conn, n: int, optional: bool) -> int: ...
        def room_for(self, size: int) -> str: ...
        def _route(self, buf: "Buffer", ts: int, te: int, ps: int, pe: int, qos: int,
                   msg: "Optional[Message]", retain: bool = False) -> None: ...

    def __init__(self, config: "Config", log: "Optional[Callable[[int, str], None]]" = None,
                 now: int = 0) -> None:
        self.config = config
        self.log_mask = config.log_types
        self._log = log
        self.now = now & TICKS_MASK
        self.last_check = self.now
        # Seconds since start-up, for what is counted in hours and days (the ms clock wraps
        # after 12 days); ms_left carries what tick() has not yet counted in whole seconds.
        self.seconds = 0
        self.ms_left = 0
        self.conns = []  # type: List[Conn]
        self.connected = 0
        self.sessions = {}  # type: Dict[str, Session]
        if MPY:
            self.subs = SubscriptionTable(config.max_subscriptions)
        else:  # with a cache of what each topic matched (broker.routecache)
            from broker.routecache import CachedSubscriptionTable
            self.subs = CachedSubscriptionTable(config.max_subscriptions)
        # the application messages kept (retained, queued, in flight, wills), in bytes; a port
        # with a small heap gives the limits defaults from the heap when the configuration
        # sets none
        self.ledger = Ledger(config.memory_limit, config.max_queued_bytes)
        self.retained = RetainedTable(config.max_retained_messages, ledger=self.ledger)
        self.wq = []  # type: List[Conn]
        # routing's scratch list: one slot per session that a topic could match, grown by
        # add_session() (at connect time, never while routing)
        self.hits = [None] * (min(config.max_sessions, _HITS_INITIAL) + 1)  # type: List[Any]
        self.epoch = 0
        self.pub = Publish()
        self.auto_ids = 0
        self.out_soft = min(_OUT_SOFT_MAX, max(_OUT_SOFT_MIN, 2 * config.max_packet_size))
        self.heap_low = None  # type: Optional[Callable[[int], bool]]  # see reserve()
        # Kept messages up to this size are copied into a connection's output, larger ones
        # are sent from their own buffer (Broker._room); a port with a small heap lowers it.
        self.copy_max = self.out_soft
        # Traffic counters since the last tick (small ints on the hot path, even on a 32-bit
        # board); tick() adds them to `totals`, indexed by the T_* constants.
        self.packets_received = 0
        self.packets_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.messages_received = 0
        self.messages_sent = 0
        self.messages_dropped = 0
        self.connections_total = 0
        self.totals = [0] * 8
        self.connected_max = 0
        self.routing = False
        self.local_pending = []  # type: List[Tuple[Session, bytes, bytes, int, bool]]
        self.acl = config.acl  # a broker.acl.Acl with an acl_file, else None
        self.sys = None  # type: Optional[SysTopics]
        if config.sys_interval > 0:
            from broker.sysinfo import SysTopics
            self.sys = SysTopics(self, config.sys_interval)

    def add_session(self, client_id: str, s: Session) -> None:
        self.sessions[client_id] = s
        hits = self.hits
        if len(self.sessions) >= len(hits):
            hits.extend([None] * len(hits))

    def log(self, level: int, msg: str) -> None:
        if self._log is not None and self.log_mask & level:
            self._log(level, msg)

    def log_limited(self, cond: int, level: int, msg: str) -> None:
        """Log msg unless a line of the same condition (a LIMIT_* constant) was logged in this
        interval; then it is counted, and the interval's summary gives the count and the last."""
        held = self.limited
        if held is None:  # per condition: lines held back, the last one and its level
            held = self.limited = [0, "", 0] * _LIMITS
            self.limited_since = self.now
        i = cond * 3
        held[i] += 1
        if held[i] == 1:
            self.log(level, msg)
        else:
            held[i + 1] = msg
            held[i + 2] = level

    def _log_summaries(self) -> None:
        held = self.limited
        if held is None or ticks_diff(self.now, self.limited_since) < _LIMIT_INTERVAL_MS:
            return
        seconds = ticks_diff(self.now, self.limited_since) // 1000
        self.limited = None
        for i in range(0, len(held), 3):
            if held[i] > 1:
                self.log(held[i + 2], "%s (%d more like this in the last %d s)"
                         % (held[i + 1], held[i] - 1, seconds))

    def _name(self, conn: Conn) -> str:
        return conn.client_id if conn.client_id else conn.peer

    def accept(self, handle: "Any", peer: str) -> "Optional[Conn]":
        """A socket was accepted. None means over capacity: the port closes it at once."""
        if len(self.conns) >= self.config.max_connections + _PENDING_CONNECTIONS:
            self.log_limited(LIMIT_CONNECTIONS, _LOG_WARNING,
                             "Refusing connection from %s: too many connections." % peer)
            return None
        conn = Conn(handle, peer, self.config.max_packet_size, self.now)
        self.connections_total += 1
        self.conns.append(conn)
        return conn

    def out_of_memory(self, conn: Conn, refuse: bool = False) -> None:
        """Drop the connection that was being served when the heap ran out, will included, and
        keep serving the others. Its gathering buffer goes first so that closing can allocate;
        if even that fails, the bookkeeping in close() that needs no memory is already done.
        refuse: it ran out on the client's CONNECT, before the CONNACK: the client is told
        CONNACK 0x03 (server unavailable), never left without an answer."""
        conn.reader.reset()
        if refuse:
            self.send_connack(conn, False, _CONNACK_SERVER_UNAVAILABLE)
        try:
            self.close(conn, "", True)
            self.log_limited(LIMIT_OUT_OF_MEMORY, _LOG_ERR, "Out of memory while serving %s,"
                             " disconnecting." % self._name(conn))
        except MemoryError:
            pass

    def lost(self, conn: Conn, reason: str = "") -> None:
        """The socket reached end of file or failed."""
        if conn.state == CLOSED:
            return
        if reason:
            self.log(_LOG_NOTICE, "Socket error on client %s, disconnecting." % self._name(conn))
            self.close(conn, "", True)
        elif conn.state == CONNECTED:
            self.close(conn, "Client %s closed its connection." % conn.client_id, True)
        else:
            self.close(conn, "", True)

    def tick(self, now: int) -> None:
        """Advance the clock (ms, wrapping at TICKS_MASK); enforce keepalive [MQTT-3.1.2-24]."""
        now &= TICKS_MASK
        self.now = now
        elapsed = ticks_diff(now, self.last_check)
        if elapsed < 500:
            return
        self.last_check = now
        self._fold_counters()
        self._log_summaries()
        ms = self.ms_left + elapsed
        self.ms_left = ms % 1000
        if ms >= 1000:
            self.seconds += ms // 1000
            if self.config.persistent_client_expiration:
                from broker.expiry import expire  # only with persistent_client_expiration
                expire(self)
        if self.sys is not None:
            self.sys.tick(elapsed)
        for conn in self.conns[:]:
            if conn.state == CONNECTED:
                if conn.keepalive_ms and ticks_diff(self.now, conn.last_rx) > conn.keepalive_ms:
                    self.close(conn, "Client %s has exceeded timeout, disconnecting."
                               % conn.client_id, True)
                elif not conn.busy:
                    # Nothing written since the last check: an idle client keeps no buffers,
                    # while a busy one keeps them and routes without allocating.
                    if conn.olen == 0:
                        conn.out = NO_OUTPUT
                    if conn.reader.have == 0:
                        conn.reader.reset()
                conn.busy = False
            elif ticks_diff(self.now, conn.opened) > self.config.connect_timeout * 1000:
                self.close(conn, "Client %s sent no CONNECT in time, disconnecting."
                           % conn.peer, False)

    def _fold_counters(self) -> None:
        t = self.totals
        t[T_PACKETS_RECEIVED] += self.packets_received
        t[T_PACKETS_SENT] += self.packets_sent
        t[T_BYTES_RECEIVED] += self.bytes_received
        t[T_BYTES_SENT] += self.bytes_sent
        t[T_MESSAGES_RECEIVED] += self.messages_received
        t[T_MESSAGES_SENT] += self.messages_sent
        t[T_MESSAGES_DROPPED] += self.messages_dropped
        t[T_CONNECTIONS] += self.connections_total
        self.packets_received = self.packets_sent = self.bytes_received = self.bytes_sent = 0
        self.messages_received = self.messages_sent = self.messages_dropped = 0
        self.connections_total = 0

    def shutdown(self) -> None:
        """Close every connection (no wills: the broker, not the client, is going away)."""
        for conn in self.conns[:]:
            self.close(conn, "", False)

    def send_connack(self, conn: Conn, session_present: bool, code: int) -> None:
        if code == _CONNACK_SERVER_UNAVAILABLE and conn.olen == 0:
            # a refusal, closed next: its whole output is the constant, and needs no memory
            conn.out = CONNACK_UNAVAILABLE  # type: ignore[assignment]
            conn.ooff = 0
            conn.olen = 4
            self.packets_sent += 1
            self.bytes_sent += 4
        else:
            pos = self.reserve(conn, 4, False)
            if pos >= 0:
                put_ack(conn.out, pos, 0x20, (0x100 if session_present else 0) | code)
        if self.log_mask & _LOG_DEBUG:
            self.log(_LOG_DEBUG, "Sending CONNACK to %s (%d, %d)"
                     % (self._name(conn), 1 if session_present else 0, code))

    def _trace(self, what: str, conn: Conn, b0: int, mid: int, src: "Buffer", ts: int, te: int,
               plen: int) -> None:
        self.log(_LOG_DEBUG, "%s %s (d%d, q%d, r%d, m%d, '%s', ... (%d bytes))" % (
            what, conn.client_id, (b0 >> 3) & 1, (b0 >> 1) & 3, b0 & 1, mid,
            str(bytes(src[ts:te]), "utf-8"), plen))

    def close(self, conn: Conn, why: str, send_will: bool) -> None:
        """Finish with conn: publish its will if asked, detach or discard its session."""
        if conn.state == CLOSED:
            return
        # Bookkeeping that needs no memory first: this also runs when the heap is exhausted.
        was_connected = conn.state == CONNECTED
        conn.state = CLOSED
        if conn in self.conns:
            self.conns.remove(conn)
        if was_connected:
            self.connected -= 1
        s = conn.session
        conn.session = None
        if s is not None:
            s.conn = None
            s.seen = self.seconds
            if s.clean:
                self.discard_session(s)
        will = conn.will
        if not conn.in_wq:
            conn.in_wq = True
            self.wq.append(conn)
        if why:
            self.log(_LOG_NOTICE, why)
        if will is not None:
            if send_will:
                self._publish_will(will, conn.client_id)
            self.set_will(conn, None)

    def _protocol_error(self, conn: Conn, reason: str) -> None:
        self.log(_LOG_NOTICE, "Client %s sent a malformed or invalid packet (%s), disconnecting."
                 % (self._name(conn), reason))
        self.close(conn, "", True)

    def discard_session(self, s: Session) -> None:
        self.subs.remove_session(s)
        s.clear()
        if self.sessions.get(s.client_id) is s:
            del self.sessions[s.client_id]

    def new_session(self, client_id: str, clean: bool) -> Session:
        cfg = self.config
        s = Session(client_id, clean, cfg.max_inflight_messages, cfg.max_queued_messages,
                    self.ledger)
        self.add_session(client_id, s)
        return s

    def set_will(self, conn: Conn, will: "Optional[Message]") -> None:
        """A connection's will, kept (and counted) until it is published or dropped."""
        old = conn.will
        if old is not None:
            self.ledger.release(old)
        conn.will = will
        if will is not None:
            self.ledger.hold(will)

    def _publish_will(self, will: Message, owner: str) -> None:
        data = will.data
        tlen = will.tlen
        if will.flags & FLAG_RETAIN:
            if len(data) == tlen:
                self.retained.delete(data, 0, tlen)
            elif self.retained.store(will, owner, retained_share(self.config)):
                self.log(_LOG_WARNING, "Retained will of %s not kept: its share of the retained"
                         " table is taken, or max_retained_messages reached." % owner)
        self.route_message(will)

    def publish(self, topic: bytes, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Publish from inside the broker, as if a client had sent it; False when there is no
        room to keep it (see Broker.room_for): nothing is delivered then."""
        why = self.room_for(len(topic) + len(payload)) if qos or retain else ""
        if why:
            self.log_limited(LIMIT_MEMORY, _LOG_WARNING, "No room to keep a message of %d bytes"
                             " on '%s' (%s): not published." % (len(topic) + len(payload),
                                                               str(topic, "utf-8"), why))
            return False
        msg = Message(topic + payload, len(topic), qos, retain)
        if retain:
            if payload:
                self.retained.store(msg)
            else:
                self.retained.delete(topic, 0, len(topic))
        self.route_message(msg)
        return True

    def route_message(self, msg: Message) -> None:
        """Route a message the broker holds (a will, an in-process or $SYS publish)."""
        tlen = msg.tlen
        flags = msg.flags
        self._route(msg.data, 0, tlen, tlen, len(msg.data), flags & FLAG_QOS_MASK, msg,
                    flags & FLAG_RETAIN != 0)

    def run_local(self) -> None:
        """Hand in-process clients what was routed to them, outside any routing walk. A callback
        that raises costs its own message, never the broker or another client."""
        pending = self.local_pending
        self.local_pending = []
        for s, topic, payload, qos, retain in pending:
            local = s.local
            if local is None:
                continue
            try:
                local.receive(topic, payload, qos, retain)
            except Exception as e:
                self.log(_LOG_ERR, "In-process client %s failed in on_message: %r"
                         % (s.client_id, e))

    def _dropped(self, s: Session, why: str) -> None:
        """s.dropped already counts the message; log the first and every thousandth."""
        self.messages_dropped += 1
        if s.dropped == 1 or s.dropped % 1000 == 0:
            self.log(_LOG_WARNING, "Outgoing messages are being dropped for client %s "
                     "(%s, %d dropped)." % (s.client_id, why, s.dropped))

