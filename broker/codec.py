"""MQTT 3.1 / 3.1.1 byte-level codec, the broker's side: an incremental framer, parsers, writers.

The framer, the PUBLISH parser and the writers work in place (buffer plus offsets, no slices)
because they sit on the routing path. CONNECT, SUBSCRIBE and UNSUBSCRIBE decode into small
objects: those happen at connect and subscribe time, where allocation is allowed. Whole packets as
objects and bytes, for the tests, are in tests/core/packets.py.
"""
from broker.bytesops import const, copy_into, micropython, utf8_valid


_CONNECT_FLAG_CLEAN_SESSION = const(0x02)
_CONNECT_FLAG_PASSWORD = const(0x40)
_CONNECT_FLAG_RESERVED = const(0x01)
_CONNECT_FLAG_USERNAME = const(0x80)
_CONNECT_FLAG_WILL = const(0x04)
_CONNECT_FLAG_WILL_RETAIN = const(0x20)
_PROTOCOL_LEVEL_31 = const(3)
_PROTOCOL_LEVEL_311 = const(4)
_PROTOCOL_LEVEL_5 = const(5)
_RC_PACKET_TOO_LARGE = const(0x95)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple, Union
    from broker.props import Props
    Buffer = Union[bytes, bytearray]

_INITIAL_PENDING = const(64)
_KEEP_PENDING = const(256)
_NO_PENDING = bytearray(0)  # shared by every idle Reader: never written, only replaced by _grow


class MalformedPacket(Exception):
    """The peer broke the framing or the packet format; the connection must be closed
    [MQTT-4.8.0-1]. `reason` is the MQTT 5.0 reason code a DISCONNECT gives for it: 0x81,
    Malformed Packet; 0x82, Protocol Error for a packet that parses but breaks a rule (section
    4.13: broker.props.ProtocolError); 0x95, Packet too large, for a header declaring more than
    max_packet_size (refused before its body is buffered); or a code of its own."""

    def __init__(self, why: str, reason: int = 0x81) -> None:
        super().__init__(why)
        self.reason = reason


def header_flags_valid(b0: int) -> bool:
    """Fixed-header flag bits as section 2.2.2 requires [MQTT-2.2.2-1]: PUBLISH's carry DUP,
    QoS and RETAIN; PUBREL, SUBSCRIBE and UNSUBSCRIBE have 0010; every other type 0000. No
    reserved packet type (0, 15)."""
    t = b0 >> 4
    if t == 3:
        return (b0 & 0x06) != 0x06  # QoS 3 is malformed [MQTT-3.3.1-4]
    if t == 6 or t == 8 or t == 10:
        return (b0 & 0x0F) == 2
    return 0 < t < 15 and (b0 & 0x0F) == 0


def header_flags_valid_31(b0: int) -> bool:
    """MQTT 3.1 gave PUBREL, SUBSCRIBE and UNSUBSCRIBE QoS 1 and a DUP flag a client sets when it
    sends one again (0x6A, 0x8A, 0xAA); 3.1.1 made those flags fixed [MQTT-2.2.2-1]. A 3.1
    client may still set DUP, as mosquitto accepts."""
    t = b0 >> 4
    return (t == 6 or t == 8 or t == 10) and b0 & 0x0F == 0x0A


class Reader:
    """Frames packets out of a byte stream fed in arbitrary pieces.

    take() consumes bytes; when it has a whole packet, `ready` is set and the packet body (after
    the fixed header) is `buf[start:end]`, with `b0` its first byte. A packet that arrives whole is
    not copied: `buf` is then the caller's buffer, valid until the caller reuses it. A split packet
    is gathered in `pending`, which grows only as its bytes arrive, never past max_packet_size;
    once its packet is released, a Reader keeps at most 256 bytes of it for the next one.
    """

    pending = _NO_PENDING
    have = 0          # bytes held in pending
    need = 0          # total size of the pending packet, 0 while its header is incomplete
    hlen = 0          # fixed header size of the last header decoded
    ready = False
    v31 = False       # the connection speaks MQTT 3.1: see header_flags_valid_31
    v5 = False        # the connection speaks MQTT 5.0, which has AUTH (0xF0)
    buf = _NO_PENDING  # type: Buffer
    b0 = 0
    start = 0
    end = 0

    def __init__(self, max_packet_size: int) -> None:
        self.max_packet_size = max_packet_size

    @micropython.native
    def _header(self, src: "Buffer", pos: int, end: int) -> int:
        """Total packet size from a fixed header at src[pos:end]: -1 if incomplete."""
        rl = 0
        shift = 0
        i = pos + 1
        while i < end:
            b = src[i]
            rl |= (b & 0x7F) << shift
            i += 1
            if b < 0x80:
                self.hlen = i - pos
                total = self.hlen + rl
                if total > self.max_packet_size:
                    raise MalformedPacket("packet of %d bytes exceeds max_packet_size %d"
                                          % (total, self.max_packet_size), _RC_PACKET_TOO_LARGE)
                return total
            shift += 7
            if shift > 21:
                raise MalformedPacket("remaining length longer than 4 bytes")
        return -1

    @micropython.native
    def take(self, src: "Buffer", pos: int, end: int) -> int:
        """Consume src[pos:end] up to the end of the next packet; return the new position."""
        self.ready = False
        if self.have == 0:
            if pos >= end:
                return pos
            b0 = src[pos]
            if not header_flags_valid(b0) and not (self.v31 and header_flags_valid_31(b0))\
                    and not (self.v5 and b0 == 0xF0):
                raise MalformedPacket("invalid fixed header 0x%02x" % b0)
            total = self._header(src, pos, end)
            if total >= 0 and pos + total <= end:
                self.b0 = b0
                self.buf = src
                self.start = pos + self.hlen
                self.end = pos + total
                self.ready = True
                return pos + total
            self.need = total if total >= 0 else 0
        pending = self.pending
        while self.need == 0 and pos < end:
            if self.have >= len(pending):
                pending = self._grow(self.have + 1)
            pending[self.have] = src[pos]
            self.have += 1
            pos += 1
            total = self._header(pending, 0, self.have)
            if total >= 0:
                self.need = total
        if self.need == 0:
            return pos
        n = self.need - self.have
        if n > end - pos:
            n = end - pos
        if self.have + n > len(pending):
            pending = self._grow(self.have + n)
        copy_into(pending, self.have, src, pos, n)
        self.have += n
        pos += n
        if self.have == self.need:
            self.b0 = pending[0]
            self.buf = pending
            self.start = self.hlen
            self.end = self.need
            self.ready = True
            self.have = 0
            self.need = 0
        return pos

    def _grow(self, size: int) -> bytearray:
        n = len(self.pending) or _INITIAL_PENDING
        while n < size:
            n *= 2
        cap = self.need or 5
        if n > cap:
            n = cap if cap >= size else size
        grown = bytearray(n)
        copy_into(grown, 0, self.pending, 0, self.have)
        self.pending = grown
        return grown

    def release(self) -> None:
        """Drop a large gathering buffer once its packet has been handled."""
        if self.have == 0 and len(self.pending) > _KEEP_PENDING:
            self.pending = _NO_PENDING

    def reset(self) -> None:
        """Forget a partly gathered packet and free its buffer (without allocating)."""
        self.pending = _NO_PENDING
        self.have = 0
        self.need = 0

    def buffered(self) -> int:
        """Bytes of memory held for incomplete packets (bounded by max_packet_size)."""
        return len(self.pending)


# ---- Field readers (raise MalformedPacket on truncation) ----

def read_u16(buf: "Buffer", pos: int, end: int) -> int:
    if pos + 2 > end:
        raise MalformedPacket("truncated packet")
    return (buf[pos] << 8) | buf[pos + 1]


def read_binary(buf: "Buffer", pos: int, end: int) -> bytes:
    n = read_u16(buf, pos, end)
    if pos + 2 + n > end:
        raise MalformedPacket("truncated string")
    return bytes(buf[pos + 2:pos + 2 + n])


def read_string(buf: "Buffer", pos: int, end: int) -> str:
    """A UTF-8 encoded string [MQTT-1.5.3-1] [MQTT-1.5.3-2]."""
    n = read_u16(buf, pos, end)
    if pos + 2 + n > end:
        raise MalformedPacket("truncated string")
    if not utf8_valid(buf, pos + 2, pos + 2 + n):
        raise MalformedPacket("invalid UTF-8 string")
    return str(buf[pos + 2:pos + 2 + n], "utf-8")


# ---- Decoded packets (connect and subscribe time, and the client side) ----

class Connect:
    # MQTT 5.0, set by codec5.decode_connect5: the properties, the will's, and the will's as
    # they are sent on (props.forwarded)
    props = None  # type: Optional[Props]
    will_props = None  # type: Optional[Props]
    will_fwd = b""

    def __init__(self) -> None:
        self.protocol_name = ""
        self.protocol_level = 0
        self.flags = 0
        self.keepalive = 0
        self.client_id = ""
        self.will_topic = None  # type: Optional[bytes]
        self.will_payload = b""
        self.will_qos = 0
        self.will_retain = False
        self.username = None  # type: Optional[str]
        self.password = None  # type: Optional[bytes]

    @property
    def clean_session(self) -> bool:
        return bool(self.flags & _CONNECT_FLAG_CLEAN_SESSION)

    def supported(self) -> bool:
        if self.protocol_name == "MQTT":
            return self.protocol_level in (_PROTOCOL_LEVEL_311, _PROTOCOL_LEVEL_5)
        return self.protocol_name == "MQIsdp" and self.protocol_level == _PROTOCOL_LEVEL_31


def decode_connect(buf: "Buffer", pos: int, end: int) -> Connect:
    """Parse a CONNECT body; MQTT 5.0's, after its protocol level, in codec5. An unsupported
    protocol name or level stops parsing early (the rest may follow another specification) so
    that the caller can answer CONNACK 0x01 [MQTT-3.1.2-2]."""
    c = Connect()
    n = read_u16(buf, pos, end)
    if pos + 2 + n > end or not utf8_valid(buf, pos + 2, pos + 2 + n):
        raise MalformedPacket("bad protocol name")
    c.protocol_name = str(buf[pos + 2:pos + 2 + n], "utf-8")
    pos += 2 + n
    if pos + 4 > end:
        raise MalformedPacket("truncated CONNECT variable header")
    c.protocol_level = buf[pos]
    if not c.supported():
        return c
    if c.protocol_level == _PROTOCOL_LEVEL_5:
        from broker.codec5 import decode_connect5  # only a v5 client loads the v5 codec
        decode_connect5(buf, pos + 1, end, c)
        return c
    flags = buf[pos + 1]
    c.flags = flags
    c.keepalive = (buf[pos + 2] << 8) | buf[pos + 3]
    pos += 4
    if flags & _CONNECT_FLAG_RESERVED:
        raise MalformedPacket("CONNECT reserved flag set")  # [MQTT-3.1.2-3]
    will_qos = (flags >> 3) & 3
    if flags & _CONNECT_FLAG_WILL:
        if will_qos == 3:
            raise MalformedPacket("will QoS 3")  # [MQTT-3.1.2-14]
    elif will_qos or flags & _CONNECT_FLAG_WILL_RETAIN:
        # [MQTT-3.1.2-13] [MQTT-3.1.2-15]
        raise MalformedPacket("will QoS or retain set without will flag")
    if flags & _CONNECT_FLAG_PASSWORD and not flags & _CONNECT_FLAG_USERNAME:
        raise MalformedPacket("password flag without username flag")  # [MQTT-3.1.2-22]
    c.client_id = read_string(buf, pos, end)
    pos += 2 + read_u16(buf, pos, end)
    if flags & _CONNECT_FLAG_WILL:
        c.will_topic = read_binary(buf, pos, end)
        pos += 2 + len(c.will_topic)
        c.will_payload = read_binary(buf, pos, end)
        pos += 2 + len(c.will_payload)
        c.will_qos = will_qos
        c.will_retain = bool(flags & _CONNECT_FLAG_WILL_RETAIN)
    if flags & _CONNECT_FLAG_USERNAME:
        c.username = read_string(buf, pos, end)
        pos += 2 + read_u16(buf, pos, end)
    if flags & _CONNECT_FLAG_PASSWORD:
        c.password = read_binary(buf, pos, end)
        pos += 2 + len(c.password)
    if pos != end:
        raise MalformedPacket("unexpected bytes after CONNECT payload")
    return c


class Publish:
    """An in-place view of a PUBLISH: offsets into the buffer it was parsed from. One instance is
    reused for every incoming PUBLISH, so parsing allocates nothing."""

    def __init__(self) -> None:
        self.b0 = 0
        self.qos = 0
        self.mid = 0
        self.topic_start = 0
        self.topic_end = 0
        self.payload_start = 0
        self.payload_end = 0
        # MQTT 5.0: set by props.scan_publish_props
        self.props_start = 0
        self.alias = 0
        self.expiry = -1
        self.pfi = 0
        self.fwd = True
        self.start = -1  # where it starts when v5 subscribers get it as it came (v5.publish_in)


@micropython.native
def parse_publish(view: Publish, b0: int, buf: "Buffer", pos: int, end: int) -> None:
    if pos + 2 > end:
        raise MalformedPacket("truncated PUBLISH")
    tlen = (buf[pos] << 8) | buf[pos + 1]
    ts = pos + 2
    te = ts + tlen
    qos = (b0 >> 1) & 3
    p = te + 2 if qos else te
    if p > end:
        raise MalformedPacket("truncated PUBLISH")
    view.b0 = b0
    view.qos = qos
    view.topic_start = ts
    view.topic_end = te
    view.mid = ((buf[te] << 8) | buf[te + 1]) if qos else 0
    view.payload_start = p
    view.payload_end = end


def decode_subscribe(buf: "Buffer", pos: int, end: int) -> "Tuple[int, List[Tuple[bytes, int]]]":
    """SUBSCRIBE body -> (packet id, [(filter, requested qos)])."""
    mid = read_u16(buf, pos, end)
    pos += 2
    topics = []
    while pos < end:
        filt = read_binary(buf, pos, end)
        pos += 2 + len(filt)
        if pos >= end:
            raise MalformedPacket("SUBSCRIBE filter without requested QoS")
        qos = buf[pos]
        pos += 1
        if qos > 2:
            raise MalformedPacket("SUBSCRIBE requested QoS byte 0x%02x" % qos)  # [MQTT-3.8.3-4]
        topics.append((filt, qos))
    if not topics:
        raise MalformedPacket("SUBSCRIBE with no topic filter")  # [MQTT-3.8.3-3]
    return mid, topics


def decode_unsubscribe(buf: "Buffer", pos: int, end: int) -> "Tuple[int, List[bytes]]":
    mid = read_u16(buf, pos, end)
    pos += 2
    filters = []
    while pos < end:
        filt = read_binary(buf, pos, end)
        pos += 2 + len(filt)
        filters.append(filt)
    if not filters:
        raise MalformedPacket("UNSUBSCRIBE with no topic filter")  # [MQTT-3.10.3-2]
    return mid, filters


# ---- Writers into a preallocated buffer ----

def remaining_length_size(n: int) -> int:
    if n < 128:
        return 1
    if n < 16384:
        return 2
    if n < 2097152:
        return 3
    return 4


def put_remaining_length(buf: bytearray, pos: int, n: int) -> int:
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            buf[pos] = b | 0x80
            pos += 1
        else:
            buf[pos] = b
            return pos + 1


def publish_size(b0: int, tlen: int, plen: int) -> int:
    """Bytes an outgoing PUBLISH takes on the wire."""
    rl = 2 + tlen + plen + (2 if b0 & 0x06 else 0)
    return 1 + remaining_length_size(rl) + rl


@micropython.native
def put_publish(out: bytearray, pos: int, b0: int, mid: int, src: "Buffer",
                ts: int, te: int, ps: int, pe: int) -> int:
    """Write a PUBLISH whose topic is src[ts:te] and payload src[ps:pe]; return the end offset."""
    pos = put_publish_head(out, pos, b0, 2 + te - ts + pe - ps, mid, src, ts, te)
    copy_into(out, pos, src, ps, pe - ps)
    return pos + pe - ps


@micropython.native
def put_publish_head(out: bytearray, pos: int, b0: int, rl: int, mid: int, src: "Buffer",
                     ts: int, te: int) -> int:
    """A PUBLISH up to its packet identifier (QoS > 0): first byte b0, Remaining Length rl less
    the identifier's 2 bytes, topic src[ts:te]; the position after it."""
    tlen = te - ts
    if b0 & 0x06:
        rl += 2
    out[pos] = b0
    pos = put_remaining_length(out, pos + 1, rl)
    out[pos] = tlen >> 8
    out[pos + 1] = tlen & 0xFF
    pos += 2
    copy_into(out, pos, src, ts, tlen)
    pos += tlen
    if b0 & 0x06:
        out[pos] = mid >> 8
        out[pos + 1] = mid & 0xFF
        pos += 2
    return pos


def put_ack(out: bytearray, pos: int, b0: int, mid: int) -> int:
    """PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: four bytes, the packet identifier last."""
    out[pos] = b0
    out[pos + 1] = 2
    out[pos + 2] = mid >> 8
    out[pos + 3] = mid & 0xFF
    return pos + 4


def put_connack(out: bytearray, pos: int, session_present: bool, code: int) -> int:
    """CONNACK [MQTT-3.2]: the session present flag, then the return code."""
    out[pos] = 0x20
    out[pos + 1] = 2
    out[pos + 2] = 1 if session_present else 0
    out[pos + 3] = code
    return pos + 4


def put_pingresp(out: bytearray, pos: int) -> int:
    out[pos] = 0xD0
    out[pos + 1] = 0
    return pos + 2


def suback_size(n: int) -> int:
    """The bytes of a SUBACK with n return codes."""
    return 1 + remaining_length_size(2 + n) + 2 + n


def put_suback(out: bytearray, pos: int, mid: int, codes: "List[int]") -> int:
    """SUBACK [MQTT-3.9]: one return code per filter, in the SUBSCRIBE's order."""
    out[pos] = 0x90
    pos = put_remaining_length(out, pos + 1, 2 + len(codes))
    out[pos] = mid >> 8
    out[pos + 1] = mid & 0xFF
    pos += 2
    for c in codes:
        out[pos] = c
        pos += 1
    return pos

