"""broker.codec against the MQTT 3.1.1 specification: framing, every packet type, malformed input.

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython.
Expected bytes are written out by hand from the specification, not produced by the codec.
"""
from broker.codec import (
    MalformedPacket,
    Publish,
    Reader,
    decode_connect,
    decode_subscribe,
    decode_unsubscribe,
    header_flags_valid,
    parse_publish,
    publish_size,
    put_ack,
    put_publish,
    put_remaining_length,
    remaining_length_size,
)
from broker.const import (
    CONNACK, CONNECT, DISCONNECT, MAX_REMAINING_LENGTH, PINGREQ, PINGRESP, PUBACK, PUBCOMP,
    PUBLISH, PUBREC, PUBREL, RC_PACKET_TOO_LARGE, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
)
from packets import (
    decode,
    decode_stream,
    encode_ack,
    encode_connack,
    encode_connect,
    encode_publish,
    encode_simple,
    encode_suback,
    encode_subscribe,
    encode_unsubscribe,
)
from support import MPY, SkipTest

BIG = MAX_REMAINING_LENGTH + 5  # a max_packet_size that admits every legal packet


# ---- helpers ----------------------------------------------------------------------------------

def rl_bytes(n):
    """Remaining Length encoding written from the algorithm of section 2.2.3 (independent of the
    codec's own put_remaining_length)."""
    out = []
    while True:
        d = n % 128
        n = n // 128
        if n > 0:
            d = d | 128
        out.append(d)
        if n == 0:
            return bytes(out)


def frame(b0, body):
    return bytes((b0,)) + rl_bytes(len(body)) + body


def s(x):
    """A length-prefixed string/binary field (section 1.5.3)."""
    if isinstance(x, str):
        x = x.encode()
    return bytes((len(x) >> 8, len(x) & 0xFF)) + x


def connect_body(flags, payload, name=b"MQTT", level=4, keepalive=60):
    return s(name) + bytes((level, flags, keepalive >> 8, keepalive & 0xFF)) + payload


def summary(p):
    """Every field of a decoded Packet, comparable with ==."""
    c = p.connect
    cs = None
    if c is not None:
        cs = (c.protocol_name, c.protocol_level, c.flags, c.keepalive, c.client_id,
              c.will_topic, c.will_payload, c.will_qos, c.will_retain, c.username, c.password)
    return (p.type, p.flags, p.mid, p.topic, p.payload, p.qos, p.retain, p.dup,
            p.session_present, p.return_code, p.topics, p.codes, cs)


def one(data):
    """The single packet in data (fails unless data is exactly one packet)."""
    pkts = decode_stream(data)
    assert len(pkts) == 1, len(pkts)
    return pkts[0]


def feed(chunks, max_packet_size=BIG):
    """Feed chunks to one Reader the way a port does: each chunk is copied into the same reused
    receive buffer (at an offset, with garbage around it), so anything the Reader keeps across
    calls must have been copied. Returns the summaries of the decoded packets."""
    r = Reader(max_packet_size)
    longest = 0
    for c in chunks:
        if len(c) > longest:
            longest = len(c)
    junk = b"\xee" * (longest + 10)
    rx = bytearray(junk)
    out = []
    for c in chunks:
        rx[0:len(junk)] = junk  # scribble over the previous chunk
        off = 3
        rx[off:off + len(c)] = c
        pos = off
        end = off + len(c)
        while pos < end:
            npos = r.take(rx, pos, end)
            assert npos > pos  # always makes progress
            pos = npos
            if r.ready:
                out.append(summary(decode(r.b0, r.buf, r.start, r.end)))
    return out


def assert_malformed(data, why):
    """data (whole packets) is refused with MalformedPacket, fed whole and fed byte by byte.
    Any other exception propagates and fails the test."""
    refused = False
    try:
        decode_stream(data)
    except MalformedPacket:
        refused = True
    assert refused, "accepted (whole) %s: %r" % (why, data)
    refused = False
    r = Reader(BIG)
    try:
        for i in range(len(data)):
            assert r.take(data, i, i + 1) == i + 1
            if r.ready:
                decode(r.b0, r.buf, r.start, r.end)
    except MalformedPacket:
        refused = True
    assert refused, "accepted (byte by byte) %s: %r" % (why, data)


def connect_malformed(body, why):
    """A CONNECT body is refused by decode_connect directly and as a framed packet."""
    refused = False
    try:
        decode_connect(body, 0, len(body))
    except MalformedPacket:
        refused = True
    assert refused, "decode_connect accepted %s: %r" % (why, body)
    assert_malformed(frame(0x10, body), why)


# ---- round trips of all 14 packet types -------------------------------------------------------

def test_connect_exact_bytes():
    # 3.1: protocol name "MQTT", level 4, clean session, keepalive 10, client id "a".
    expect = bytes((0x10, 0x0D, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x0A,
                    0x00, 0x01, 0x61))
    assert encode_connect("a", keepalive=10) == expect
    # 3.1.2.10 example variable header: flags 0xCE = username, password, will QoS 1, will, clean.
    pkt = encode_connect("c", keepalive=10, will_topic=b"w", will_payload=b"m", will_qos=1,
                         username="u", password=b"p")
    assert pkt[2:12] == bytes((0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0xCE, 0x00, 0x0A))
    assert pkt[12:] == b"\x00\x01c\x00\x01w\x00\x01m\x00\x01u\x00\x01p"
    # MQTT 3.1: protocol name "MQIsdp", level 3.
    pkt = encode_connect("a", keepalive=10, protocol_level=3)
    assert pkt == bytes((0x10, 0x0F, 0x00, 0x06)) + b"MQIsdp" + bytes(
        (0x03, 0x02, 0x00, 0x0A, 0x00, 0x01, 0x61))


def check_connect(pkt, level, client_id, clean, keepalive, will_topic, will_payload, will_qos,
                  will_retain, username, password):
    p = one(pkt)
    assert p.type == CONNECT and p.flags == 0
    c = p.connect
    assert c is not None
    assert c.supported()
    assert c.protocol_level == level
    assert c.protocol_name == ("MQTT" if level == 4 else "MQIsdp")
    assert c.client_id == client_id
    assert c.clean_session == clean
    assert c.keepalive == keepalive
    assert c.will_topic == will_topic
    if will_topic is None:
        assert c.will_payload == b"" and c.will_qos == 0 and c.will_retain is False
    else:
        assert c.will_payload == will_payload
        assert c.will_qos == will_qos
        assert c.will_retain == will_retain
    assert c.username == username
    assert c.password == password


def test_connect_round_trip():
    for level in (3, 4):
        for clean in (True, False):
            # no will, no credentials
            pkt = encode_connect("client-1", clean_session=clean, keepalive=0,
                                 protocol_level=level)
            check_connect(pkt, level, "client-1", clean, 0, None, b"", 0, False, None, None)
            # will at each QoS, with and without retain; username only; username and password
            for wq in (0, 1, 2):
                for wr in (False, True):
                    pkt = encode_connect("c", clean_session=clean, keepalive=65535,
                                         will_topic=b"last/will", will_payload=b"bye\x00\xff",
                                         will_qos=wq, will_retain=wr, protocol_level=level)
                    check_connect(pkt, level, "c", clean, 65535, b"last/will", b"bye\x00\xff",
                                  wq, wr, None, None)
            pkt = encode_connect("c", clean_session=clean, username="user",
                                 protocol_level=level)
            check_connect(pkt, level, "c", clean, 60, None, b"", 0, False, "user", None)
            pkt = encode_connect("c", clean_session=clean, username="user",
                                 password=b"\x00pw\xff", protocol_level=level)
            check_connect(pkt, level, "c", clean, 60, None, b"", 0, False, "user", b"\x00pw\xff")
            pkt = encode_connect("", clean_session=clean, keepalive=30, will_topic=b"w",
                                 will_payload=b"", will_qos=2, will_retain=True,
                                 username="", password=b"", protocol_level=level)
            check_connect(pkt, level, "", clean, 30, b"w", b"", 2, True, "", b"")


def test_connect_utf8_accepted():
    # Well-formed UTF-8 at the edges of each sequence length; U+FEFF is kept [MQTT-1.5.3-3].
    for cid in ("\u00e9", "\u20ac", "\U0001F600", "\ud7ff", "\ue000", "\U0010FFFF",
                "\ufeffx", "\u007f\u0080\u07ff\u0800\uffff\U00010000"):
        p = one(encode_connect(cid, username=cid + "u"))
        assert p.connect.client_id == cid, repr(cid)
        assert p.connect.username == cid + "u"


def test_connack_round_trip():
    for sp in (0, 1):
        for rc in (0, 1, 2, 3, 4, 5):
            pkt = encode_connack(bool(sp), rc)
            assert pkt == bytes((0x20, 0x02, sp, rc))  # 3.2
            p = one(pkt)
            assert p.type == CONNACK and p.flags == 0
            assert p.session_present == bool(sp)
            assert p.return_code == rc
    assert encode_connack(False, 0) == b"\x20\x02\x00\x00"


def check_publish(topic, payload, qos, retain, dup, mid):
    pkt = encode_publish(topic, payload, qos=qos, retain=retain, dup=dup, mid=mid)
    b0 = 0x30 | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    assert pkt[0] == b0
    rl = 2 + len(topic) + len(payload) + (2 if qos else 0)
    hdr = bytes((b0,)) + rl_bytes(rl)
    assert pkt[:len(hdr)] == hdr
    assert len(pkt) == len(hdr) + rl == publish_size(b0, len(topic), len(payload))
    p = one(pkt)
    assert p.type == PUBLISH
    assert p.flags == b0 & 0x0F
    assert p.topic == topic
    assert p.payload == payload
    assert p.qos == qos
    assert p.retain == retain
    assert p.dup == dup
    assert p.mid == (mid if qos else 0)
    return pkt


def test_publish_round_trip():
    for qos in (0, 1, 2):
        for retain in (False, True):
            for dup in (False, True):
                check_publish(b"a/b", b"payload", qos, retain, dup, 1)
                check_publish(b"a", b"", qos, retain, dup, 65535)      # empty payload
                check_publish(b"", b"x", qos, retain, dup, 0x1234)     # zero-length topic field
                check_publish(b"/", b"\x00" * 3, qos, retain, dup, 7)
    long_topic = b"t/" * 32767 + b"x"  # 65535 bytes, the longest a string can be (1.5.3)
    assert len(long_topic) == 65535
    check_publish(long_topic, b"p", 1, False, False, 42)
    check_publish(long_topic, b"", 0, True, False, 0)


def test_publish_exact_bytes():
    # 3.3: topic "a/b", packet id 10 at QoS 1.
    assert encode_publish(b"a/b", b"hi", qos=1, mid=10) == bytes(
        (0x32, 0x09, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x0A, 0x68, 0x69))
    # QoS 0 carries no packet identifier [MQTT-2.3.1-5].
    assert encode_publish(b"a/b", b"hi") == bytes(
        (0x30, 0x07, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x68, 0x69))
    # DUP 0x08 | QoS 2 0x04 | RETAIN 0x01
    assert encode_publish(b"t", b"", qos=2, retain=True, dup=True, mid=0x0102) == bytes(
        (0x3D, 0x05, 0x00, 0x01, 0x74, 0x01, 0x02))


def test_publish_200k_payload():
    payload = bytes(range(256)) * 800  # 204800 bytes
    pkt = check_publish(b"big/one", payload, 1, False, False, 9)
    # Remaining length 204811 takes 3 bytes: continuation bits on the first two only.
    assert pkt[1] & 0x80 and pkt[2] & 0x80 and not pkt[3] & 0x80
    assert remaining_length_size(len(pkt) - 4) == 3
    # Fed in socket-sized pieces the body is gathered, then the buffer can be released.
    r = Reader(len(pkt))
    got = None
    pos = 0
    mv = memoryview(pkt)
    while pos < len(pkt):
        n = 4096 if pos + 4096 <= len(pkt) else len(pkt) - pos
        chunk = bytes(mv[pos:pos + n])
        assert r.take(chunk, 0, n) == n
        assert r.buffered() <= len(pkt)
        pos += n
        if r.ready:
            assert pos == len(pkt)
            got = decode(r.b0, r.buf, r.start, r.end)
    assert got is not None
    assert got.payload == payload and got.topic == b"big/one" and got.mid == 9
    r.release()
    assert r.buffered() <= 256


def test_publish_4_byte_remaining_length():
    if MPY:
        raise SkipTest("a 2 MB packet is too large for the default MicroPython heap")
    payload = b"\xa5" * 2097152
    pkt = check_publish(b"t", payload, 0, False, False, 0)
    # 2 + 1 + 2097152 = 2097155: four length bytes.
    assert pkt[1:5] == rl_bytes(2097155) and len(rl_bytes(2097155)) == 4


def test_acks_round_trip_and_bytes():
    # PUBACK 0x40, PUBREC 0x50, PUBREL 0x62 [MQTT-3.6.1-1], PUBCOMP 0x70, UNSUBACK 0xB0.
    for t, b0 in ((PUBACK, 0x40), (PUBREC, 0x50), (PUBREL, 0x62), (PUBCOMP, 0x70),
                  (UNSUBACK, 0xB0)):
        for mid in (1, 0x00FF, 0x0100, 0xABCD, 65535):
            pkt = encode_ack(t, mid)
            assert pkt == bytes((b0, 0x02, mid >> 8, mid & 0xFF)), (t, mid)
            p = one(pkt)
            assert p.type == t and p.mid == mid and p.flags == b0 & 0x0F
    out = bytearray(b"\xee" * 10)
    assert put_ack(out, 3, 0x62, 0x0A0B) == 7
    assert out == bytearray(b"\xee\xee\xee\x62\x02\x0a\x0b\xee\xee\xee")


def test_subscribe_round_trip_and_bytes():
    topics = [(b"a/b", 1), (b"c/#", 2), (b"+/x/+", 0), (b"#", 1), (b"\xc3\xa9", 2)]
    pkt = encode_subscribe(0x1234, topics)
    p = one(pkt)
    assert p.type == SUBSCRIBE and p.flags == 2
    assert p.mid == 0x1234
    assert p.topics == topics
    # 3.8: fixed header 0x82 [MQTT-3.8.1-1], packet id, then (filter, requested QoS) pairs.
    assert encode_subscribe(1, [(b"a/b", 1), (b"c/#", 2)]) == bytes(
        (0x82, 0x0E, 0x00, 0x01, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x01,
         0x00, 0x03, 0x63, 0x2F, 0x23, 0x02))
    body = pkt[2:]
    assert decode_subscribe(body, 0, len(body)) == (0x1234, topics)


def test_suback_round_trip_and_bytes():
    pkt = encode_suback(0x0102, [0, 1, 2, 0x80])
    assert pkt == bytes((0x90, 0x06, 0x01, 0x02, 0x00, 0x01, 0x02, 0x80))  # 3.9
    p = one(pkt)
    assert p.type == SUBACK and p.flags == 0
    assert p.mid == 0x0102
    assert p.codes == [0, 1, 2, 0x80]
    p = one(encode_suback(7, [0x80]))
    assert p.mid == 7 and p.codes == [0x80]


def test_unsubscribe_round_trip_and_bytes():
    filters = [b"a/b", b"c", b"+/#"]
    pkt = encode_unsubscribe(0xBEEF, filters)
    p = one(pkt)
    assert p.type == UNSUBSCRIBE and p.flags == 2
    assert p.mid == 0xBEEF
    assert [f for f, q in p.topics] == filters
    # 3.10: fixed header 0xA2 [MQTT-3.10.1-1].
    assert encode_unsubscribe(2, [b"a/b", b"c"]) == bytes(
        (0xA2, 0x0A, 0x00, 0x02, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x01, 0x63))
    body = pkt[2:]
    assert decode_unsubscribe(body, 0, len(body)) == (0xBEEF, filters)


def test_unsuback_round_trip():
    assert encode_ack(UNSUBACK, 0xBEEF) == b"\xb0\x02\xbe\xef"  # 3.11
    p = one(b"\xb0\x02\xbe\xef")
    assert p.type == UNSUBACK and p.mid == 0xBEEF


def test_pingreq_pingresp_disconnect():
    for t, b0 in ((PINGREQ, 0xC0), (PINGRESP, 0xD0), (DISCONNECT, 0xE0)):  # 3.12, 3.13, 3.14
        pkt = encode_simple(t)
        assert pkt == bytes((b0, 0x00))
        p = one(pkt)
        assert p.type == t and p.flags == 0


# ---- remaining length (2.2.3) -----------------------------------------------------------------

# Table 2.4 - Size of Remaining Length field: each boundary with its encoding.
RL_TABLE = (
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
)


def test_remaining_length_encoding_table():
    for n, enc in RL_TABLE:
        assert rl_bytes(n) == enc, n  # the helper agrees with the specification
        assert remaining_length_size(n) == len(enc), n
        out = bytearray(b"\xee" * 8)
        end = put_remaining_length(out, 2, n)
        assert end == 2 + len(enc), n
        assert bytes(out[2:end]) == enc, n
        assert out[0] == 0xEE and out[1] == 0xEE and out[end] == 0xEE
    # 2.2.3 algorithm example values
    for n, enc in ((64, b"\x40"), (321, b"\xc1\x02")):
        out = bytearray(4)
        assert put_remaining_length(out, 0, n) == len(enc)
        assert bytes(out[:len(enc)]) == enc


def test_remaining_length_decoding_small():
    # Whole packets: header + body of exactly n bytes.
    for n, enc in RL_TABLE[:5]:
        body = bytes((0x00, 0x01, 0x74)) + b"p" * (n - 3) if n >= 3 else b"\x00" * n
        pkt = b"\x30" + enc + body
        for pieces in ((pkt,), (pkt[:1], pkt[1:]), (pkt[:1 + len(enc)], pkt[1 + len(enc):])):
            r = Reader(BIG)
            done = 0
            for c in pieces:
                assert r.take(c, 0, len(c)) == len(c)
                if r.ready:
                    done += 1
                    assert r.b0 == 0x30
                    assert r.end - r.start == n, n
                    assert bytes(r.buf[r.start:r.end]) == body
                    if n >= 3:
                        p = decode(r.b0, r.buf, r.start, r.end)
                        assert p.topic == b"t" and len(p.payload) == n - 3
            assert done == 1, n


def test_remaining_length_decoding_big_header_only():
    # Only the header (and a few body bytes) is fed: the Reader waits for more and allocates
    # memory only for what it has been given, not for the declared body.
    for n, enc in RL_TABLE[5:]:
        hdr = b"\x30" + enc
        total = len(hdr) + n
        for bytewise in (False, True):
            r = Reader(BIG)
            if bytewise:
                for i in range(len(hdr)):
                    assert r.take(hdr, i, i + 1) == i + 1
                    assert not r.ready
            else:
                assert r.take(hdr, 0, len(hdr)) == len(hdr)
                assert not r.ready
            assert r.buffered() <= 64, r.buffered()
            more = b"\x00\x01tpppp"
            assert r.take(more, 0, len(more)) == len(more)
            assert not r.ready
            assert r.buffered() <= 64, r.buffered()
        # The decoded length is exact: a limit of `total` admits it, one byte less refuses it.
        r = Reader(total)
        assert r.take(hdr, 0, len(hdr)) == len(hdr) and not r.ready
        r = Reader(total - 1)
        refused = False
        try:
            r.take(hdr, 0, len(hdr))
        except MalformedPacket as e:
            refused = e.reason == RC_PACKET_TOO_LARGE
        assert refused, n


def test_remaining_length_fifth_byte_malformed():
    # At most four remaining-length bytes (2.2.3): a fourth byte with the continuation bit set.
    for data in (b"\x30\xff\xff\xff\xff\x7f", b"\x30\x80\x80\x80\x80\x01",
                 b"\xc0\x80\x80\x80\x80\x00"):
        assert_malformed(data, "five remaining-length bytes")
        r = Reader(BIG)
        refused = False
        try:
            for i in range(5):
                r.take(data, i, i + 1)
        except MalformedPacket:
            refused = True
        assert refused  # refused by the fifth byte at the latest, never waiting for a sixth
        assert r.buffered() <= 5


# ---- streams split anywhere ---------------------------------------------------------------------

def all_packets():
    return [
        encode_connect("dev-1", clean_session=False, keepalive=30, will_topic=b"dev/1/status",
                       will_payload=b"offline", will_qos=1, will_retain=True, username="u\u00e9",
                       password=b"secret"),
        encode_connect("old", protocol_level=3),
        encode_connack(True, 0),
        encode_publish(b"a/b", b"qos0"),
        encode_publish(b"a/b", b"qos1", qos=1, mid=1, retain=True),
        encode_publish(b"a/b/c", b"qos2", qos=2, mid=2, dup=True),
        encode_publish(b"long", b"L" * 300, qos=1, mid=3),  # two remaining-length bytes
        encode_publish(b"e", b""),
        encode_ack(PUBACK, 1),
        encode_ack(PUBREC, 2),
        encode_ack(PUBREL, 2),
        encode_ack(PUBCOMP, 2),
        encode_subscribe(4, [(b"a/#", 2), (b"+/b", 0)]),
        encode_suback(4, [2, 0x80]),
        encode_unsubscribe(5, [b"a/#", b"+/b"]),
        encode_ack(UNSUBACK, 5),
        encode_simple(PINGREQ),
        encode_simple(PINGRESP),
        encode_simple(DISCONNECT),
    ]


def test_stream_of_all_types_whole():
    pkts = all_packets()
    data = b"".join(pkts)
    got = decode_stream(data)
    assert [p.type for p in got] == [1, 1, 2, 3, 3, 3, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert [summary(p) for p in got] == [summary(one(p)) for p in pkts]
    assert feed([data]) == [summary(p) for p in got]


def test_stream_split_at_every_byte():
    data = b"".join(all_packets())
    expect = [summary(p) for p in decode_stream(data)]
    assert len(expect) == 19
    for i in range(1, len(data)):
        got = feed([data[:i], data[i:]])
        assert got == expect, i


def test_stream_one_byte_at_a_time():
    data = b"".join(all_packets())
    expect = [summary(p) for p in decode_stream(data)]
    chunks = [data[i:i + 1] for i in range(len(data))]
    assert feed(chunks) == expect
    # and in uneven pieces, some holding several packets and a part of the next
    chunks = []
    i = 0
    n = 1
    while i < len(data):
        chunks.append(data[i:i + n])
        i += n
        n = n * 3 % 97 + 1
    assert feed(chunks) == expect


def test_decode_stream_ignores_trailing_partial():
    data = encode_simple(PINGREQ) + encode_publish(b"t", b"abc")[:-1]
    got = decode_stream(data)
    assert len(got) == 1 and got[0].type == PINGREQ


# ---- malformed input ----------------------------------------------------------------------------

# Table 2.2 - Flag Bits: the valid low nibble per type (None for PUBLISH: DUP, QoS, RETAIN).
VALID_FLAGS = (None, 0, 0, None, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, None)


def test_header_flags_valid_table():
    for b0 in range(256):
        t = b0 >> 4
        f = b0 & 0x0F
        if t == 0 or t == 15:
            expect = False  # reserved packet types (2.2.1)
        elif t == PUBLISH:
            expect = (f & 0x06) != 0x06  # QoS 3 [MQTT-3.3.1-4]
        else:
            expect = f == VALID_FLAGS[t]  # [MQTT-2.2.2-1]
        assert header_flags_valid(b0) == expect, "0x%02x" % b0


def test_reserved_packet_types_malformed():
    for t in (0, 15):
        for f in range(16):
            assert_malformed(bytes(((t << 4) | f, 0x00)), "reserved type %d" % t)


def test_wrong_fixed_header_flags_malformed():
    # [MQTT-2.2.2-2]: any other flags for a non-PUBLISH type are refused at the first byte.
    bodies = {CONNECT: encode_connect("c")[2:], CONNACK: b"\x00\x00", PUBACK: b"\x00\x01",
              PUBREC: b"\x00\x01", PUBREL: b"\x00\x01", PUBCOMP: b"\x00\x01",
              SUBSCRIBE: b"\x00\x01\x00\x01a\x00", SUBACK: b"\x00\x01\x00",
              UNSUBSCRIBE: b"\x00\x01\x00\x01a", UNSUBACK: b"\x00\x01", PINGREQ: b"",
              PINGRESP: b"", DISCONNECT: b""}
    for t in bodies:
        body = bodies[t]
        for f in range(16):
            pkt = frame((t << 4) | f, body)
            if f == VALID_FLAGS[t]:
                assert one(pkt).type == t  # the valid form is accepted
                continue
            assert_malformed(pkt, "type %d flags %d" % (t, f))
            r = Reader(BIG)
            refused = False
            try:
                r.take(pkt, 0, 1)  # the first byte alone is enough to refuse it
            except MalformedPacket:
                refused = True
            assert refused, (t, f)


def test_publish_qos3_malformed():
    for b0 in (0x36, 0x37, 0x3E, 0x3F):  # [MQTT-3.3.1-4]
        assert_malformed(frame(b0, b"\x00\x01t\x00\x01x"), "PUBLISH QoS 3")
    for b0 in (0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D):
        assert one(frame(b0, b"\x00\x01t\x00\x01x")).type == PUBLISH


def test_publish_truncated_malformed():
    assert_malformed(b"\x30\x00", "PUBLISH without topic length")
    assert_malformed(b"\x30\x01\x00", "PUBLISH with half a topic length")
    assert_malformed(b"\x30\x05\x00\x10abc", "PUBLISH topic longer than the packet")
    assert_malformed(b"\x32\x05\x00\x04abc", "PUBLISH QoS 1 topic longer than the packet")
    assert_malformed(b"\x32\x05\x00\x03abc", "PUBLISH QoS 1 without packet id")
    assert_malformed(b"\x34\x06\x00\x03abc\x00", "PUBLISH QoS 2 with half a packet id")
    assert_malformed(b"\x30\x03\xff\xffa", "PUBLISH topic length 65535 in 3 bytes")


def test_fixed_size_packets_wrong_length_malformed():
    for b0 in (0x40, 0x50, 0x62, 0x70, 0xB0, 0x20):
        assert_malformed(bytes((b0, 0x03, 0x00, 0x01, 0x00)), "0x%02x with length 3" % b0)
        assert_malformed(bytes((b0, 0x01, 0x00)), "0x%02x with length 1" % b0)
        assert_malformed(bytes((b0, 0x00)), "0x%02x with length 0" % b0)
    for b0 in (0xC0, 0xD0, 0xE0):
        assert_malformed(bytes((b0, 0x01, 0x00)), "0x%02x with length 1" % b0)
        assert_malformed(bytes((b0, 0x02, 0x00, 0x00)), "0x%02x with length 2" % b0)


def test_connect_truncated_strings_malformed():
    connect_malformed(b"", "empty CONNECT")
    connect_malformed(b"\x00\x04MQ", "protocol name beyond the packet")
    connect_malformed(b"\x00\x04MQTT\x04\x02\x00", "variable header cut short")
    connect_malformed(connect_body(0x02, b""), "no client id")
    connect_malformed(connect_body(0x02, b"\x00"), "half a client id length")
    connect_malformed(connect_body(0x02, b"\x00\x09abc"), "client id beyond the packet")
    connect_malformed(connect_body(0x06, s("c")), "will flag without will topic")
    connect_malformed(connect_body(0x06, s("c") + b"\x00\x05wi"), "will topic beyond the packet")
    connect_malformed(connect_body(0x06, s("c") + s("w")), "will flag without will message")
    connect_malformed(connect_body(0x06, s("c") + s("w") + b"\x01\x00m"),
                      "will message beyond the packet")
    connect_malformed(connect_body(0x82, s("c")), "username flag without username")
    connect_malformed(connect_body(0x82, s("c") + b"\x00\x03u"), "username beyond the packet")
    connect_malformed(connect_body(0xC2, s("c") + s("u")), "password flag without password")
    connect_malformed(connect_body(0xC2, s("c") + s("u") + b"\x00\x02p"),
                      "password beyond the packet")


def test_connect_flags_malformed():
    # [MQTT-3.1.2-3] reserved flag must be 0
    connect_malformed(connect_body(0x03, s("c")), "reserved flag")
    connect_malformed(connect_body(0x01, s("c")), "reserved flag")
    # [MQTT-3.1.2-13] will flag 0 -> will QoS 0
    connect_malformed(connect_body(0x0A, s("c")), "will QoS 1 without will flag")
    connect_malformed(connect_body(0x12, s("c")), "will QoS 2 without will flag")
    connect_malformed(connect_body(0x1A, s("c")), "will QoS 3 without will flag")
    # [MQTT-3.1.2-15] will flag 0 -> will retain 0
    connect_malformed(connect_body(0x22, s("c")), "will retain without will flag")
    # [MQTT-3.1.2-14] will QoS 3
    connect_malformed(connect_body(0x1E, s("c") + s("w") + s("m")), "will QoS 3")
    connect_malformed(connect_body(0x3E, s("c") + s("w") + s("m")), "will QoS 3 retained")
    # [MQTT-3.1.2-22] password without username
    connect_malformed(connect_body(0x42, s("c") + s("p")), "password without username")
    # the valid neighbours are accepted
    for flags, payload in ((0x02, s("c")), (0x00, s("c")), (0x0E, s("c") + s("w") + s("m")),
                           (0x36, s("c") + s("w") + s("m")), (0x82, s("c") + s("u")),
                           (0xC2, s("c") + s("u") + s("p"))):
        body = connect_body(flags, payload)
        c = decode_connect(body, 0, len(body))
        assert c.flags == flags


def test_connect_invalid_utf8_malformed():
    bad = (
        (b"\xc0\x80", "overlong U+0000"),
        (b"\xc1\xbf", "overlong U+007F"),
        (b"\xe0\x80\xaf", "overlong '/' in three bytes"),
        (b"\xe0\x9f\xbf", "overlong U+07FF"),
        (b"\xf0\x8f\xbf\xbf", "overlong U+FFFF"),
        (b"\xed\xa0\x80", "surrogate U+D800"),
        (b"\xed\xbf\xbf", "surrogate U+DFFF"),
        (b"a\x00b", "U+0000"),                              # [MQTT-1.5.3-2]
        (b"\x00", "U+0000 alone"),
        (b"\xf4\x90\x80\x80", "beyond U+10FFFF"),
        (b"\xf5\x80\x80\x80", "lead byte 0xF5"),
        (b"\xff", "byte 0xFF"),
        (b"\x80", "lone continuation byte"),
        (b"\xe2\x82", "sequence cut short"),
        (b"\xe2\x28\xa1", "bad continuation byte"),
    )
    for raw, why in bad:
        connect_malformed(connect_body(0x02, s(raw)), "client id: " + why)  # [MQTT-1.5.3-1]
        connect_malformed(connect_body(0x82, s("c") + s(raw)), "username: " + why)
    # The protocol name is a UTF-8 string too.
    connect_malformed(b"\x00\x04MQ\xc0\x80\x04\x02\x00\x3c\x00\x01c", "protocol name overlong")


def test_connect_extra_bytes_malformed():
    pkt = encode_connect("c", will_topic=b"w", will_payload=b"m", username="u", password=b"p")
    body = pkt[2:] + b"\x00"
    connect_malformed(body, "a byte after the password")
    connect_malformed(encode_connect("c")[2:] + b"\x00\x01x", "a string after the client id")
    connect_malformed(encode_connect("c", username="u")[2:] + b"\x00\x01p",
                      "password present but its flag is clear")


def test_subscribe_malformed():
    assert_malformed(frame(0x82, b"\x00\x01"), "SUBSCRIBE with no filter")  # [MQTT-3.8.3-3]
    assert_malformed(frame(0x82, b""), "SUBSCRIBE with no packet id")
    assert_malformed(frame(0x82, b"\x00"), "SUBSCRIBE with half a packet id")
    assert_malformed(frame(0x82, b"\x00\x01\x00\x05a/b\x01"), "filter beyond the packet")
    assert_malformed(frame(0x82, b"\x00\x01\x00\x03a/b"), "filter without requested QoS")
    assert_malformed(frame(0x82, b"\x00\x01\x00\x03a/b\x01\x00"), "half a second filter length")
    assert_malformed(frame(0x82, b"\x00\x01\x00\x03a/b\x01\x00\x02c"), "second filter truncated")
    # requested QoS 3, and any reserved bit set [MQTT-3-8.3-4]
    for q in (0x03, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x81, 0xFC, 0xFF):
        assert_malformed(frame(0x82, b"\x00\x01\x00\x03a/b" + bytes((q,))),
                         "requested QoS byte 0x%02x" % q)
        assert_malformed(frame(0x82, b"\x00\x01\x00\x01a\x00\x00\x01b" + bytes((q,))),
                         "second requested QoS byte 0x%02x" % q)
        body = b"\x00\x01\x00\x03a/b" + bytes((q,))
        refused = False
        try:
            decode_subscribe(body, 0, len(body))
        except MalformedPacket:
            refused = True
        assert refused, q


def test_unsubscribe_malformed():
    assert_malformed(frame(0xA2, b"\x00\x01"), "UNSUBSCRIBE with no filter")  # [MQTT-3.10.3-2]
    assert_malformed(frame(0xA2, b""), "UNSUBSCRIBE with no packet id")
    assert_malformed(frame(0xA2, b"\x00\x01\x00\x05a/b"), "filter beyond the packet")
    assert_malformed(frame(0xA2, b"\x00\x01\x00\x03a/b\x00"), "half a second filter length")
    assert_malformed(frame(0xA2, b"\x00\x01\x00\x03a/b\x00\x09c"), "second filter truncated")
    body = b"\x00\x01"
    refused = False
    try:
        decode_unsubscribe(body, 0, len(body))
    except MalformedPacket:
        refused = True
    assert refused


def test_suback_truncated_malformed():
    assert_malformed(b"\x90\x00", "SUBACK with no packet id")
    assert_malformed(b"\x90\x01\x00", "SUBACK with half a packet id")


# ---- unsupported protocols ----------------------------------------------------------------------

def test_unsupported_protocol_returns_connect():
    # a level after 5, laid out as MQTT 5 (a properties block after keepalive) [MQTT-3.1.2-2]
    v6 = (s("MQTT") + bytes((6, 0x02, 0x00, 0x3C)) + b"\x05\x11\x00\x00\x00\x0a"
          + s("v6-client"))
    others = (
        v6,
        connect_body(0x02, s("c"), name=b"MQTX", level=4),
        connect_body(0x02, s("c"), name=b"MQTT", level=3),
        connect_body(0x02, s("c"), name=b"MQIsdp", level=4),
        connect_body(0x02, s("c"), name=b"MQTT", level=6),
        connect_body(0xFF, b"\xff\xff\xff", name=b"MQTT", level=0),  # rest follows no rule we know
    )
    for body in others:
        c = decode_connect(body, 0, len(body))
        assert not c.supported(), body
        p = one(frame(0x10, body))
        assert p.type == CONNECT and p.connect is not None and not p.connect.supported()
    c = decode_connect(v6, 0, len(v6))
    assert c.protocol_name == "MQTT" and c.protocol_level == 6
    c = decode_connect(others[1], 0, len(others[1]))
    assert c.protocol_name == "MQTX" and c.protocol_level == 4


# ---- Packet too large ---------------------------------------------------------------------------

def test_packet_too_large_before_body():
    limit = 100
    ok = encode_publish(b"t", b"x" * (limit - 5))  # 2 + (2 + 1 + 95) = 100 bytes
    assert len(ok) == limit
    assert len(feed([ok], limit)) == 1
    big = encode_publish(b"t", b"x" * (limit - 4))  # 101 bytes
    hdr = big[:2]
    r = Reader(limit)
    refused = False
    try:
        r.take(hdr, 0, len(hdr))  # only the header: refused before the body arrives
    except MalformedPacket as e:
        refused = e.reason == RC_PACKET_TOO_LARGE
    assert refused
    assert r.buffered() <= 5


def test_packet_too_large_header_byte_by_byte():
    limit = 1000
    for rl in (999, 16384, 200000, MAX_REMAINING_LENGTH):
        hdr = b"\x30" + rl_bytes(rl)
        for start in (0, 7):
            # also after a packet that fit, whole and split
            r = Reader(limit)
            if start:
                prev = encode_publish(b"a", b"b")
                assert r.take(prev, 0, 3) == 3
                assert r.take(prev, 3, len(prev)) == len(prev) and r.ready
            refused_at = -1
            for i in range(len(hdr)):
                try:
                    r.take(hdr, i, i + 1)
                except MalformedPacket as e:
                    assert e.reason == RC_PACKET_TOO_LARGE
                    refused_at = i
                    break
                assert not r.ready
            assert refused_at >= 0, rl
            assert refused_at <= len(hdr) - 1  # at the last header byte at the latest
            assert r.buffered() <= 64
    # exactly at the limit is accepted
    r = Reader(limit)
    hdr = b"\x30" + rl_bytes(limit - 3)
    assert len(hdr) == 3
    for i in range(len(hdr)):
        r.take(hdr, i, i + 1)
    assert not r.ready


def test_packet_too_large_whole_packet():
    pkt = encode_publish(b"t", b"x" * 200)
    r = Reader(len(pkt) - 1)
    refused = False
    try:
        r.take(pkt, 0, len(pkt))
    except MalformedPacket as e:
        refused = e.reason == RC_PACKET_TOO_LARGE
    assert refused
    assert r.buffered() == 0
    refused = False
    try:
        decode_stream(pkt, len(pkt) - 1)
    except MalformedPacket as e:
        refused = e.reason == RC_PACKET_TOO_LARGE
    assert refused
    assert len(decode_stream(pkt, len(pkt))) == 1


# ---- in-place PUBLISH parsing and writing -------------------------------------------------------

def test_parse_publish_offsets_at_nonzero_offset():
    for qos, mid in ((0, 0), (1, 0x1234), (2, 0xFFFF)):
        topic = b"sensors/kitchen/temp"
        payload = b"21.5\x00\xff"
        pkt = encode_publish(topic, payload, qos=qos, mid=mid, retain=True)
        off = 37
        buf = bytearray(b"\xaa" * off) + bytearray(pkt) + bytearray(b"\xbb" * 20)
        r = Reader(1000)
        assert r.take(buf, off, len(buf)) == off + len(pkt)  # stops at the packet's end
        assert r.ready and r.buf is buf
        assert r.start == off + 2 and r.end == off + len(pkt)
        v = Publish()
        parse_publish(v, r.b0, r.buf, r.start, r.end)
        assert v.b0 == pkt[0] and v.qos == qos
        assert v.topic_start == off + 4
        assert v.topic_end == off + 4 + len(topic)
        assert bytes(buf[v.topic_start:v.topic_end]) == topic
        ps = v.topic_end + (2 if qos else 0)
        assert v.payload_start == ps
        assert v.payload_end == off + len(pkt)
        assert bytes(buf[v.payload_start:v.payload_end]) == payload
        assert v.mid == mid
        # the view is reused: a second, shorter PUBLISH overwrites every field
        pkt2 = encode_publish(b"x", b"", qos=0)
        parse_publish(v, pkt2[0], pkt2, 2, len(pkt2))
        assert (v.qos, v.mid, v.topic_start, v.topic_end, v.payload_start, v.payload_end) == (
            0, 0, 4, 5, 5, 5)


def test_parse_publish_with_long_header_offsets():
    payload = b"z" * 20000  # three remaining-length bytes
    pkt = encode_publish(b"t/1", payload, qos=1, mid=5)
    off = 11
    buf = bytearray(off) + bytearray(pkt)
    r = Reader(BIG)
    assert r.take(buf, off, len(buf)) == len(buf)
    assert r.start == off + 4
    v = Publish()
    parse_publish(v, r.b0, r.buf, r.start, r.end)
    assert v.topic_start == off + 6 and v.topic_end == off + 9
    assert v.mid == 5 and v.payload_start == off + 11 and v.payload_end == len(buf)


# The first byte of a PUBLISH for each QoS, RETAIN and DUP (3.3.1): 0x30 | DUP 0x08 | QoS << 1 |
# RETAIN 0x01.
PUBLISH_B0 = (
    (0, False, False, 0x30), (0, True, False, 0x31), (0, False, True, 0x38), (0, True, True, 0x39),
    (1, False, False, 0x32), (1, True, False, 0x33), (1, False, True, 0x3A), (1, True, True, 0x3B),
    (2, False, False, 0x34), (2, True, False, 0x35), (2, False, True, 0x3C), (2, True, True, 0x3D),
)


def check_put_publish(b0, mid, src, ts, te, ps, pe, want):
    """put_publish at an offset inside a guarded buffer writes exactly want, and publish_size
    agrees."""
    size = publish_size(b0, te - ts, pe - ps)
    assert size == len(want)
    out = bytearray(b"\xcc" * (size + 16))
    end = put_publish(out, 9, b0, mid, src, ts, te, ps, pe)
    assert end == 9 + size
    assert bytes(out[9:end]) == want
    assert out[:9] == bytearray(b"\xcc" * 9)
    assert out[end:] == bytearray(b"\xcc" * 7)


def test_put_publish_exact_bytes():
    topic = b"room/1/light"
    payload = b"\x00on\xff" * 10
    # Remaining Length 54 = 2 + 12 + 40 at QoS 0; 56 with the packet identifier 0x0A0B.
    head0 = b"\x36\x00\x0croom/1/light"
    head12 = b"\x38\x00\x0croom/1/light\x0a\x0b"
    # topic and payload placed inside an unrelated buffer, payload before topic
    src = bytearray(b"junk") + bytearray(payload) + bytearray(b"--") + bytearray(topic) + b"!"
    ps = 4
    pe = ps + len(payload)
    ts = pe + 2
    te = ts + len(topic)
    for qos, retain, dup, b0 in PUBLISH_B0:
        want = bytes((b0,)) + (head12 if qos else head0) + payload
        check_put_publish(b0, 0x0A0B, src, ts, te, ps, pe, want)
    # forwarding in place: parse an incoming QoS 2 PUBLISH, write it out at QoS 1 with a new id
    incoming = bytearray(b"\x00" * 5) + b"\x34\x38\x00\x0croom/1/light\x00\x63" + payload
    r = Reader(1000)
    r.take(incoming, 5, len(incoming))
    v = Publish()
    parse_publish(v, r.b0, r.buf, r.start, r.end)
    out = bytearray(200)
    end = put_publish(out, 0, 0x32, 7, r.buf, v.topic_start, v.topic_end, v.payload_start,
                      v.payload_end)
    assert bytes(out[:end]) == b"\x32\x38\x00\x0croom/1/light\x00\x07" + payload
    # and at QoS 0 (no packet id) with RETAIN and a long header: Remaining Length 314 = 2 + 12 + 300
    big = b"B" * 300
    src = bytearray(topic) + bytearray(big)
    out = bytearray(publish_size(0x31, len(topic), len(big)))
    end = put_publish(out, 0, 0x31, 0, src, 0, len(topic), len(topic), len(src))
    assert end == len(out)
    assert bytes(out) == b"\x31\xba\x02\x00\x0croom/1/light" + big


def test_put_publish_remaining_length_boundaries():
    # Table 2.4: the last Remaining Length of one and two bytes, and the first of two and three,
    # at QoS 0 and at QoS 1 (packet identifier 0x0102), topic "t".
    for rl, enc in ((127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                    (16384, b"\x80\x80\x01")):
        for b0, mid, pid in ((0x30, 0, b""), (0x32, 0x0102, b"\x01\x02")):
            payload = b"\x5a" * (rl - 3 - len(pid))
            src = bytearray(b"t") + bytearray(payload)
            want = bytes((b0,)) + enc + b"\x00\x01t" + pid + payload
            assert len(want) == 1 + len(enc) + rl
            check_put_publish(b0, mid, src, 0, 1, 1, len(src), want)


# ---- zero copy ----------------------------------------------------------------------------------

def test_zero_copy_whole_packets():
    r = Reader(1000)
    data = bytearray(encode_publish(b"a/b", b"hello", qos=1, mid=3) + encode_simple(PINGREQ)
                     + encode_ack(PUBACK, 3))
    pos = 0
    n = 0
    while pos < len(data):
        pos = r.take(data, pos, len(data))
        assert r.ready
        assert r.buf is data  # the caller's buffer, not a copy
        assert r.buffered() == 0  # no pending buffer was allocated
        n += 1
    assert n == 3
    # After a split packet has made the Reader allocate, whole packets are still not copied
    # and the pending buffer does not grow.
    pkt = encode_publish(b"t", b"p" * 40)
    r.take(pkt, 0, 10)
    assert not r.ready
    r.take(pkt, 10, len(pkt))
    assert r.ready and r.buf is not pkt
    held = r.buffered()
    assert 0 < held <= len(pkt)
    for i in range(5):
        buf = bytearray(encode_publish(b"t", b"q" * 100))
        assert r.take(buf, 0, len(buf)) == len(buf)
        assert r.ready and r.buf is buf
        assert r.start == 2 and r.end == len(buf)
        assert r.buffered() == held
