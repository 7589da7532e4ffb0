"""What the broker sends: each connection's output buffer (reserve), the packets written into
it, and what a port takes out of it.

A connection's output is conn.out[ooff:olen] (and a kept message sent from its own buffer,
broker.spool); a connection with output, or that must be closed, is listed in Broker.wq once.
The port asks next_to_flush() for them and writes what Conn.chunk() points at.
"""
from broker.bytesops import MPY, const, copy_into, micropython
from broker.codec import publish_size, put_ack, put_connack, put_publish
from broker.conn import CLOSED, NO_OUTPUT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union
    from broker.conn import Conn
    from broker.engine import Broker
    Buffer = Union[bytes, bytearray]

_PUBREL = const(6)
_CONNACK_SERVER_UNAVAILABLE = const(3)
_LOG_DEBUG = const(0x40)
_OUT_INITIAL = const(256)
_PROTOCOL_LEVEL_5 = const(5)

# The answer to a client refused for want of room: shared by all, and a constant, so that
# refusing needs no memory (the heap may be what ran out).
CONNACK_UNAVAILABLE = b"\x20\x02\x00\x03"
CONNACK5_UNAVAILABLE = b"\x20\x03\x00\x88\x00"  # MQTT 5: Server unavailable, no properties


@micropython.native
def reserve(b: "Broker", conn: "Conn", n: int, optional: bool) -> int:
    """Room for n more bytes in conn's output; the offset to write at, or -1.
    Optional output (QoS 0 deliveries) is refused past the soft cap so that a subscriber
    that stops reading cannot make the broker grow; anything else is always accepted (the
    ports stop reading a connection whose output is past the cap, so answers stay bounded).
    A port with a small heap sets heap_low(n): True refuses optional output that would
    need a new buffer of n bytes, so QoS 0 is dropped before the heap runs out."""
    if conn.state == CLOSED:
        return -1
    if optional and conn.olen - conn.ooff + n > b.out_soft and conn.olen > conn.ooff:
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
            if end <= b.out_soft < size:
                size = b.out_soft  # below the cap, never allocate past it
            if optional and b.heap_low is not None and b.heap_low(size):
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
        b.wq.append(conn)
        conn.in_wq = True
    pos = conn.olen
    conn.olen = end
    conn.busy = True
    b.packets_sent += 1
    b.bytes_sent += n
    return pos


@micropython.native
def send_ack(b: "Broker", conn: "Conn", packet_type: int, mid: int) -> None:
    """PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK for packet identifier mid."""
    pos = reserve(b, conn, 4, False)
    if pos >= 0:
        put_ack(conn.out, pos, (packet_type << 4) | (2 if packet_type == _PUBREL else 0), mid)
        if b.log_mask & _LOG_DEBUG:
            from broker.logs import packet_name
            b.log(_LOG_DEBUG, "Sending %s to %s (m%d)"
                  % (packet_name(packet_type), conn.client_id, mid))


def write_publish(b: "Broker", conn: "Conn", b0: int, mid: int, src: "Buffer", ts: int,
                  te: int, ps: int, pe: int, optional: bool) -> bool:
    """A PUBLISH of topic src[ts:te] and payload src[ps:pe]; False when reserve() refused."""
    size = publish_size(b0, te - ts, pe - ps)
    pos = reserve(b, conn, size, optional)
    if pos < 0:
        return False
    put_publish(conn.out, pos, b0, mid, src, ts, te, ps, pe)
    b.messages_sent += 1
    if b.log_mask & _LOG_DEBUG:
        from broker.logs import trace
        trace(b, "Sending PUBLISH to", conn, b0, mid, src, ts, te, pe - ps)
    return True


def send_connack(b: "Broker", conn: "Conn", session_present: bool, code: int) -> None:
    """CONNACK with a 3.1.1 return code (an MQTT 5 client gets its Reason Code)."""
    if conn.level == _PROTOCOL_LEVEL_5 and b.v5 is not None:
        b.v5.send_connack(b, conn, session_present, code)
    elif code == _CONNACK_SERVER_UNAVAILABLE and conn.olen == 0:
        # a refusal, closed next: its whole output is the constant, which the port is pointed
        # at directly (Conn.chunk()), and needs no memory (for an MQTT 5 client too, when the
        # heap had no room for the v5 code); the output buffer stays a bytearray, never written
        out = CONNACK5_UNAVAILABLE if conn.level == _PROTOCOL_LEVEL_5 else CONNACK_UNAVAILABLE
        conn.out = NO_OUTPUT
        conn.cbuf = out
        conn.coff = 0
        conn.ooff = 0
        conn.olen = len(out)
        b.packets_sent += 1
        b.bytes_sent += len(out)
    else:
        pos = reserve(b, conn, 4, False)
        if pos >= 0:
            put_connack(conn.out, pos, session_present, code)
    if b.log_mask & _LOG_DEBUG:
        b.log(_LOG_DEBUG, "Sending CONNACK to %s (%d, %d)"
              % (conn.client_id or conn.peer, 1 if session_present else 0, code))

