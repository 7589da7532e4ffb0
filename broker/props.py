"""MQTT 5.0 properties [MQTT-2.2.2]: the Variable Byte Integer, the property table, the decoders
(into a Props object where allocation is allowed, in place for a client's PUBLISH) and the writers.

Only v5 code imports this module, so a board whose clients all speak 3.1.1 never loads it.
"""
from broker.bytesops import const, copy_into, micropython, utf8_valid
from broker.codec import MalformedPacket, put_remaining_length, remaining_length_size
from broker.topics import valid_topic_name



class ProtocolError(MalformedPacket):
    """An MQTT 5.0 packet that parses but breaks a rule of the specification (section 4.13)."""

    def __init__(self, why: str, reason: int = 0x82) -> None:
        super().__init__(why, reason)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple, Union
    from broker.codec import Publish
    Buffer = Union[bytes, bytearray]

# Property identifiers (2.2.2.2).
PAYLOAD_FORMAT_INDICATOR = const(0x01)
MESSAGE_EXPIRY_INTERVAL = const(0x02)
CONTENT_TYPE = const(0x03)
RESPONSE_TOPIC = const(0x08)
CORRELATION_DATA = const(0x09)
SUBSCRIPTION_IDENTIFIER = const(0x0B)
SESSION_EXPIRY_INTERVAL = const(0x11)
ASSIGNED_CLIENT_IDENTIFIER = const(0x12)
SERVER_KEEP_ALIVE = const(0x13)
AUTHENTICATION_METHOD = const(0x15)
AUTHENTICATION_DATA = const(0x16)
REQUEST_PROBLEM_INFORMATION = const(0x17)
WILL_DELAY_INTERVAL = const(0x18)
REQUEST_RESPONSE_INFORMATION = const(0x19)
RESPONSE_INFORMATION = const(0x1A)
SERVER_REFERENCE = const(0x1C)
REASON_STRING = const(0x1F)
RECEIVE_MAXIMUM = const(0x21)
TOPIC_ALIAS_MAXIMUM = const(0x22)
TOPIC_ALIAS = const(0x23)
MAXIMUM_QOS = const(0x24)
RETAIN_AVAILABLE = const(0x25)
USER_PROPERTY = const(0x26)
MAXIMUM_PACKET_SIZE = const(0x27)
WILDCARD_SUBSCRIPTION_AVAILABLE = const(0x28)
SUBSCRIPTION_IDENTIFIER_AVAILABLE = const(0x29)
SHARED_SUBSCRIPTION_AVAILABLE = const(0x2A)

# What decode_props is told it reads: a packet type number (broker.const), or the will
# properties of a CONNECT, or AUTH, the packet type 3.1.1 does not have.
WILL = const(0)
AUTH = const(15)
_PUBLISH = const(3)

# Data types (1.5); every Byte property takes 0 or 1 only.
_BYTE = const(1)
_TWO = const(2)
_FOUR = const(3)
_VBI = const(4)
_UTF8 = const(5)
_BINARY = const(6)
_PAIR = const(7)
_RC_TOPIC_ALIAS_INVALID = const(0x94)
_NONZERO = const(8)  # "It is a Protocol Error to include ... a value of 0"
_MAX_ID = const(0x2A)

# Four bytes per identifier 0..0x2A: data type (0: no such property), the packets that may carry
# it (bit n for packet type n, bit 0 for the will), and its ordinal: the bit that finds a second
# copy, below 2**27 so that it stays a small int on a 32-bit board.
_TABLE = (
    b"\x00\x00\x00\x00"  # 0x00
    b"\x01\x00\x09\x00"  # 0x01 Payload Format Indicator: will, PUBLISH
    b"\x03\x00\x09\x01"  # 0x02 Message Expiry Interval: will, PUBLISH
    b"\x05\x00\x09\x02"  # 0x03 Content Type: will, PUBLISH
    b"\x00\x00\x00\x00"  # 0x04
    b"\x00\x00\x00\x00"  # 0x05
    b"\x00\x00\x00\x00"  # 0x06
    b"\x00\x00\x00\x00"  # 0x07
    b"\x05\x00\x09\x03"  # 0x08 Response Topic: will, PUBLISH
    b"\x06\x00\x09\x04"  # 0x09 Correlation Data: will, PUBLISH
    b"\x00\x00\x00\x00"  # 0x0A
    b"\x0c\x01\x08\x05"  # 0x0B Subscription Identifier: PUBLISH, SUBSCRIBE
    b"\x00\x00\x00\x00"  # 0x0C
    b"\x00\x00\x00\x00"  # 0x0D
    b"\x00\x00\x00\x00"  # 0x0E
    b"\x00\x00\x00\x00"  # 0x0F
    b"\x00\x00\x00\x00"  # 0x10
    b"\x03\x40\x06\x06"  # 0x11 Session Expiry Interval: CONNECT, CONNACK, DISCONNECT
    b"\x05\x00\x04\x07"  # 0x12 Assigned Client Identifier: CONNACK
    b"\x02\x00\x04\x08"  # 0x13 Server Keep Alive: CONNACK
    b"\x00\x00\x00\x00"  # 0x14
    b"\x05\x80\x06\x09"  # 0x15 Authentication Method: CONNECT, CONNACK, AUTH
    b"\x06\x80\x06\x0a"  # 0x16 Authentication Data: CONNECT, CONNACK, AUTH
    b"\x01\x00\x02\x0b"  # 0x17 Request Problem Information: CONNECT
    b"\x03\x00\x01\x0c"  # 0x18 Will Delay Interval: will
    b"\x01\x00\x02\x0d"  # 0x19 Request Response Information: CONNECT
    b"\x05\x00\x04\x0e"  # 0x1A Response Information: CONNACK
    b"\x00\x00\x00\x00"  # 0x1B
    b"\x05\x40\x04\x0f"  # 0x1C Server Reference: CONNACK, DISCONNECT
    b"\x00\x00\x00\x00"  # 0x1D
    b"\x00\x00\x00\x00"  # 0x1E
    b"\x05\xca\xf4\x10"  # 0x1F Reason String: CONNACK, acks, SUBACK, UNSUBACK, DISCONNECT, AUTH
    b"\x00\x00\x00\x00"  # 0x20
    b"\x0a\x00\x06\x11"  # 0x21 Receive Maximum: CONNECT, CONNACK
    b"\x02\x00\x06\x12"  # 0x22 Topic Alias Maximum: CONNECT, CONNACK
    b"\x0a\x00\x08\x13"  # 0x23 Topic Alias: PUBLISH
    b"\x01\x00\x04\x14"  # 0x24 Maximum QoS: CONNACK
    b"\x01\x00\x04\x15"  # 0x25 Retain Available: CONNACK
    b"\x07\xcf\xff\x16"  # 0x26 User Property: every packet with properties
    b"\x0b\x00\x06\x17"  # 0x27 Maximum Packet Size: CONNECT, CONNACK
    b"\x01\x00\x04\x18"  # 0x28 Wildcard Subscription Available: CONNACK
    b"\x01\x00\x04\x19"  # 0x29 Subscription Identifier Available: CONNACK
    b"\x01\x00\x04\x1a"  # 0x2A Shared Subscription Available: CONNACK
)

# Props attribute names by ordinal.
_NAMES = (
    "payload_format_indicator", "message_expiry_interval", "content_type", "response_topic",
    "correlation_data", "subscription_identifier", "session_expiry_interval",
    "assigned_client_identifier", "server_keep_alive", "authentication_method",
    "authentication_data", "request_problem_information", "will_delay_interval",
    "request_response_information", "response_information", "server_reference",
    "reason_string", "receive_maximum", "topic_alias_maximum", "topic_alias", "maximum_qos",
    "retain_available", "user", "maximum_packet_size", "wildcard_subscription_available",
    "subscription_identifier_available", "shared_subscription_available",
)


# ---- Variable Byte Integer [MQTT-1.5.5]: the Remaining Length is one, so its encoder serves ----

varint_size = remaining_length_size
put_varint = put_remaining_length


@micropython.native
def read_varint(buf: "Buffer", pos: int, end: int) -> int:
    """The Variable Byte Integer at buf[pos:end]; its size is varint_size(value), since only the
    minimal encoding is accepted [MQTT-1.5.5-1]."""
    n = 0
    shift = 0
    i = pos
    while True:
        if i >= end:
            raise MalformedPacket("truncated Variable Byte Integer")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0 and i - pos > 1:
                raise MalformedPacket("Variable Byte Integer not in its shortest form")
            return n
        shift += 7
        if shift > 21:
            raise MalformedPacket("Variable Byte Integer longer than 4 bytes")


# ---- Decoding ----

class Props:
    """The properties of one packet: None for each one it did not carry (class defaults, so an
    instance stores only what came). `user` is shared until the first User Property: never
    append to it, replace it."""

    payload_format_indicator = None  # type: Optional[int]
    message_expiry_interval = None  # type: Optional[int]
    content_type = None  # type: Optional[str]
    response_topic = None  # type: Optional[str]
    correlation_data = None  # type: Optional[bytes]
    subscription_identifier = None  # type: Optional[int]
    session_expiry_interval = None  # type: Optional[int]
    assigned_client_identifier = None  # type: Optional[str]
    server_keep_alive = None  # type: Optional[int]
    authentication_method = None  # type: Optional[str]
    authentication_data = None  # type: Optional[bytes]
    request_problem_information = None  # type: Optional[int]
    will_delay_interval = None  # type: Optional[int]
    request_response_information = None  # type: Optional[int]
    response_information = None  # type: Optional[str]
    server_reference = None  # type: Optional[str]
    reason_string = None  # type: Optional[str]
    receive_maximum = None  # type: Optional[int]
    topic_alias_maximum = None  # type: Optional[int]
    topic_alias = None  # type: Optional[int]
    maximum_qos = None  # type: Optional[int]
    retain_available = None  # type: Optional[int]
    maximum_packet_size = None  # type: Optional[int]
    wildcard_subscription_available = None  # type: Optional[int]
    subscription_identifier_available = None  # type: Optional[int]
    shared_subscription_available = None  # type: Optional[int]
    user = []  # type: List[Tuple[str, str]]


@micropython.native
def _string_end(buf: "Buffer", p: int, pend: int, utf8: bool) -> int:
    """End of the length-prefixed field at buf[p:pend], its UTF-8 checked when utf8 is true
    [MQTT-1.5.4-1] [MQTT-1.5.4-2]."""
    if p + 2 > pend:
        raise MalformedPacket("truncated property")
    e = p + 2 + ((buf[p] << 8) | buf[p + 1])
    if e > pend:
        raise MalformedPacket("truncated property")
    if utf8 and not utf8_valid(buf, p + 2, e):
        raise MalformedPacket("property not valid UTF-8")
    return e


@micropython.native
def _value_end(buf: "Buffer", pid: int, p: int, pend: int) -> int:
    """End of the value of property pid (a known one) at buf[p:pend], checked against its data
    type and range."""
    kind = _TABLE[pid << 2]
    t = kind & 7
    if t == _VBI:
        v = read_varint(buf, p, pend)
        if v == 0:
            raise ProtocolError("property 0x%02x is 0" % pid)
        return p + varint_size(v)
    if t >= _UTF8:
        e = _string_end(buf, p, pend, t != _BINARY)
        if t == _PAIR:
            return _string_end(buf, e, pend, True)  # [MQTT-1.5.7-1]
        if pid == RESPONSE_TOPIC and not valid_topic_name(buf, p + 2, e):
            raise ProtocolError("Response Topic not a topic name")  # [MQTT-3.3.2-14]
        return e
    e = p + (1 if t == _BYTE else 2 if t == _TWO else 4)
    if e > pend:
        raise MalformedPacket("truncated property")
    if t == _BYTE and buf[p] > 1:
        raise ProtocolError("property 0x%02x neither 0 nor 1" % pid)
    if kind & _NONZERO:
        v = 0
        while p < e:
            v |= buf[p]
            p += 1
        if v == 0:
            err = ProtocolError("property 0x%02x is 0" % pid)
            if pid == TOPIC_ALIAS:
                err.reason = _RC_TOPIC_ALIAS_INVALID  # [MQTT-3.3.2-8] (3.3.2.3.4)
            raise err
    return e


@micropython.native
def _checked_end(buf: "Buffer", p: int, pend: int, packet: int) -> int:
    """End of the property at buf[p:pend], which must be one packet may carry: an identifier not
    valid for its packet type makes it a Malformed Packet (2.2.2.2)."""
    pid = buf[p]
    i = pid << 2
    if pid > _MAX_ID or _TABLE[i] == 0:
        raise MalformedPacket("unknown property 0x%02x" % pid)
    if not ((_TABLE[i + 1] << 8 | _TABLE[i + 2]) >> packet) & 1:
        raise MalformedPacket("property 0x%02x not allowed in packet type %d" % (pid, packet))
    return _value_end(buf, pid, p + 1, pend)


@micropython.native
def _once(seen: int, pid: int) -> int:
    """seen with pid's bit added; a Protocol Error if it was there (2.2.2.2)."""
    bit = 1 << _TABLE[(pid << 2) + 3]
    if seen & bit:
        raise ProtocolError("property 0x%02x included more than once" % pid)
    return seen | bit


@micropython.native
def _u32(buf: "Buffer", p: int) -> int:
    return (buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]


def _string(buf: "Buffer", p: int) -> str:
    return str(bytes(buf[p + 2:p + 2 + ((buf[p] << 8) | buf[p + 1])]), "utf-8")


def _value(buf: "Buffer", t: int, p: int, e: int) -> "Union[int, str, bytes]":
    if t == _BYTE:
        return buf[p]
    if t == _TWO:
        return (buf[p] << 8) | buf[p + 1]
    if t == _FOUR:
        return _u32(buf, p)
    if t == _VBI:
        return read_varint(buf, p, e)
    if t == _UTF8:
        return _string(buf, p)
    return bytes(buf[p + 2:e])


def decode_props(buf: "Buffer", pos: int, end: int, packet: int) -> "Tuple[Props, int]":
    """The properties whose Property Length starts at buf[pos], for packet (a packet type or
    WILL), checked; and the position after them. Of several Subscription Identifiers (a PUBLISH
    from a server) the first is kept."""
    n = read_varint(buf, pos, end)
    p = pos + varint_size(n)
    pend = p + n
    if pend > end:
        raise MalformedPacket("Property Length beyond the packet")
    props = Props()
    seen = 0
    users = None  # type: Optional[List[Tuple[str, str]]]
    while p < pend:
        pid = buf[p]
        e = _checked_end(buf, p, pend, packet)
        p += 1
        if pid == USER_PROPERTY:
            if users is None:
                users = props.user = []
            v = p + 2 + ((buf[p] << 8) | buf[p + 1])
            users.append((_string(buf, p), _string(buf, v)))
        elif pid == SUBSCRIPTION_IDENTIFIER and packet == _PUBLISH:
            if props.subscription_identifier is None:
                props.subscription_identifier = read_varint(buf, p, e)
        else:
            seen = _once(seen, pid)
            setattr(props, _NAMES[_TABLE[(pid << 2) + 3]], _value(buf, _TABLE[pid << 2] & 7, p, e))
        p = e
    return props, pend


@micropython.native
def scan_publish_props(buf: "Buffer", pos: int, end: int, view: "Publish") -> int:
    """Check the properties of a client's PUBLISH in place, without allocating; the payload start.
    Sets on view (a codec.Publish): props_start, alias (0: none), expiry (-1: none), pfi, and fwd
    (no Topic Alias or Message Expiry Interval to rewrite). A Message Expiry Interval of 2**30
    seconds or more is a heap int on a 32-bit board: the one case that allocates."""
    n = read_varint(buf, pos, end)
    p = pos + varint_size(n)
    pend = p + n
    if pend > end:
        raise MalformedPacket("Property Length beyond the packet")
    view.props_start = p
    alias = 0
    expiry = -1
    pfi = 0
    seen = 0
    while p < pend:
        pid = buf[p]
        e = _checked_end(buf, p, pend, _PUBLISH)
        p += 1
        if pid != USER_PROPERTY:
            seen = _once(seen, pid)
            if pid == TOPIC_ALIAS:
                alias = (buf[p] << 8) | buf[p + 1]
            elif pid == MESSAGE_EXPIRY_INTERVAL:
                expiry = _u32(buf, p)
            elif pid == PAYLOAD_FORMAT_INDICATOR:
                pfi = buf[p]
            elif pid == SUBSCRIPTION_IDENTIFIER:
                raise ProtocolError("Subscription Identifier from a client")  # [MQTT-3.3.4-6]
        p = e
    view.alias = alias
    view.expiry = expiry
    view.pfi = pfi
    view.fwd = alias == 0 and expiry < 0
    return pend


def forwarded(buf: "Buffer", start: int, end: int) -> bytes:
    """The checked properties in buf[start:end] (no Property Length) less Topic Alias, Message
    Expiry Interval and Will Delay Interval, in their order: what is sent on of a PUBLISH or a
    will (an alias belongs to one connection [MQTT-3.3.2-7]; the expiry is sent again as what
    remains of it)."""
    out = bytearray(end - start)
    n = 0
    p = start
    while p < end:
        pid = buf[p]
        e = _value_end(buf, pid, p + 1, end)
        if pid != TOPIC_ALIAS and pid != MESSAGE_EXPIRY_INTERVAL and pid != WILL_DELAY_INTERVAL:
            copy_into(out, n, buf, p, e - p)
            n += e - p
        p = e
    return bytes(out[:n])


# ---- Writers: a property into a pre-sized bytearray; the new position ----

def put_u8_prop(out: bytearray, pos: int, pid: int, v: int) -> int:
    out[pos] = pid
    out[pos + 1] = v
    return pos + 2


def put_u16_prop(out: bytearray, pos: int, pid: int, v: int) -> int:
    out[pos] = pid
    out[pos + 1] = v >> 8
    out[pos + 2] = v & 0xFF
    return pos + 3


def put_u32_prop(out: bytearray, pos: int, pid: int, v: int) -> int:
    out[pos] = pid
    out[pos + 1] = (v >> 24) & 0xFF
    out[pos + 2] = (v >> 16) & 0xFF
    out[pos + 3] = (v >> 8) & 0xFF
    out[pos + 4] = v & 0xFF
    return pos + 5


def put_varint_prop(out: bytearray, pos: int, pid: int, v: int) -> int:
    out[pos] = pid
    return put_varint(out, pos + 1, v)


def _put_field(out: bytearray, pos: int, s: "Buffer") -> int:
    n = len(s)
    out[pos] = n >> 8
    out[pos + 1] = n & 0xFF
    copy_into(out, pos + 2, s, 0, n)
    return pos + 2 + n


def put_str_prop(out: bytearray, pos: int, pid: int, s: bytes) -> int:
    """A UTF-8 Encoded String or Binary Data property: s, already encoded."""
    out[pos] = pid
    return _put_field(out, pos + 1, s)


def put_pair_prop(out: bytearray, pos: int, name: bytes, value: bytes) -> int:
    """A User Property: name and value, already encoded as UTF-8."""
    out[pos] = USER_PROPERTY
    return _put_field(out, _put_field(out, pos + 1, name), value)
