"""Whole MQTT packets as objects and bytes: the client side of the codec, for the tests (on
both runtimes: tools/mptest.py puts tests/core on sys.path, tests/conftest.py does for pytest).

The broker never imports this module: it parses and writes in place with broker.codec.
"""
from broker.codec import (
    Connect, MalformedPacket, Publish, Reader, decode_connect, decode_subscribe,
    decode_unsubscribe, parse_publish, publish_size, put_ack, put_publish, put_remaining_length,
    read_u16, remaining_length_size,
)
from broker.const import (
    CONNACK, CONNECT, DISCONNECT, MAX_REMAINING_LENGTH, PINGREQ, PINGRESP, PUBACK, PUBCOMP,
    PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
    CONNECT_FLAG_CLEAN_SESSION, CONNECT_FLAG_PASSWORD, CONNECT_FLAG_USERNAME, CONNECT_FLAG_WILL,
    CONNECT_FLAG_WILL_RETAIN, PROTOCOL_LEVEL_31, PROTOCOL_LEVEL_311,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple, Union
    Buffer = Union[bytes, bytearray]


def _string(s: "Union[str, bytes]") -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def _frame(b0: int, body: bytes) -> bytes:
    head = bytearray(1 + remaining_length_size(len(body)))
    head[0] = b0
    put_remaining_length(head, 1, len(body))
    return bytes(head) + body


def encode_connect(client_id: "Union[str, bytes]", clean_session: bool = True, keepalive: int = 60,
                   will_topic: "Optional[bytes]" = None, will_payload: bytes = b"",
                   will_qos: int = 0, will_retain: bool = False,
                   username: "Optional[Union[str, bytes]]" = None,
                   password: "Optional[bytes]" = None,
                   protocol_level: int = PROTOCOL_LEVEL_311, flags: int = -1) -> bytes:
    if flags < 0:
        flags = CONNECT_FLAG_CLEAN_SESSION if clean_session else 0
        if will_topic is not None:
            flags |= CONNECT_FLAG_WILL | (will_qos << 3)
            if will_retain:
                flags |= CONNECT_FLAG_WILL_RETAIN
        if username is not None:
            flags |= CONNECT_FLAG_USERNAME
        if password is not None:
            flags |= CONNECT_FLAG_PASSWORD
    name = "MQIsdp" if protocol_level == PROTOCOL_LEVEL_31 else "MQTT"
    body = _string(name) + bytes((protocol_level, flags, keepalive >> 8, keepalive & 0xFF))
    body += _string(client_id)
    if will_topic is not None:
        body += _string(will_topic) + _string(will_payload)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _frame(CONNECT << 4, body)


def encode_connack(session_present: bool, return_code: int) -> bytes:
    return bytes((CONNACK << 4, 2, 1 if session_present else 0, return_code))


def encode_publish(topic: bytes, payload: bytes, qos: int = 0, retain: bool = False,
                   dup: bool = False, mid: int = 0) -> bytes:
    b0 = (PUBLISH << 4) | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    out = bytearray(publish_size(b0, len(topic), len(payload)))
    src = topic + payload
    put_publish(out, 0, b0, mid, src, 0, len(topic), len(topic), len(src))
    return bytes(out)


def encode_ack(packet_type: int, mid: int) -> bytes:
    """PUBACK, PUBREC, PUBREL (flags 0b0010), PUBCOMP or UNSUBACK."""
    out = bytearray(4)
    put_ack(out, 0, (packet_type << 4) | (2 if packet_type == PUBREL else 0), mid)
    return bytes(out)


def encode_subscribe(mid: int, topics: "List[Tuple[bytes, int]]") -> bytes:
    body = bytes((mid >> 8, mid & 0xFF))
    for filt, qos in topics:
        body += _string(filt) + bytes((qos,))
    return _frame((SUBSCRIBE << 4) | 2, body)


def encode_suback(mid: int, codes: "List[int]") -> bytes:
    return _frame(SUBACK << 4, bytes((mid >> 8, mid & 0xFF)) + bytes(codes))


def encode_unsubscribe(mid: int, filters: "List[bytes]") -> bytes:
    body = bytes((mid >> 8, mid & 0xFF))
    for filt in filters:
        body += _string(filt)
    return _frame((UNSUBSCRIBE << 4) | 2, body)


def encode_simple(packet_type: int) -> bytes:
    """PINGREQ, PINGRESP or DISCONNECT: a fixed header with no body."""
    return bytes((packet_type << 4, 0))


class Packet:
    """Any decoded control packet, for clients and tests. Unused fields keep their defaults."""

    def __init__(self, packet_type: int, flags: int) -> None:
        self.type = packet_type
        self.flags = flags
        self.mid = 0
        self.topic = b""
        self.payload = b""
        self.qos = 0
        self.retain = False
        self.dup = False
        self.session_present = False
        self.return_code = 0
        self.topics = []  # type: List[Tuple[bytes, int]]
        self.codes = []  # type: List[int]
        self.connect = None  # type: Optional[Connect]


def decode(b0: int, buf: "Buffer", pos: int, end: int) -> Packet:
    """Decode one packet body (as framed by Reader) into a Packet, or raise MalformedPacket."""
    t = b0 >> 4
    p = Packet(t, b0 & 0x0F)
    if t == CONNECT:
        p.connect = decode_connect(buf, pos, end)
    elif t == PUBLISH:
        v = Publish()
        parse_publish(v, b0, buf, pos, end)
        p.topic = bytes(buf[v.topic_start:v.topic_end])
        p.payload = bytes(buf[v.payload_start:v.payload_end])
        p.qos = v.qos
        p.mid = v.mid
        p.retain = bool(b0 & 1)
        p.dup = bool(b0 & 8)
    elif t == SUBSCRIBE:
        p.mid, p.topics = decode_subscribe(buf, pos, end)
    elif t == UNSUBSCRIBE:
        p.mid, filters = decode_unsubscribe(buf, pos, end)
        p.topics = [(f, 0) for f in filters]
    elif t == SUBACK:
        p.mid = read_u16(buf, pos, end)
        p.codes = [buf[i] for i in range(pos + 2, end)]
    elif t == CONNACK or t in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
        if end - pos != 2:
            raise MalformedPacket("remaining length must be 2")
        if t == CONNACK:
            p.session_present = bool(buf[pos] & 1)
            p.return_code = buf[pos + 1]
        else:
            p.mid = read_u16(buf, pos, end)
    elif t in (PINGREQ, PINGRESP, DISCONNECT):
        if end != pos:
            raise MalformedPacket("remaining length must be 0")
    return p


def decode_stream(data: bytes, max_packet_size: int = MAX_REMAINING_LENGTH + 5) -> "List[Packet]":
    """Every whole packet in data (trailing partial bytes are ignored)."""
    r = Reader(max_packet_size)
    out = []
    pos = 0
    while pos < len(data):
        pos = r.take(data, pos, len(data))
        if r.ready:
            out.append(decode(r.b0, r.buf, r.start, r.end))
    return out
