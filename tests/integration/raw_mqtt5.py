"""MQTT 5.0 packets by hand, for byte-level integration tests (beside raw_mqtt, which is 3.1.1).

Properties are given either as a list of (property id, value) pairs, encoded by the type the
specification gives each id (section 2.2.2.2), or as ready-made bytes: a test that needs a
malformed property writes its bytes itself. What the broker sends back is decoded by
Packet5: reason codes and properties (a list of (id, value) pairs, in the order received).
"""

from __future__ import annotations

import struct

from raw_mqtt import (
    CONNACK, CONNECT, DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE,
    UNSUBACK, UNSUBSCRIBE, Packet, RawClient, _bytes, field, packet, remaining_length,
)

# Property identifiers (section 2.2.2.2)
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

_BYTE, _TWO, _FOUR, _VARINT, _STRING, _BINARY, _PAIR = range(7)
_TYPES = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STRING, 0x08: _STRING, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _FOUR, 0x12: _STRING, 0x13: _TWO, 0x15: _STRING, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _FOUR, 0x19: _BYTE, 0x1A: _STRING, 0x1C: _STRING, 0x1F: _STRING, 0x21: _TWO,
    0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR, 0x28: _BYTE,
    0x29: _BYTE, 0x2A: _BYTE,
}

# Reason codes the tests name
SUCCESS = 0x00
DISCONNECT_WITH_WILL = 0x04
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
PACKET_ID_NOT_FOUND = 0x92
TOPIC_ALIAS_INVALID = 0x94


# --------------------------------------------------------------------------------------------
# Encoding


def encode_property(prop_id, value) -> bytes:
    kind = _TYPES[prop_id]
    if kind == _BYTE:
        data = bytes([value])
    elif kind == _TWO:
        data = struct.pack("!H", value)
    elif kind == _FOUR:
        data = struct.pack("!I", value)
    elif kind == _VARINT:
        data = remaining_length(value)
    elif kind == _PAIR:
        data = field(value[0]) + field(value[1])
    else:
        data = field(value)
    return bytes([prop_id]) + data


def properties_block(properties=()) -> bytes:
    """Property Length and the properties: a list of (id, value) pairs, or ready-made bytes."""
    if isinstance(properties, (bytes, bytearray)):
        data = bytes(properties)
    else:
        data = b"".join(encode_property(prop_id, value) for prop_id, value in properties)
    return remaining_length(len(data)) + data


def connect5_packet(client_id="", clean_start=True, keepalive=60, properties=(),
                    will=None) -> bytes:
    """will: (topic, payload, qos, retain, will properties) or None."""
    flags = 0x02 if clean_start else 0x00
    payload = field(client_id)
    if will is not None:
        topic, message, qos, retain, will_properties = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += properties_block(will_properties) + field(topic) + field(message)
    variable = field("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive)
    return packet(CONNECT, 0, variable + properties_block(properties) + payload)


def publish5_packet(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=1,
                    properties=()) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = field(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    return packet(PUBLISH, flags, body + properties_block(properties) + _bytes(payload))


def subscribe5_packet(packet_id, filters, properties=()) -> bytes:
    """filters: list of (topic_filter, subscription options byte), the QoS in its low bits."""
    body = struct.pack("!H", packet_id) + properties_block(properties)
    for topic_filter, options in filters:
        body += field(topic_filter) + bytes([options])
    return packet(SUBSCRIBE, 0x02, body)


def unsubscribe5_packet(packet_id, filters, properties=()) -> bytes:
    body = struct.pack("!H", packet_id) + properties_block(properties)
    for topic_filter in filters:
        body += field(topic_filter)
    return packet(UNSUBSCRIBE, 0x02, body)


def ack5_packet(ptype, packet_id, reason=SUCCESS, properties=()) -> bytes:
    """PUBACK/PUBREC/PUBREL/PUBCOMP with a reason code and (if any) properties."""
    body = struct.pack("!H", packet_id) + bytes([reason]) + properties_block(properties)
    return packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def disconnect5_packet(reason=SUCCESS, properties=()) -> bytes:
    return packet(DISCONNECT, 0, bytes([reason]) + properties_block(properties))


# --------------------------------------------------------------------------------------------
# Decoding


def _read_varint(data, pos):
    value = 0
    multiplier = 1
    while True:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            return value, pos


def _read_field(data, pos):
    (n,) = struct.unpack_from("!H", data, pos)
    return bytes(data[pos + 2:pos + 2 + n]), pos + 2 + n


def decode_properties(data, pos):
    """(list of (id, value) in the order sent, position after them) from a Property Length."""
    length, pos = _read_varint(data, pos)
    end = pos + length
    out = []
    while pos < end:
        prop_id = data[pos]
        pos += 1
        kind = _TYPES[prop_id]
        if kind == _BYTE:
            value, pos = data[pos], pos + 1
        elif kind == _TWO:
            (value,), pos = struct.unpack_from("!H", data, pos), pos + 2
        elif kind == _FOUR:
            (value,), pos = struct.unpack_from("!I", data, pos), pos + 4
        elif kind == _VARINT:
            value, pos = _read_varint(data, pos)
        elif kind == _PAIR:
            name, pos = _read_field(data, pos)
            text, pos = _read_field(data, pos)
            value = (name.decode("utf-8"), text.decode("utf-8"))
        else:
            value, pos = _read_field(data, pos)
            if kind == _STRING:
                value = value.decode("utf-8")
        out.append((prop_id, value))
    assert pos == end, "Property Length %d does not end on a property" % length
    return out, end


class Packet5(Packet):
    """A packet from a v5 connection: .reason (one code) or .codes (SUBACK, UNSUBACK), and
    .properties, a list of (id, value) pairs; a PUBLISH has its .payload after them."""

    def __init__(self, first_byte: int, body: bytes):
        super().__init__(first_byte, body)
        self.reason = None
        self.properties = []
        try:
            self._decode_v5(body)
        except (IndexError, KeyError, struct.error) as e:
            raise AssertionError("not a well-formed v5 %s (%r): %r" % (self.name, e, body))

    def _decode_v5(self, body):
        if self.type == CONNACK:
            self.reason = body[1]
            if len(body) > 2:  # a 3.1.1 CONNACK (a refusal of 5.0) has no Property Length
                self.properties, _ = decode_properties(body, 2)
        elif self.type == PUBLISH:
            start = 2 + struct.unpack_from("!H", body, 0)[0] + (2 if self.qos else 0)
            self.properties, pos = decode_properties(body, start)
            self.payload = body[pos:]
        elif self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            # a Reason Code of 0x00 and no properties may be left out (section 3.4.2.1)
            self.reason = body[2] if len(body) > 2 else SUCCESS
            if len(body) > 3:
                self.properties, _ = decode_properties(body, 3)
        elif self.type in (SUBACK, UNSUBACK):
            self.properties, pos = decode_properties(body, 2)
            self.codes = list(body[pos:])
        elif self.type == DISCONNECT:
            self.reason = body[0] if body else SUCCESS
            if len(body) > 1:
                self.properties, _ = decode_properties(body, 1)

    def property(self, prop_id, default=None):
        """The value of the first property with this id, or default."""
        for key, value in self.properties:
            if key == prop_id:
                return value
        return default

    def __repr__(self):
        if self.type == PUBLISH:
            return "<PUBLISH %r %r qos=%d retain=%d id=%s props=%r>" % (
                self.topic, self.payload, self.qos, self.retain, self.packet_id, self.properties)
        return "<%s reason=%s codes=%s props=%r body=%r>" % (
            self.name, self.reason, getattr(self, "codes", None), self.properties, self.body)


class RawClient5(RawClient):
    """RawClient that decodes what it receives as MQTT 5.0 packets (Packet5)."""

    packet_class = Packet5

    def connect(self, client_id="", timeout=5.0, **kwargs) -> Packet5:
        """Send a v5 CONNECT and return the CONNACK (whatever its reason code)."""
        self.send(connect5_packet(client_id, **kwargs))
        return self.expect(CONNACK, timeout)

    def subscribe(self, filters, packet_id=1, timeout=5.0):
        """filters: list of (filter, options); returns the SUBACK reason codes."""
        self.send(subscribe5_packet(packet_id, filters))
        ack = self.expect(SUBACK, timeout)
        assert ack.packet_id == packet_id  # [MQTT-2.2.1-6]
        return ack.codes

    def disconnected_with(self, timeout=5.0):
        """Read until the broker closes; return the reason code of the DISCONNECT it sent first
        (fails if it closed without one)."""
        packets = self.wait_closed(timeout)
        disconnects = [p for p in packets if p.type == DISCONNECT]
        assert disconnects, "the broker closed without a DISCONNECT (received %r)" % packets
        return disconnects[-1].reason
