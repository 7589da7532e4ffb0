"""A port with no sockets for the property tests: fake connections that feed bytes to the engine
(whole or split), read and check what it writes, lose sockets and move the clock, with the
engine's invariants checked after every step.

Unlike tests/core/harness.py it also plays the port's part in the write queue (emptied through
Broker.next_to_flush() after every step, as the port's flush loop does; a connection whose
output is not read keeps it, like a socket whose peer does not read), and it decodes and checks
everything the broker writes, whether or not a test looks at it.
"""
from broker import codec, keepalive, lifecycle
from broker.conn import CLOSED, CONNECTED, NEW
from broker.invariants import check_subscriptions, check_write_queue
from broker.const import (
    CONNACK, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, UNSUBACK,
)

from harness import Hub, drain
from mqtt_strategies import split
import packets

_SERVER_TYPES = (CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP)
_SLACK = 64


class Peer:
    """One fake socket and the client behind it: what it sent, what it was sent."""

    def __init__(self, world: "World", name: str) -> None:
        self.world = world
        self.name = name
        self.conn = lifecycle.accept(world.broker, self, name)
        self.reader = codec.Reader(1 << 28)   # frames the broker's output
        self.shadow = codec.Reader(1 << 28)   # frames our own input, to see acks we sent
        self.shadow_ok = True
        self.got = []  # type: list  # every packet the broker wrote to this connection
        self.unread = []  # type: list  # those the scenario has not consumed yet
        self.fed_since_drain = 0
        self.outstanding = set()  # type: set  # packet ids of PUBLISH we were sent, not yet acked
        self.max_pending = 0
        self.max_bound = 0  # the largest output bound this connection was allowed so far
        self.acked = 0  # self.got[:acked] were acknowledged by acks()

    @property
    def closed(self) -> bool:
        return self.conn is None or self.conn.state == CLOSED

    def send(self, data: bytes, cuts: "tuple | list" = ()) -> None:
        """Feed data, cut at the given points (see mqtt_strategies.split), one feed() a piece,
        through the port's reused scratch buffer; the port's flush runs after each piece."""
        if self.conn is None:
            return
        self._shadow(data)
        for piece in split(data, list(cuts)):
            buf = self.world.scratch
            buf[0:len(piece)] = piece
            self.fed_since_drain += len(piece)
            self.world.broker.feed(self.conn, buf, len(piece))
            self.world.settle()

    def _shadow(self, data: bytes) -> None:
        """Acks we send free their packet ids for reuse: forget them as outstanding."""
        if not self.shadow_ok or self.conn.state == CLOSED:
            return
        r = self.shadow
        pos = 0
        try:
            while pos < len(data):
                pos = r.take(data, pos, len(data))
                if r.ready and r.b0 >> 4 in (PUBACK, PUBREC, PUBCOMP) and r.end - r.start == 2:
                    self.outstanding.discard((r.buf[r.start] << 8) | r.buf[r.start + 1])
        except codec.MalformedPacket:
            self.shadow_ok = False

    def drain(self) -> "list":
        """Read everything the broker wrote (the port flushed it all), then tell it."""
        conn = self.conn
        if conn is None:
            return []
        data = drain(conn)
        self._decode(data)
        self.fed_since_drain = 0
        self.world.broker.drained(conn)
        self.world.settle()
        out = self.unread
        self.unread = []
        return out

    def _decode(self, data: bytes) -> None:
        r = self.reader
        pos = 0
        while pos < len(data):
            pos = r.take(data, pos, len(data))  # the broker's output must frame...
            if r.ready:
                p = packets.decode(r.b0, r.buf, r.start, r.end)  # ...and decode
                self._check_output(p)
                self.got.append(p)
                self.unread.append(p)

    def _check_output(self, p: packets.Packet) -> None:
        w = self.world
        assert p.type in _SERVER_TYPES, (self.name, p.type)
        if not self.got:
            assert p.type == CONNACK, "first packet to %s is type %d" % (self.name, p.type)
        else:
            assert p.type != CONNACK, "second CONNACK to %s" % self.name
            assert self.got[0].return_code == 0, "%s was sent more after a refusal" % self.name
        if p.type == CONNACK:
            assert p.return_code <= 5
            assert not (p.return_code and p.session_present)  # [MQTT-3.2.2-4]
        elif p.type == PUBLISH:
            assert p.qos <= 2
            assert codec.header_flags_valid(0x30 | p.flags)
            assert p.topic and b"+" not in p.topic and b"#" not in p.topic
            p.topic.decode("utf-8")
            if p.qos:
                assert p.mid != 0
                if not p.dup:  # [MQTT-2.3.1-2]: a new message never reuses an unacked id
                    assert p.mid not in self.outstanding, (self.name, p.mid, self.outstanding)
                self.outstanding.add(p.mid)
            else:
                assert not p.dup  # [MQTT-3.3.1-2]
            # max_topic_length limits what clients send; the broker's own $SYS topics may be longer.
            assert len(p.topic) <= w.config.max_topic_length or p.topic.startswith(b"$SYS/")
        elif p.type == SUBACK:
            assert p.codes and all(c in (0, 1, 2, 0x80) for c in p.codes)

    def lose(self) -> None:
        if self.conn is not None:
            lifecycle.lost(self.world.broker, self.conn)
            self.world.settle()

    def acks(self) -> bytes:
        """The acknowledgements a well-behaved client owes for what it has read."""
        out = b""
        for p in self.got[self.acked:]:
            if p.type == PUBLISH and p.qos == 1:
                out += packets.encode_ack(PUBACK, p.mid)
            elif p.type == PUBLISH and p.qos == 2:
                out += packets.encode_ack(PUBREC, p.mid)
            elif p.type == PUBREL:
                out += packets.encode_ack(PUBCOMP, p.mid)
            elif p.type == PUBREC:
                out += packets.encode_ack(PUBREL, p.mid)
        self.acked = len(self.got)
        return out


class World:
    """A broker, its fake connections, a manual clock; invariants after every step."""

    def __init__(self, config_text: str = "", now: int = 1000) -> None:
        self.hub = Hub(config_text, now)
        self.broker = self.hub.broker
        self.config = self.broker.config
        self.now = now
        self.peers = []  # type: list
        self.scratch = bytearray(1 << 16)
        self.log_checked = 0

    def open(self, name: str = "") -> Peer:
        p = Peer(self, name or "peer%d" % len(self.peers))
        if p.conn is not None:
            self.peers.append(p)
        self.settle()
        return p

    def tick(self, ms: int) -> None:
        self.now += ms
        keepalive.tick(self.broker, self.now)
        self.settle()

    def settle(self) -> None:
        """The port's flush: every connection in the write queue is taken out of it."""
        b = self.broker
        check_write_queue(b)
        while b.next_to_flush() is not None:
            pass
        self.check()

    def finish(self) -> None:
        """Every client reads what is left, then every socket goes away."""
        for p in self.peers:
            p.drain()
        for p in self.peers:
            p.lose()
        self.check()
        b = self.broker
        assert b.conns == [] and b.connected == 0
        for s in b.sessions.values():
            assert s.conn is None
            if s.local is None:
                assert not s.clean, "clean session %s outlived its connection" % s.client_id
        check_subscriptions(b.subs)
        held = 0
        for s in b.sessions.values():
            filters = len(b.subs.filters_of(s))
            assert not filters or not s.clean or s.local is not None, s.client_id
            held += filters
        assert held == b.subs.count, "subscriptions of a session that is gone"

    def log_text(self) -> str:
        return self.hub.log_text()

    def check(self) -> None:
        b = self.broker
        cfg = self.config
        lines = self.hub.lines
        for line in lines[self.log_checked:]:
            assert "Internal error" not in line and "Out of memory" not in line, (
                "\n".join(lines))
        self.log_checked = len(lines)
        conns = b.conns
        assert len(conns) == len(set(map(id, conns)))
        assert len(conns) <= cfg.max_connections + 16
        for p in self.peers:
            c = p.conn
            if c.state == CLOSED:
                assert c not in conns, "closed connection %s still in broker.conns" % p.name
                assert c.session is None
            else:
                assert c in conns, "open connection %s missing from broker.conns" % p.name
        connected = [c for c in conns if c.state == CONNECTED]
        assert b.connected == len(connected) <= cfg.max_connections
        check_write_queue(b)
        assert b.next_to_flush() is None  # the port emptied the write queue
        for c in conns:
            assert c.state in (NEW, CONNECTED)
            assert c.reader.buffered() <= cfg.max_packet_size
            if c.state == NEW:
                assert c.session is None
            else:
                s = c.session
                assert s is not None and s.conn is c
                assert b.sessions.get(s.client_id) is s
                assert c.client_id == s.client_id
        assert len(b.sessions) <= cfg.max_sessions
        for cid, s in b.sessions.items():
            assert s.client_id == cid
            if s.conn is not None:
                assert s.conn.session is s and s.conn.state == CONNECTED
                assert s.conn in conns
            elif s.local is None:  # an in-process client's session has no connection
                assert not s.clean, "clean session %s without a connection" % cid
            assert len(s.queue) == len(s.queue_flags) <= cfg.max_queued_messages
            assert s.inflight == len(s.inflight_order()) <= cfg.max_inflight_messages
            if s.qos2_in is not None:
                assert len(s.qos2_in) <= cfg.max_inflight_messages + cfg.max_queued_messages
        assert len(b.hits) > len(b.sessions)  # routing can put every session in it
        # Subscriptions: only live sessions' ones, counted exactly, within capacity.
        subs = b.subs
        check_subscriptions(subs)
        total = 0
        for s in b.sessions.values():
            total += len(subs.filters_of(s))
        assert subs.count == total <= cfg.max_subscriptions, "subscriptions of a dead session"
        r = b.retained
        assert r.count == sum(len(ch) // 2 for ch in r.table.values()) \
            <= cfg.max_retained_messages
        # Output: beyond the soft cap only by one packet, the in-flight window re-sent on a
        # resumed session, and answers to what the peer sent since it last read.
        big = cfg.max_packet_size + 8
        for p in self.peers:
            c = p.conn
            pending = c.pending()
            p.max_pending = max(p.max_pending, pending)
            bound = (b.out_soft + big * (1 + cfg.max_inflight_messages) + p.fed_since_drain
                     + _SLACK)
            p.max_bound = max(p.max_bound, bound)
            assert pending <= bound, (p.name, pending, bound)
            # The buffer doubles (never past the soft cap for what fits under it): at most twice
            # the most it ever had to hold.
            assert len(c.out) <= max(b.out_soft, 2 * p.max_bound), (p.name, len(c.out), bound)
