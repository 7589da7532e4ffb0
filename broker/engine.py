"""The protocol state machine: bytes in, bytes out, no I/O.

A port hands every connection's bytes to feed(); the engine parses them in place, updates its
tables and appends whatever each connection must receive to that connection's output buffer.
Connections with output (or that must be closed) are listed in `Broker.wq` for the port to flush.
Timers enter through tick(now_ms). A single dispatch in _packet(); this module holds the
routing path (matching subscriptions and writing the copies out). Each packet a client sends is
handled in its own module (broker.handle_connect, broker.handle_publish for PUBLISH and the
acknowledgements, broker.handle_subscribe), kept messages go out through broker.delivery, and
the tables and a connection's life around them are in broker.lifecycle.
"""
from broker import codec
# Out of alphabetical order on purpose: MicroPython compiles a module from source in transient
# heap about three times its size, so the larger modules are imported first, while less is
# loaded.
from broker.lifecycle import TICKS_MASK, Lifecycle, packet_name
from broker.handle_publish import handle_ack, handle_publish, handle_pubrec, handle_pubrel
from broker.bytesops import MPY, copy_into, micropython
from broker.codec import MalformedPacket, put_ack, put_publish
from broker.conn import CLOSED, CONNECTED, NEW, NO_OUTPUT
from broker.delivery import deliver, enqueue, pump
from broker.handle_connect import handle_connect
from broker.handle_subscribe import handle_subscribe, handle_unsubscribe
from broker.session import AWAIT_PUBACK, AWAIT_PUBCOMP, MESSAGE_OVERHEAD

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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional, Union
    from broker.conn import Conn
    from broker.local import LocalClient
    from broker.session import Message
    Buffer = Union[bytes, bytearray]

_OUT_INITIAL = const(256)


class Broker(Lifecycle):
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
            self._protocol_error(conn, str(e))
        except MemoryError:
            # on the CONNECT, before its CONNACK: the client is refused, not left unanswered
            self.out_of_memory(conn, conn.olen == 0 and (
                conn.state == NEW or (reader.ready and reader.b0 >> 4 == _CONNECT)))
        except Exception as e:  # a defect here must cost one connection, never the broker
            self.log(_LOG_ERR, "Internal error while serving %s: %r" % (self._name(conn), e))
            self.close(conn, "", True)

    @micropython.native
    def reserve(self, conn: "Conn", n: int, optional: bool) -> int:
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
                if conn.spool is not None:
                    conn.spool.at -= conn.ooff  # a spooled message's place moves with the bytes
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

    def drained(self, conn: "Conn") -> None:
        """The port flushed all of conn's output: what waits for it can go out."""
        s = conn.session
        if conn.state == CONNECTED and s is not None and (s.queue or s.resend):
            pump(self, s)

    def send_ack(self, conn: "Conn", packet_type: int, mid: int) -> None:
        pos = self.reserve(conn, 4, False)
        if pos >= 0:
            put_ack(conn.out, pos, (packet_type << 4) | (2 if packet_type == _PUBREL else 0), mid)
            if self.log_mask & _LOG_DEBUG:
                self.log(_LOG_DEBUG, "Sending %s to %s (m%d)"
                         % (packet_name(packet_type), conn.client_id, mid))

    def write_publish(self, conn: "Conn", b0: int, mid: int, src: "Buffer", ts: int, te: int,
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
    def _packet(self, conn: "Conn", b0: int, buf: "Buffer", pos: int, end: int) -> None:
        t = b0 >> 4
        self.packets_received += 1
        if conn.state == NEW:
            if t != _CONNECT:
                raise MalformedPacket("%s before CONNECT" % packet_name(t))  # [MQTT-3.1.0-1]
            handle_connect(self, conn, buf, pos, end)
        elif t == _PUBLISH:
            handle_publish(self, conn, b0, buf, pos, end)
        elif t == _PUBACK or t == _PUBREC or t == _PUBREL or t == _PUBCOMP:
            if end - pos != 2:
                raise MalformedPacket("%s remaining length must be 2" % packet_name(t))
            mid = (buf[pos] << 8) | buf[pos + 1]
            if t == _PUBACK:
                handle_ack(self, conn, t, mid, AWAIT_PUBACK)
            elif t == _PUBREC:
                handle_pubrec(self, conn, mid)
            elif t == _PUBREL:
                handle_pubrel(self, conn, mid)
            else:
                handle_ack(self, conn, t, mid, AWAIT_PUBCOMP)
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
            self.set_will(conn, None)  # [MQTT-3.14.4-3]
            self.close(conn, "Client %s disconnected." % conn.client_id, False)
        elif t == _CONNECT:
            raise MalformedPacket("second CONNECT")  # [MQTT-3.1.0-2]
        else:
            raise MalformedPacket("%s is not sent by clients" % packet_name(t))

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

    def local_client(self, client_id: str,
                     on_message: "Optional[Callable[[bytes, bytes, int, bool], None]]" = None
                     ) -> "LocalClient":
        """An in-process client (see broker.local), imported only when someone asks for one."""
        from broker.local import LocalClient
        return LocalClient(self, client_id, on_message)

    @micropython.native
    def _collect(self, buf: "Buffer", ts: int, te: int) -> int:
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
    def _route(self, buf: "Buffer", ts: int, te: int, ps: int, pe: int, qos: int,
               msg: "Optional[Message]", retain: bool = False) -> None:
        self._deliver(self._collect(buf, ts, te), buf, ts, te, ps, pe, qos, msg, retain, -1)

    @micropython.native
    def _deliver(self, n: int, buf: "Buffer", ts: int, te: int, ps: int, pe: int, qos: int,
                 msg: "Optional[Message]", retain: bool, raw: int) -> None:
        """Deliver to the sessions in hits[0:n] (see _collect), each copy at min(published,
        granted) QoS, with RETAIN cleared [MQTT-3.3.1-9]; msg is the kept copy when one is
        needed (_must_keep). `retain`: the flag it was published with. `raw`: where in buf the
        PUBLISH starts when it came as a QoS 0 copy would go out (flags 0), else -1."""
        hits = self.hits
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
                elif msg is not None and self.config.queue_qos0_messages:
                    enqueue(self, s, msg, 0)
                else:
                    self.messages_dropped += 1
            elif msg is not None:
                deliver(self, s, msg, q)
        self.routing = False
        if self.local_pending:
            self.run_local()
