"""The protocol state machine: bytes in, bytes out, no I/O.

A port hands every connection's bytes to Broker.feed(); the engine parses them in place,
updates its tables and appends whatever each connection must receive to that connection's
output (broker.output), which the port takes through Broker.next_to_flush() and Conn.chunk().
Timers enter through broker.keepalive.tick(broker, now_ms).

This module holds the Broker's tables, the one dispatch of a client's packets (_packet) and
the routing path (collect, deliver_hits). Each packet a client sends is handled in its own module
(broker.handle_connect, broker.handle_publish for PUBLISH and the acknowledgements,
broker.handle_subscribe); a connection's life around them is broker.lifecycle's (a port calls
lifecycle.accept(broker, ...), lost(), close(), shutdown()). Those modules are functions of the
Broker's tables, called as functions, never bound as its methods: composition, with one class
and no base class, that means the same to mypyc as to an interpreter.
"""
# Larger modules first, for the compile heap (docs/design.md, "MicroPython's ways").
from broker.subscriptions import SubscriptionTable
from broker.handle_publish import handle_acknowledgement, handle_publish
from broker import lifecycle
from broker.bytesops import MPY, const, copy_into, micropython
from broker.codec import MalformedPacket, Publish, publish_size, put_pingresp
from broker.conn import CLOSED, CONNECTED, NEW, NO_OUTPUT
from broker.delivery import deliver, enqueue, pump
from broker.handle_connect import handle_connect
from broker.handle_subscribe import handle_subscribe, handle_unsubscribe
from broker.keepalive import TICKS_MASK
from broker.output import reserve, write_publish
from broker.retain import RetainedTable
from broker.session import (
    FLAG_QOS_MASK, FLAG_RETAIN, MESSAGE_OVERHEAD, Ledger, Message, message_from,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union
    from broker.conn import Conn
    from broker.local import LocalClient
    from broker.session import Session
    from broker.settings import Config
    from broker.sysinfo import SysTopics
    Buffer = Union[bytes, bytearray]

_AUTH = const(15)
_CONNECT = const(1)
_DISCONNECT = const(14)
_PINGREQ = const(12)
_PUBACK = const(4)
_PUBCOMP = const(7)
_PUBLISH = const(3)
_PUBREC = const(5)
_PUBREL = const(6)
_SUBSCRIBE = const(8)
_UNSUBSCRIBE = const(10)
_LOG_DEBUG = const(0x40)
_LOG_ERR = const(0x01)
_HITS_INITIAL = const(16)
_OUT_SOFT_MIN = const(4096)
_OUT_SOFT_MAX = const(262144)
_OPTION_QOS = const(0x03)
_OPTION_NO_LOCAL = const(0x04)
_OPTION_RETAIN_AS_PUBLISHED = const(0x08)
_OPTION_SEVERAL_IDS = const(0x10)  # options below it carry no Subscription Identifier
_PROTOCOL_LEVEL_5 = const(5)
_RC_PROTOCOL_ERROR = const(0x82)


def _packet_name(t: int) -> str:
    from broker.logs import packet_name  # for errors only
    return packet_name(t)


class Broker:
    # Made when first needed (a quiet broker keeps none of them): log_limited()'s counts and
    # when they began; sessions ended by broker.expiry.
    limited = None  # type: Optional[List[Any]]
    limited_since = 0
    sessions_expired = 0
    sessions_evicted = 0
    # The session whose PUBLISH is being routed (None: the broker's own message), for MQTT 5's
    # No Local; broker.v5, loaded by the first MQTT 5 client.
    sender = None  # type: Optional[Session]
    v5 = None  # type: Any
    # An application's hooks (broker.hooks), attached by the application: None until then.
    hooks = None  # type: Any

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
        self.subs.hits = self.hits  # (shared subscriptions' groups take room in it too)
        self.epoch = 0
        self.pub = Publish()
        self.auto_ids = 0
        self.out_soft = min(_OUT_SOFT_MAX, max(_OUT_SOFT_MIN, 2 * config.max_packet_size))
        self.heap_low = None  # type: Optional[Callable[[int], bool]]  # see output.reserve
        # Kept messages up to this size are copied into a connection's output, larger ones
        # are sent from their own buffer (broker.spool); a port with a small heap lowers it.
        self.copy_max = self.out_soft
        # Traffic counters since the last tick (small ints on the hot path, even on a 32-bit
        # board); tick() adds them to `totals`, indexed by keepalive's T_* constants.
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
        # in-process clients' deliveries: the payload, or the Message for one that takes it whole
        self.local_pending = []  # type: List[Tuple[Session, bytes, Any, int, bool]]
        self.acl = config.acl  # a broker.acl.Acl with an acl_file, else None
        if not MPY or self.log_mask & _LOG_DEBUG:
            # now rather than with the first line that needs it: an import opens a file, and a
            # process may have none left by then
            from broker import logs  # noqa: F401
        self.sys = None  # type: Optional[SysTopics]
        if config.sys_interval > 0:
            from broker.sysinfo import SysTopics
            self.sys = SysTopics(self, config.sys_interval)

    def log(self, level: int, msg: str) -> None:
        if self._log is not None and self.log_mask & level:
            self._log(level, msg)

    def next_to_flush(self) -> "Optional[Conn]":
        """The next connection to flush (conn.chunk(), conn.sent()) or to close, off the write
        queue; None when it is empty."""
        wq = self.wq
        if not wq:
            return None
        conn = wq.pop()
        conn.in_wq = False
        return conn

    def drained(self, conn: "Conn") -> None:
        """The port flushed all of conn's output: what waits for it can go out."""
        s = conn.session
        if conn.state == CONNECTED and s is not None and (s.queue or s.resend):
            pump(self, s)

    @micropython.native
    def feed(self, conn: "Conn", buf: "Buffer", n: int) -> None:
        """Bytes buf[0:n] arrived on conn."""
        if conn.state == CLOSED:
            return
        self.bytes_received += n
        reader = conn.reader
        pos = 0
        try:
            while pos < n and conn.state != CLOSED:
                pos = reader.take(buf, pos, n)
                if reader.ready:
                    conn.last_rx = self.now  # a whole control packet [MQTT-3.1.2-24]
                    self._packet(conn, reader.b0, reader.buf, reader.start, reader.end)
                    reader.release()
        except MalformedPacket as e:
            lifecycle.protocol_error(self, conn, e)
        except MemoryError:
            # on the CONNECT, before its CONNACK: the client is refused, not left unanswered
            lifecycle.out_of_memory(self, conn, conn.olen == 0 and (
                conn.state == NEW or (reader.ready and reader.b0 >> 4 == _CONNECT)))
        except Exception as defect:  # it must cost one connection, never the broker
            self.log(_LOG_ERR, "Internal error while serving %s: %r"
                     % (lifecycle.name(conn), defect))
            lifecycle.close(self, conn, "", True)

    @micropython.native
    def _packet(self, conn: "Conn", b0: int, buf: "Buffer", pos: int, end: int) -> None:
        t = b0 >> 4
        self.packets_received += 1
        if conn.state == NEW:
            if t != _CONNECT:
                raise MalformedPacket("%s before CONNECT" % _packet_name(t))  # [MQTT-3.1.0-1]
            handle_connect(self, conn, buf, pos, end)
        elif t == _PUBLISH:
            handle_publish(self, conn, b0, buf, pos, end)
        elif t == _PUBACK or t == _PUBREC or t == _PUBREL or t == _PUBCOMP:
            handle_acknowledgement(self, conn, t, buf, pos, end)
        elif t == _SUBSCRIBE:
            handle_subscribe(self, conn, buf, pos, end)
        elif t == _UNSUBSCRIBE:
            handle_unsubscribe(self, conn, buf, pos, end)
        elif t == _PINGREQ:
            if end != pos:
                raise MalformedPacket("PINGREQ remaining length must be 0")
            if self.log_mask & _LOG_DEBUG:
                self.log(_LOG_DEBUG, "Received PINGREQ from %s" % conn.client_id)
            pos = reserve(self, conn, 2, False)
            if pos >= 0:
                put_pingresp(conn.out, pos)
        elif t == _DISCONNECT:
            if conn.level == _PROTOCOL_LEVEL_5:
                self.v5.handle_disconnect(self, conn, buf, pos, end)
                return
            if end != pos:
                raise MalformedPacket("DISCONNECT remaining length must be 0")
            lifecycle.set_will(self, conn, None)  # [MQTT-3.14.4-3]
            lifecycle.close(self, conn, "Client %s disconnected." % conn.client_id, False)
        else:  # a second CONNECT [MQTT-3.1.0-2], AUTH when no Authentication Method was
            # accepted (4.12), or a packet only a server sends
            e = MalformedPacket("second CONNECT" if t == _CONNECT else
                                "AUTH without an Authentication Method" if t == _AUTH
                                else "%s is not sent by clients" % _packet_name(t))
            e.reason = _RC_PROTOCOL_ERROR
            raise e

    def room_for(self, size: int) -> str:
        """Why a message of size bytes (topic and payload) cannot be kept, or "" when it can:
        memory_limit, and on a small heap the heap itself."""
        need = size + MESSAGE_OVERHEAD
        limit = self.ledger.limit
        if limit and self.ledger.bytes + need > limit:
            return "memory_limit %d reached, %d in use" % (limit, self.ledger.bytes)
        if self.heap_low is not None and self.heap_low(need):
            return "the heap is nearly full"
        return ""

    def publish(self, topic: bytes, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Publish from inside the broker, as if a client had sent it; False when there is no
        room to keep it (see room_for): nothing is delivered then."""
        from broker.local import publish_message  # (loaded with the in-process clients)
        return publish_message(self, Message(topic + payload, len(topic), qos, retain))

    def route_message(self, msg: Message) -> None:
        """Route a message the broker holds (a will, an in-process or $SYS publish)."""
        tlen = msg.tlen
        flags = msg.flags
        data = msg.data
        self.sender = None
        self.deliver_hits(self.collect(data, 0, tlen), data, 0, tlen, tlen, tlen + msg.plen,
                          len(data), flags & FLAG_QOS_MASK, msg, flags & FLAG_RETAIN != 0, -1)

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

    def local_client(self, client_id: str,
                     on_message: "Optional[Callable[[bytes, bytes, int, bool], None]]" = None
                     ) -> "LocalClient":
        """An in-process client (see broker.local), imported only when someone asks for one."""
        from broker.local import LocalClient
        return LocalClient(self, client_id, on_message)

    @micropython.native
    def collect(self, buf: "Buffer", ts: int, te: int) -> int:
        """Put every session with a subscription matching topic buf[ts:te] into hits[0:n],
        once, with its highest granted QoS in route_qos [MQTT-3.3.5-1]; returns n."""
        epoch = (self.epoch + 1) & TICKS_MASK
        if epoch == 0:
            # New sessions start with route_mark 0: restart the count above every mark in use.
            for s in self.sessions.values():
                s.route_mark = 0
            epoch = 1
        self.epoch = epoch
        return self.subs.collect(buf, ts, te, self.hits, epoch)

    @micropython.native
    def deliver_hits(self, n: int, buf: "Buffer", ts: int, te: int, pps: int, ps: int,
                     pe: int, qos: int, msg: "Optional[Message]", retain: bool,
                     raw: int) -> None:
        """Deliver to the sessions in hits[0:n] (see collect), each copy at min(published,
        granted) QoS, with RETAIN cleared [MQTT-3.3.1-9] unless an MQTT 5 subscription asks
        for it as published; msg is the kept copy when one is needed (_must_keep), and
        always when the message has an expiry. Topic buf[ts:te], MQTT 5 properties
        buf[pps:ps] (as forwarded: none from a 3.1.1 publisher), payload buf[ps:pe].
        `retain`: the flag it was published with. `raw`: where in buf the PUBLISH starts when
        it came as a QoS 0 copy to a 3.1.1 subscriber would go out (flags 0), else -1.
        self.sender: the publisher's session, for MQTT 5's No Local."""
        hits = self.hits
        self.routing = True  # in-process clients wait: their callbacks may publish (and route)
        acl = self.acl
        expires = -1 if msg is None else msg.expires
        # Every QoS 0 copy is the same packet: the first is encoded into its subscriber's
        # output (enc[epos:epos + esize]) and the others copy those bytes.
        enc = NO_OUTPUT  # type: Buffer
        epos = 0
        esize = 0
        # The same for the MQTT 5 subscribers whose copy adds nothing (no Subscription
        # Identifier, RETAIN cleared): enc5[epos5:epos5 + esize5].
        enc5 = NO_OUTPUT  # type: Buffer
        epos5 = 0
        esize5 = 0
        for i in range(n):
            s = hits[i]  # type: Session
            hits[i] = None
            if acl is not None and s.acl is not None and not acl.readable(s.acl, buf, ts, te):
                continue  # acl_file: this client may not read the topic
            o = s.route_qos  # its subscriptions' options: the QoS in a 3.1.1 session
            if o > _OPTION_QOS and o & _OPTION_NO_LOCAL and s is self.sender:
                continue  # [MQTT-3.8.3-3]
            q = o & _OPTION_QOS
            if qos < q:
                q = qos
            conn = s.conn  # type: Optional[Conn]
            if s.local is not None:
                if not s.local.whole:
                    got = bytes(buf[ps:pe])  # type: Any
                elif msg is not None:
                    got = msg
                else:
                    got = message_from(buf, ts, te, pps, ps, pe, q, False)
                # RETAIN is cleared [MQTT-3.3.1-9], except for a bridge (retain as published)
                self.local_pending.append((s, bytes(buf[ts:te]), got, q,
                                           retain and s.local.retain_as_published))
            elif q == 0:
                if conn is not None and conn.level == _PROTOCOL_LEVEL_5:
                    plain = o < _OPTION_SEVERAL_IDS\
                        and not (retain and o & _OPTION_RETAIN_AS_PUBLISHED)
                    if esize5 == 0 and plain and expires < 0:
                        v = self.pub
                        if v.start >= 0 and ts == v.topic_start and pe == v.payload_end \
                                and pps == te + 1:
                            # the PUBLISH as it came, with nothing to add: its bytes are the
                            # copy (v is stale after a 3.1.1 PUBLISH, whose properties, none,
                            # never start at te + 1; a held message's start at te)
                            enc5 = buf
                            epos5 = v.start
                            esize5 = pe - v.start
                    if esize5 and plain and not conn.v5.max_packet:
                        pos = reserve(self, conn, esize5, True)
                        size = 0
                        if pos >= 0:
                            copy_into(conn.out, pos, enc5, epos5, esize5)
                            self.messages_sent += 1
                            if self.log_mask & _LOG_DEBUG:
                                from broker.logs import trace
                                trace(self, "Sending PUBLISH to", conn, 0x30, 0, buf, ts, te,
                                      pe - ps)
                            continue
                    else:
                        size = self.v5.publish_to(self, conn, o, retain, expires, buf, ts, te,
                                                  pps, ps, pe)
                    if size == 0:
                        conn.dropped += 1
                        self.messages_dropped += 1
                    elif plain and esize5 == 0:
                        enc5 = conn.out
                        epos5 = conn.olen - size
                        esize5 = size
                elif conn is not None:
                    if esize == 0 and raw >= 0\
                            and publish_size(0x30, te - ts, pe - ps) == pe - raw:
                        enc = buf  # (a Remaining Length in more bytes than needed is re-encoded)
                        epos = raw
                        esize = pe - raw
                    if esize == 0:
                        if write_publish(self, conn, 0x30, 0, buf, ts, te, ps, pe, True):
                            enc = conn.out
                            esize = publish_size(0x30, te - ts, pe - ps)
                            epos = conn.olen - esize
                        else:
                            conn.dropped += 1
                            self.messages_dropped += 1
                    else:
                        pos = reserve(self, conn, esize, True)
                        if pos < 0:
                            conn.dropped += 1
                            self.messages_dropped += 1
                        else:
                            copy_into(conn.out, pos, enc, epos, esize)
                            self.messages_sent += 1
                            if self.log_mask & _LOG_DEBUG:
                                from broker.logs import trace
                                trace(self, "Sending PUBLISH to", conn, 0x30, 0, buf, ts, te,
                                            pe - ps)
                elif msg is not None and self.config.queue_qos0_messages:
                    enqueue(self, s, msg, 0)
                else:
                    self.messages_dropped += 1
            elif msg is not None:
                deliver(self, s, msg, q if o <= _OPTION_QOS else self.v5.flags(o, q, retain))
        self.routing = False
        if self.local_pending:
            self.run_local()
