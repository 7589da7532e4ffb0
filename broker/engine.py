"""The protocol state machine: bytes in, bytes out, no I/O.

A port hands every connection's bytes to feed(); the engine parses them in place, updates its
tables and appends whatever each connection must receive to that connection's output buffer.
Connections with output (or that must be closed) are listed in `Broker.wq` for the port to flush.
Timers enter through tick(now_ms). A single dispatch in _packet(); this module holds the
routing path (PUBLISH in, deliveries and acknowledgements out). CONNECT and SUBSCRIBE /
UNSUBSCRIBE are handled in their own modules (broker.handle_connect, broker.handle_subscribe),
and the tables and a connection's life around it in broker.lifecycle, which also keeps each
module small enough to compile inside a board's heap.
"""
from broker import codec
# Out of alphabetical order on purpose: MicroPython compiles a module from source in transient
# heap about three times its size, so the larger modules are imported first, while less is
# loaded (importing the broker from .py then peaks at 100K instead of 112K).
from broker.lifecycle import TICKS_MASK, Lifecycle, packet_name
from broker.bytesops import MPY, copy_into, micropython
from broker.codec import MalformedPacket, parse_publish, put_ack, put_publish
from broker.conn import CLOSED, NEW, NO_OUTPUT, Conn
from broker.handle_connect import handle_connect
from broker.handle_subscribe import handle_subscribe, handle_unsubscribe
from broker.session import (
    AWAIT_PUBACK, AWAIT_PUBCOMP, AWAIT_PUBREC, FLAG_QOS_MASK, FLAG_RETAIN, QOS2_FULL, QOS2_NEW,
    QOS2_RESENT, Message, Session, message_from,
)
from broker.topics import valid_topic_name

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[no-untyped-def,misc]
        return x

# Values from broker.const, defined here so that MicroPython compiles them to literals.
_CONNECT = const(1)
_DISCONNECT = const(14)
_PINGREQ = const(12)
_PINGRESP = const(13)
_PUBACK = const(4)
_PUBCOMP = const(7)
_PUBLISH = const(3)
_PUBREC = const(5)
_PUBREL = const(6)
_SUBSCRIBE = const(8)
_UNSUBSCRIBE = const(10)
_LOG_DEBUG = const(0x40)
_LOG_ERR = const(0x01)
_LOG_NOTICE = const(0x04)
_LOG_WARNING = const(0x02)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional, Union
    from broker.local import LocalClient
    Buffer = Union[bytes, bytearray]

_OUT_INITIAL = const(256)
_MESSAGE_OVERHEAD = const(128)  # a stored Message besides its bytes (64-bit MicroPython)


class Broker(Lifecycle):
    @micropython.native
    def feed(self, conn: Conn, buf: "Buffer", n: int) -> None:
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
            self._protocol_error(conn, str(e))
        except MemoryError:
            # on the CONNECT, before its CONNACK: the client is refused, not left unanswered
            self.out_of_memory(conn, conn.olen == 0 and (
                conn.state == NEW or (reader.ready and reader.b0 >> 4 == _CONNECT)))
        except Exception as e:  # a defect here must cost one connection, never the broker
            self.log(_LOG_ERR, "Internal error while serving %s: %r" % (self._name(conn), e))
            self.close(conn, "", True)

    @micropython.native
    def reserve(self, conn: Conn, n: int, optional: bool) -> int:
        """Room for n more bytes in conn's output; the offset to write at, or -1.
        Optional output (QoS 0 deliveries) is refused past the soft cap so that a subscriber
        that stops reading cannot make the broker grow; anything else is always accepted (the
        ports stop reading a connection whose output is past the cap, so answers stay bounded).
        A port with a small heap sets heap_low(n): True refuses optional output that would
        need a new buffer of n bytes, so QoS 0 is dropped before the heap runs out."""
        if conn.state == CLOSED:
            return -1
        if optional and conn.olen - conn.ooff + n > self.out_soft and conn.olen > conn.ooff:
            return -1  # (a message larger than the cap still goes to a connection that is idle)
        out = conn.out
        end = conn.olen + n
        if end > len(out):
            if conn.ooff:
                k = conn.olen - conn.ooff
                if MPY:  # in place, front to back: no temporary copy on a board's heap
                    copy_into(out, 0, out, conn.ooff, k)
                else:  # (CPython copies overlapping slices safely only through a temporary)
                    out[0:k] = out[conn.ooff:conn.olen]
                conn.ooff = 0
                conn.olen = k
                end = k + n
            if end > len(out):
                # by half again, in 256-byte steps: a board's heap cannot afford doubling's
                # slack on every subscriber's buffer
                size = len(out) or _OUT_INITIAL
                while size < end:
                    size = (size + (size >> 1) + 255) & ~255
                if end <= self.out_soft < size:
                    size = self.out_soft  # below the cap, never allocate past it
                if optional and self.heap_low is not None and self.heap_low(size):
                    return -1
                if optional:
                    try:
                        grown = bytearray(size)
                    except MemoryError:
                        return -1  # free memory in pieces too small: dropped, as when heap_low
                else:
                    grown = bytearray(size)
                copy_into(grown, 0, out, 0, conn.olen)
                conn.out = grown
        if not conn.in_wq:
            # before the bytes are counted as written: if the list cannot grow, nothing is
            # reserved (reserved and never written, they would go out as zeros)
            self.wq.append(conn)
            conn.in_wq = True
        pos = conn.olen
        conn.olen = end
        conn.busy = True
        self.packets_sent += 1
        self.bytes_sent += n
        return pos

    def send_ack(self, conn: Conn, packet_type: int, mid: int) -> None:
        pos = self.reserve(conn, 4, False)
        if pos >= 0:
            put_ack(conn.out, pos, (packet_type << 4) | (2 if packet_type == _PUBREL else 0), mid)
            if self.log_mask & _LOG_DEBUG:
                self.log(_LOG_DEBUG, "Sending %s to %s (m%d)"
                         % (packet_name(packet_type), conn.client_id, mid))

    def write_publish(self, conn: Conn, b0: int, mid: int, src: "Buffer", ts: int, te: int,
                       ps: int, pe: int, optional: bool) -> bool:
        size = codec.publish_size(b0, te - ts, pe - ps)
        pos = self.reserve(conn, size, optional)
        if pos < 0:
            return False
        put_publish(conn.out, pos, b0, mid, src, ts, te, ps, pe)
        self.messages_sent += 1
        if self.log_mask & _LOG_DEBUG:
            self._trace("Sending PUBLISH to", conn, b0, mid, src, ts, te, pe - ps)
        return True

    @micropython.native
    def _packet(self, conn: Conn, b0: int, buf: "Buffer", pos: int, end: int) -> None:
        t = b0 >> 4
        self.packets_received += 1
        if conn.state == NEW:
            if t != _CONNECT:
                raise MalformedPacket("%s before CONNECT" % packet_name(t))  # [MQTT-3.1.0-1]
            handle_connect(self, conn, buf, pos, end)
        elif t == _PUBLISH:
            self._publish(conn, b0, buf, pos, end)
        elif t == _PUBACK or t == _PUBREC or t == _PUBREL or t == _PUBCOMP:
            if end - pos != 2:
                raise MalformedPacket("%s remaining length must be 2" % packet_name(t))
            mid = (buf[pos] << 8) | buf[pos + 1]
            if t == _PUBACK:
                self._complete(conn, t, mid, AWAIT_PUBACK)
            elif t == _PUBREC:
                self._pubrec(conn, mid)
            elif t == _PUBREL:
                self._pubrel(conn, mid)
            else:
                self._complete(conn, t, mid, AWAIT_PUBCOMP)
        elif t == _SUBSCRIBE:
            handle_subscribe(self, conn, buf, pos, end)
        elif t == _UNSUBSCRIBE:
            handle_unsubscribe(self, conn, buf, pos, end)
        elif t == _PINGREQ:
            if end != pos:
                raise MalformedPacket("PINGREQ remaining length must be 0")
            if self.log_mask & _LOG_DEBUG:
                self.log(_LOG_DEBUG, "Received PINGREQ from %s" % conn.client_id)
            pos = self.reserve(conn, 2, False)
            if pos >= 0:
                conn.out[pos] = _PINGRESP << 4
                conn.out[pos + 1] = 0
        elif t == _DISCONNECT:
            if end != pos:
                raise MalformedPacket("DISCONNECT remaining length must be 0")
            conn.will = None  # [MQTT-3.14.4-3]
            self.close(conn, "Client %s disconnected." % conn.client_id, False)
        elif t == _CONNECT:
            raise MalformedPacket("second CONNECT")  # [MQTT-3.1.0-2]
        else:
            raise MalformedPacket("%s is not sent by clients" % packet_name(t))

    @micropython.native
    def _publish(self, conn: Conn, b0: int, buf: "Buffer", pos: int, end: int) -> None:
        v = self.pub
        parse_publish(v, b0, buf, pos, end)
        ts = v.topic_start
        te = v.topic_end
        qos = v.qos
        if te - ts > self.config.max_topic_length:
            raise MalformedPacket("topic longer than max_topic_length")
        last = conn.topic_ok
        if last is None or te - ts != len(last) or not buf.startswith(last, ts):
            if not valid_topic_name(buf, ts, te):
                raise MalformedPacket("invalid topic name")  # [MQTT-3.3.2-2] [MQTT-4.7.3-1]
            if not MPY:  # (a copy per new topic: not on a board's heap)
                conn.topic_ok = bytes(buf[ts:te])
        if qos == 0 and b0 & 0x08:
            raise MalformedPacket("DUP set on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
        if qos and v.mid == 0:
            raise MalformedPacket("packet identifier 0")  # [MQTT-2.3.1-1]
        if b0 & 0x01 and not self.config.retain_available:
            raise MalformedPacket("RETAIN set but retain_available is false")
        self.messages_received += 1
        if self.log_mask & _LOG_DEBUG:
            self._trace("Received PUBLISH from", conn, b0, v.mid, buf, ts, te,
                        v.payload_end - v.payload_start)
        mid = v.mid
        ps = v.payload_start
        pe = v.payload_end
        if qos == 2:
            s = conn.session
            got = s.qos2_received(mid) if s is not None else QOS2_NEW
            if got == QOS2_RESENT:
                self.send_ack(conn, _PUBREC, mid)  # a re-sent PUBLISH: deliver once only
                return
            if got == QOS2_FULL:
                # 3.1.1 cannot refuse a PUBLISH; a client that never releases its QoS 2
                # messages would hold the broker's memory, so it loses the connection.
                self.close(conn, "Client %s has too many QoS 2 messages awaiting PUBREL, "
                           "disconnecting." % conn.client_id, True)
                return
        acl = self.acl
        if acl is not None and conn.session is not None and conn.session.acl is not None\
                and not acl.writable(conn.session.acl, buf, ts, te):
            # 3.1.1 has no way to refuse a PUBLISH: drop it, acknowledge it as usual.
            self.log(_LOG_NOTICE, "Denied PUBLISH from %s to '%s' (acl_file)."
                     % (conn.client_id, str(bytes(buf[ts:te]), "utf-8")))
            self.messages_dropped += 1
        else:
            # a PUBLISH with no flags goes out to QoS 0 subscribers byte for byte as it came
            self._accept(buf, b0, ts, te, ps, pe, qos,
                         pos - conn.reader.hlen if b0 == 0x30 else -1)
        if qos == 1:
            self.send_ack(conn, _PUBACK, mid)
        elif qos == 2:
            self.send_ack(conn, _PUBREC, mid)

    @micropython.native
    def _accept(self, buf: "Buffer", b0: int, ts: int, te: int, ps: int, pe: int,
                qos: int, raw: int) -> None:
        """Retain (if asked) and route a PUBLISH that passed every check; raw: see _route."""
        msg = None
        if b0 & 0x01:
            if pe == ps:
                self.retained.delete(buf, ts, te)  # [MQTT-3.3.1-10] [MQTT-3.3.1-11]
            else:
                msg = message_from(buf, ts, te, ps, pe, qos, True)
                if not self.retained.store(msg):
                    self.log(_LOG_WARNING, "Retained message on '%s' not kept: "
                             "max_retained_messages (%d) reached."
                             % (str(bytes(buf[ts:te]), "utf-8"), self.config.max_retained_messages))
        self._route(buf, ts, te, ps, pe, qos, msg, b0 & 0x01 == 1, raw)

    def local_client(self, client_id: str,
                     on_message: "Optional[Callable[[bytes, bytes, int, bool], None]]" = None
                     ) -> "LocalClient":
        """An in-process client (see broker.local), imported only when someone asks for one."""
        from broker.local import LocalClient
        return LocalClient(self, client_id, on_message)

    @micropython.native
    def _route(self, buf: "Buffer", ts: int, te: int, ps: int, pe: int, qos: int,
               msg: "Optional[Message]", retain: bool = False, raw: int = -1) -> None:
        """Deliver to every session with a matching subscription, once per session at the
        highest granted QoS [MQTT-3.3.5-1], each copy at min(published, granted) QoS, with RETAIN
        cleared [MQTT-3.3.1-9]. `retain`: the flag it was published with. `raw`: where in buf
        the PUBLISH starts when it came as a QoS 0 copy would go out (flags 0), else -1."""
        epoch = (self.epoch + 1) & TICKS_MASK
        if epoch == 0:
            # New sessions start with route_mark 0: restart the count above every mark in use.
            for s in self.sessions.values():
                s.route_mark = 0
            epoch = 1
        self.epoch = epoch
        hits = self.hits
        n = self.subs.collect(buf, ts, te, hits, epoch)
        self.routing = True  # in-process clients wait: their callbacks may publish (and route)
        acl = self.acl
        # Every QoS 0 copy is the same packet: the first is encoded into its subscriber's
        # output (enc[epos:epos + esize]) and the others copy those bytes.
        enc = NO_OUTPUT  # type: Buffer
        epos = 0
        esize = 0
        for i in range(n):
            s = hits[i]
            hits[i] = None
            if acl is not None and s.acl is not None and not acl.readable(s.acl, buf, ts, te):
                continue  # acl_file: this client may not read the topic
            q = s.route_qos
            if qos < q:
                q = qos
            conn = s.conn
            if s.local is not None:
                # RETAIN is cleared [MQTT-3.3.1-9], except for a bridge (retain as published)
                self.local_pending.append((s, bytes(buf[ts:te]), bytes(buf[ps:pe]), q,
                                           retain and s.local.retain_as_published))
            elif q == 0:
                if conn is not None:
                    if esize == 0 and raw >= 0\
                            and codec.publish_size(0x30, te - ts, pe - ps) == pe - raw:
                        enc = buf  # (a Remaining Length in more bytes than needed is re-encoded)
                        epos = raw
                        esize = pe - raw
                    if esize == 0:
                        if self.write_publish(conn, 0x30, 0, buf, ts, te, ps, pe, True):
                            enc = conn.out
                            esize = codec.publish_size(0x30, te - ts, pe - ps)
                            epos = conn.olen - esize
                        else:
                            conn.dropped += 1
                            self.messages_dropped += 1
                    else:
                        pos = self.reserve(conn, esize, True)
                        if pos < 0:
                            conn.dropped += 1
                            self.messages_dropped += 1
                        else:
                            copy_into(conn.out, pos, enc, epos, esize)
                            self.messages_sent += 1
                            if self.log_mask & _LOG_DEBUG:
                                self._trace("Sending PUBLISH to", conn, 0x30, 0, buf, ts, te,
                                            pe - ps)
                elif self.config.queue_qos0_messages:
                    if msg is None:
                        msg = message_from(buf, ts, te, ps, pe, qos, False)
                    self._enqueue(s, msg, 0)
                else:
                    self.messages_dropped += 1
            else:
                if msg is None:
                    if self.heap_low is not None\
                            and self.heap_low(te - ts + pe - ps + _MESSAGE_OVERHEAD):
                        # A stored copy would exhaust a small heap: like a full queue, the
                        # message is dropped for this client (the publisher was served).
                        s.dropped += 1
                        self._dropped(s, "heap nearly full")
                        continue
                    msg = message_from(buf, ts, te, ps, pe, qos, False)
                self.deliver(s, msg, q)
        self.routing = False
        if self.local_pending:
            self.run_local()

    def deliver(self, s: Session, msg: Message, flags: int) -> None:
        """A QoS > 0 message (or a queued QoS 0 one) for session s: send now if the in-flight
        window has room and nothing is queued ahead of it, else queue it (order is kept).
        An in-process client gets it at once: it has no wire to lose it on."""
        if s.local is not None:
            self.local_pending.append((s, msg.topic(), msg.payload(), flags & FLAG_QOS_MASK,
                                       bool(flags & FLAG_RETAIN)))
            if not self.routing:
                self.run_local()
            return
        conn = s.conn
        if conn is not None and not s.queue and self._send_stored(s, msg, flags):
            return
        self._enqueue(s, msg, flags)

    def _enqueue(self, s: Session, msg: Message, flags: int) -> None:
        if not s.enqueue(msg, flags):
            self._dropped(s, "max_queued_messages %d reached" % s.max_queued)

    def _send_stored(self, s: Session, msg: Message, flags: int) -> bool:
        """Send msg to the connected session s now, if the window and the output allow."""
        conn = s.conn
        q = flags & FLAG_QOS_MASK
        b0 = 0x30 | (q << 1) | (1 if flags & FLAG_RETAIN else 0)
        data = msg.data
        tlen = msg.tlen
        if q == 0:
            return self.write_publish(conn, b0, 0, data, 0, tlen, tlen, len(data), True)
        if not s.window_open():
            return False
        if conn.pending() + codec.publish_size(b0, tlen, len(data) - tlen) > self.out_soft\
                and conn.pending():
            return False
        i = s.take_slot(msg, flags)
        self.write_publish(conn, b0, s.slot_mid[i], data, 0, tlen, tlen, len(data), False)
        return True

    def pump(self, s: Session) -> None:
        """Move queued messages into the in-flight window while it has room."""
        queue = s.queue
        while queue and s.conn is not None:
            if not self._send_stored(s, queue[0], s.queue_flags[0]):
                return
            queue.pop(0)
            s.queue_flags.pop(0)

    def _complete(self, conn: Conn, t: int, mid: int, state: int) -> None:
        """PUBACK (QoS 1) or PUBCOMP (QoS 2) ends a delivery: its slot and packet identifier
        are free again, and a queued message can take them."""
        s = conn.session
        if s is None:
            return
        i = s.find_slot(mid, state)
        if i >= 0:
            s.release_slot(i)
            if s.queue:
                self.pump(s)
        elif self.log_mask & _LOG_DEBUG:
            self.log(_LOG_DEBUG, "Received %s from %s for unknown packet id %d"
                     % (packet_name(t), conn.client_id, mid))

    def _pubrec(self, conn: Conn, mid: int) -> None:
        s = conn.session
        if s is None:
            return
        i = s.find_slot(mid, AWAIT_PUBREC)
        if i >= 0:
            s.slot_state[i] = AWAIT_PUBCOMP
            s.slot_msg[i] = None  # the message is delivered; only its identifier is kept
            self.send_ack(conn, _PUBREL, mid)  # [MQTT-4.3.3-1]
        elif s.find_slot(mid, AWAIT_PUBCOMP) >= 0:
            self.send_ack(conn, _PUBREL, mid)

    def _pubrel(self, conn: Conn, mid: int) -> None:
        s = conn.session
        if s is not None:
            s.qos2_released(mid)
        self.send_ack(conn, _PUBCOMP, mid)  # [MQTT-4.3.3-2]

