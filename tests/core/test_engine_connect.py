"""Engine: CONNECT and the session life cycle (MQTT 3.1.1 sections 3.1, 3.2, 3.12, 3.14, 4.4).

Driven through tests/core/harness.py: no sockets, a manual clock, bytes in and decoded packets out.
Most scenarios run twice, once with whole packets and once fed one byte at a time (split=1).
Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython.
"""
from broker.const import (
    CONNACK, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
)
from broker.keepalive import TICKS_MASK
from harness import Hub, drain
from packets import (
    encode_ack, encode_connect, encode_publish, encode_simple, encode_subscribe,
)

SPLITS = (0, 1)


# --- helpers ------------------------------------------------------------------------------------

def lstr(s):
    """A length-prefixed string field (str or bytes), as CONNECT carries them."""
    if isinstance(s, str):
        s = s.encode()
    return bytes((len(s) >> 8, len(s) & 0xFF)) + s


def frame(b0, body):
    """A fixed header (first byte, remaining length) in front of body."""
    out = bytearray()
    out.append(b0)
    n = len(body)
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            break
    return bytes(out) + body


def raw_connect(name=b"MQTT", level=4, flags=0x02, keepalive=60, payload=None):
    """A CONNECT built field by field, to make ones encode_connect cannot."""
    if payload is None:
        payload = lstr(b"raw")
    return frame(0x10, lstr(name) + bytes((level, flags, keepalive >> 8, keepalive & 0xFF))
                 + payload)


def kinds(packets):
    return [p.type for p in packets]


def connect_packets(c, client_id, split, **kw):
    """Send a CONNECT (whole or split) and return every packet the broker answered with."""
    c.send(encode_connect(client_id, **kw), split)
    return c.recv()


def accepted(c, client_id, split=0, **kw):
    """Connect and check CONNACK 0; return the CONNACK (later packets stay in c.backlog)."""
    got = connect_packets(c, client_id, split, **kw)
    assert got and got[0].type == CONNACK, kinds(got)
    assert got[0].return_code == 0, got[0].return_code
    assert not c.closed
    c.backlog = got[1:]
    return got[0]


def subscribe(c, mid, topics):
    """SUBSCRIBE and check the SUBACK; return its codes. Unlike Client.subscribe, packets that
    follow the SUBACK (retained messages) are kept for the next recv()."""
    c.send(encode_subscribe(mid, topics))
    got = c.recv()
    assert got and got[0].type == SUBACK and got[0].mid == mid, kinds(got)
    c.backlog = got[1:]
    return got[0].codes


def online(hub, client_id, subs=None, **kw):
    """A connected client, subscribed to subs [(filter, qos)] if given."""
    c = hub.client()
    accepted(c, client_id, 0, **kw)
    if subs:
        codes = subscribe(c, 1, subs)
        assert codes == [q for f, q in subs], codes
    return c


_mids = [0]


def publish(c, topic, payload, qos=0, retain=False):
    """Publish from c and complete the handshake with the broker."""
    mid = 0
    if qos:
        _mids[0] = _mids[0] % 60000 + 1
        mid = _mids[0]
    c.send(encode_publish(topic, payload, qos, retain, False, mid))
    if qos == 1:
        got = c.recv()
        assert kinds(got) == [PUBACK] and got[0].mid == mid, kinds(got)
    elif qos == 2:
        got = c.recv()
        assert kinds(got) == [PUBREC] and got[0].mid == mid, kinds(got)
        c.send(encode_ack(PUBREL, mid))
        got = c.recv()
        assert kinds(got) == [PUBCOMP] and got[0].mid == mid, kinds(got)


def ack_all(c, packets):
    """Acknowledge every QoS 1/2 PUBLISH in packets as a well-behaved client does."""
    for p in packets:
        if p.type == PUBLISH and p.qos == 1:
            c.send(encode_ack(PUBACK, p.mid))
        elif p.type == PUBLISH and p.qos == 2:
            c.send(encode_ack(PUBREC, p.mid))
            got = c.recv()
            assert kinds(got) == [PUBREL] and got[0].mid == p.mid, kinds(got)
            c.send(encode_ack(PUBCOMP, p.mid))
    assert c.recv() == []


def ping_ok(c):
    """c is connected and served: PINGREQ gets PINGRESP."""
    assert not c.closed
    c.send(encode_simple(PINGREQ))
    got = c.recv()
    assert kinds(got) == [PINGRESP], kinds(got)


def closed_silently(data, why, config=""):
    """data as the first bytes of a connection: closed, nothing sent (no CONNACK). Both splits."""
    for split in SPLITS:
        hub = Hub(config)
        c = hub.client()
        c.send(data, split)
        got = c.recv()
        assert got == [], (why, split, kinds(got))
        assert c.closed, (why, split)
        # Nothing was registered: the client id the callers' CONNECT packets carry connects
        # afterwards without a takeover, and is the only session.
        d = hub.client()
        assert accepted(d, "c", clean_session=False).session_present is False
        assert list(hub.broker.sessions) == ["c"], (why, split)
        assert "already connected" not in hub.log_text(), why


def refused_with(data, code, why, config=""):
    """data as the first bytes of a connection: one CONNACK with code and session present 0,
    then closed [MQTT-3.2.2-4] [MQTT-3.2.2-5]. Both splits."""
    for split in SPLITS:
        hub = Hub(config)
        c = hub.client()
        c.send(data, split)
        got = c.recv()
        assert kinds(got) == [CONNACK], (why, split, kinds(got))
        assert got[0].return_code == code, (why, split, got[0].return_code)
        assert got[0].session_present is False, (why, split)
        assert c.closed, (why, split)


def generated_ids(hub):
    """The client ids that 'New client connected ... as ID (' log lines name."""
    ids = []
    for line in hub.lines:
        if "New client connected" in line:
            i = line.find(" as ") + 4
            ids.append(line[i:line.find(" (", i)])
    return ids


# --- the first packet [MQTT-3.1.0-1] [MQTT-3.1.0-2] ------------------------------------------

def test_first_packet_must_be_connect_MQTT_3_1_0_1():
    others = (
        encode_publish(b"t", b"x"),
        encode_publish(b"t", b"x", 1, False, False, 1),
        encode_subscribe(1, [(b"t", 0)]),
        encode_simple(PINGREQ),
        encode_simple(DISCONNECT),
        encode_ack(PUBACK, 1),
        encode_ack(PUBREL, 1),
        b"\x20\x02\x00\x00",  # CONNACK: a server's packet
        b"\x00\x00",          # reserved packet type 0
        b"\xf0\x00",          # reserved packet type 15
    )
    for data in others:
        closed_silently(data, data)


def test_publish_before_connect_is_not_routed_MQTT_3_1_0_1():
    for split in SPLITS:
        hub = Hub()
        w = online(hub, "w", [(b"#", 0)])
        c = hub.client()
        c.send(encode_publish(b"t", b"early", 0, True) + encode_connect("late"), split)
        assert c.recv() == []
        assert c.closed
        assert "before CONNECT" in hub.log_text()
        assert w.recv() == []
        # nor retained
        v = online(hub, "v")
        assert subscribe(v, 1, [(b"t", 0)]) == [0]
        assert v.recv() == []


def test_second_connect_closes_MQTT_3_1_0_2():
    for split in SPLITS:
        hub = Hub()
        w = online(hub, "w", [(b"will", 0)])
        c = hub.client()
        accepted(c, "twice", split, will_topic=b"will", will_payload=b"gone")
        c.send(encode_connect("twice"), split)
        assert c.recv() == []  # no second CONNACK
        assert c.closed
        assert "second CONNECT" in hub.log_text()
        # A protocol violation is not a DISCONNECT: the will goes out (section 3.1.2.5).
        got = w.recv()
        assert kinds(got) == [PUBLISH] and got[0].payload == b"gone", kinds(got)


# --- protocol name and level [MQTT-3.1.2-1] [MQTT-3.1.2-2] -----------------------------------

def test_mqtt_311_and_mqisdp_31_accepted():
    for split in SPLITS:
        hub = Hub()
        a = hub.client()
        ack = accepted(a, "v311", split)
        assert ack.session_present is False
        b = hub.client()
        accepted(b, "v31", split, protocol_level=3)
        ping_ok(a)
        ping_ok(b)
        # both are routed to
        subscribe(a, 1, [(b"x", 0)])
        publish(b, b"x", b"from 3.1")
        got = a.recv()
        assert kinds(got) == [PUBLISH] and got[0].payload == b"from 3.1"


def test_username_and_password_accepted_when_anonymous_allowed_MQTT_3_1_2_19_21():
    for split in SPLITS:
        hub = Hub()
        accepted(hub.client(), "u", split, username="user")
        accepted(hub.client(), "up", split, username="user", password=b"\x00\xffbinary")
        accepted(hub.client(), "e", split, username="", password=b"")


def test_raw_mqtt_level_4_accepted():
    for split in SPLITS:
        hub = Hub()
        c = hub.client()
        c.send(raw_connect(b"MQTT", 4, 0x02, 30, lstr("raw4")), split)
        got = c.recv()
        assert kinds(got) == [CONNACK] and got[0].return_code == 0
        assert not c.closed


def test_unsupported_level_or_name_gets_connack_1_MQTT_3_1_2_2():
    cases = (
        (raw_connect(b"MQTT", 6), "MQTT level 6"),
        # a level no specification has yet, laid out as MQTT 5 lays out its CONNECT
        (frame(0x10, lstr(b"MQTT") + bytes((6, 0x02, 0, 60, 0)) + lstr(b"v6")), "as v5, level 6"),
        (raw_connect(b"MQTT", 3), "MQTT level 3"),
        (raw_connect(b"MQIsdp", 4), "MQIsdp level 4"),
        (raw_connect(b"MQTT", 0), "level 0"),
        (raw_connect(b"MQTT", 255), "level 255"),
        (raw_connect(b"MQTX", 4), "unknown name"),
        (raw_connect(b"mqtt", 4), "lower-case name"),
    )
    for data, why in cases:
        refused_with(data, 1, why)


def test_refused_connect_stops_processing_MQTT_3_1_4_5():
    # Bytes after a refused CONNECT are not processed: the retained PUBLISH is not kept.
    for split in SPLITS:
        hub = Hub()
        c = hub.client()
        c.send(raw_connect(b"MQTT", 6) + encode_publish(b"r", b"kept?", 0, True), split)
        got = c.recv()
        assert kinds(got) == [CONNACK] and got[0].return_code == 1
        assert c.closed
        c2 = hub.client()
        c2.send(encode_connect("", clean_session=False)
                + encode_publish(b"r", b"kept?", 0, True), split)
        got = c2.recv()
        assert kinds(got) == [CONNACK] and got[0].return_code == 2
        v = online(hub, "v")
        subscribe(v, 1, [(b"r", 0)])
        assert v.recv() == []


# --- malformed CONNECT: closed without CONNACK [MQTT-3.1.4-1] --------------------------------

def test_reserved_connect_flag_closes_MQTT_3_1_2_3():
    closed_silently(encode_connect("c", flags=0x03), "reserved flag")
    closed_silently(encode_connect("c", flags=0x01), "reserved flag, clean 0")


def test_will_qos_or_retain_without_will_flag_closes_MQTT_3_1_2_11_13_15():
    closed_silently(encode_connect("c", flags=0x02 | 0x08), "will QoS 1 without will flag")
    closed_silently(encode_connect("c", flags=0x02 | 0x10), "will QoS 2 without will flag")
    closed_silently(encode_connect("c", flags=0x02 | 0x20), "will retain without will flag")


def test_will_qos_3_closes_MQTT_3_1_2_14():
    data = encode_connect("c", will_topic=b"w", will_payload=b"x", flags=0x02 | 0x04 | 0x18)
    closed_silently(data, "will QoS 3")


def test_password_without_username_closes_MQTT_3_1_2_22():
    closed_silently(encode_connect("c", password=b"secret", flags=0x02 | 0x40),
                    "password flag without username flag")


def test_truncated_connect_closes():
    cases = (
        (frame(0x10, lstr(b"MQTT") + bytes((4, 2))), "variable header cut short"),
        (raw_connect(payload=b""), "no client id"),
        (raw_connect(payload=b"\x00"), "half a client id length"),
        (raw_connect(payload=b"\x00\x0aclient"), "client id shorter than its length"),
        (raw_connect(flags=0x06, payload=lstr("c")), "will flag without will topic"),
        (raw_connect(flags=0x06, payload=lstr("c") + lstr("w")), "will topic without message"),
        (raw_connect(flags=0x82, payload=lstr("c")), "username flag without username"),
        (raw_connect(flags=0xC2, payload=lstr("c") + lstr("u")), "password flag, no password"),
    )
    for data, why in cases:
        closed_silently(data, why)


def test_extra_bytes_after_connect_payload_close():
    cases = (
        (raw_connect(payload=lstr("c") + b"\x00"), "one stray byte"),
        (raw_connect(payload=lstr("c") + lstr("u")), "username without username flag"),
        (raw_connect(flags=0x82, payload=lstr("c") + lstr("u") + lstr("p")),
         "password without password flag"),
        (raw_connect(payload=lstr("c") + lstr("w") + lstr("m")), "will fields without will flag"),
    )
    for data, why in cases:
        closed_silently(data, why)


def test_invalid_utf8_client_id_closes_MQTT_1_5_3_1():
    for cid in (b"\xff", b"a\xfeb", b"\xc0\xaf", b"\xed\xa0\x80", b"ab\xe2\x82", b"\x80"):
        closed_silently(encode_connect(cid), cid)


def test_nul_in_client_id_closes_MQTT_1_5_3_2():
    closed_silently(encode_connect(b"a\x00b"), "U+0000 in client id")
    closed_silently(encode_connect(b"\x00"), "client id U+0000 alone")


def test_invalid_utf8_username_closes_MQTT_3_1_3_11():
    closed_silently(encode_connect("c", username=b"\xff\xfe"), "username not UTF-8")
    closed_silently(encode_connect("c", username=b"u\x00"), "U+0000 in username")


def test_invalid_will_topic_closes_MQTT_3_1_3_10_MQTT_4_7_1_1():
    for topic in (b"a/+", b"+", b"#", b"a/#", b"", b"\xff", b"w\x00"):
        closed_silently(encode_connect("c", will_topic=topic, will_payload=b"x"), topic)


def test_will_topic_past_200_slashes_closes_as_in_mosquitto():
    # mosquitto 2.0's limit (TOPIC_HIERARCHY_LIMIT): more than 200 '/' in a topic name
    topic = b"/" * 201
    closed_silently(encode_connect("c", will_topic=topic, will_payload=b"x"), topic)

# --- client identifier [MQTT-3.1.3-5..9] -------------------------------------------------------

def test_empty_client_id_clean_1_gets_a_unique_id_MQTT_3_1_3_6():
    for split in SPLITS:
        hub = Hub()
        a = hub.client()
        b = hub.client()
        assert accepted(a, "", split).session_present is False
        assert accepted(b, "", split).session_present is False
        ids = generated_ids(hub)
        assert len(ids) == 2, hub.log_text()
        assert ids[0] and ids[1] and ids[0] != ids[1], ids
        assert "already connected" not in hub.log_text()
        # Both stay connected and are distinct clients.
        ping_ok(a)
        ping_ok(b)
        subscribe(a, 1, [(b"to/a", 0)])
        subscribe(b, 1, [(b"to/b", 0)])
        publish(b, b"to/a", b"for a")
        got = a.recv()
        assert kinds(got) == [PUBLISH] and got[0].payload == b"for a"
        assert b.recv() == []


def test_empty_client_id_clean_0_rejected_MQTT_3_1_3_8():
    refused_with(encode_connect("", clean_session=False), 2, "empty id, clean 0")


def test_mqtt_31_client_id_longer_than_23_rejected():
    refused_with(encode_connect("x" * 24, protocol_level=3), 2, "3.1 id of 24")
    refused_with(encode_connect("", protocol_level=3), 2, "3.1 empty id")
    for split in SPLITS:
        hub = Hub()
        accepted(hub.client(), "y" * 23, split, protocol_level=3)


def test_long_client_ids_accepted_on_311_MQTT_3_1_3_5():
    for split in SPLITS:
        hub = Hub()
        long_id = "L" * 100
        c = hub.client()
        assert accepted(c, long_id, split, clean_session=False).session_present is False
        subscribe(c, 1, [(b"t", 1)])
        c.send(encode_simple(DISCONNECT))
        # the whole id names the session: reconnecting with it resumes
        c = hub.client()
        assert accepted(c, long_id, split, clean_session=False).session_present is True
        # and a different id of the same prefix does not
        d = hub.client()
        assert accepted(d, "L" * 99, split, clean_session=False).session_present is False
        # the characters the spec says a server must allow, and a non-ASCII id
        accepted(hub.client(), "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                 split)
        accepted(hub.client(), "caf\u00e9-\u5ba2\u6237", split)


# --- CONNACK session present [MQTT-3.2.2-1..4] --------------------------------------------------

def test_session_present_0_with_clean_session_1_MQTT_3_2_2_1():
    for split in SPLITS:
        hub = Hub()
        c = hub.client()
        accepted(c, "p", split, clean_session=False)
        c.send(encode_simple(DISCONNECT))
        # a stored session exists, but clean session 1 answers 0
        c = hub.client()
        assert accepted(c, "p", split, clean_session=True).session_present is False


def test_session_present_1_when_resuming_MQTT_3_2_2_2():
    for split in SPLITS:
        hub = Hub()
        c = hub.client()
        accepted(c, "p", split, clean_session=False)
        c.send(encode_simple(DISCONNECT), split)
        assert c.closed
        c = hub.client()
        assert accepted(c, "p", split, clean_session=False).session_present is True
        c.lose()
        c = hub.client()
        assert accepted(c, "p", split, clean_session=False).session_present is True


def test_session_present_0_without_stored_session_MQTT_3_2_2_3():
    for split in SPLITS:
        hub = Hub()
        assert accepted(hub.client(), "fresh", split, clean_session=False).session_present is False
        # a clean-session connection leaves nothing behind to resume
        c = hub.client()
        accepted(c, "gone", split, clean_session=True)
        c.send(encode_simple(DISCONNECT))
        assert accepted(hub.client(), "gone", split, clean_session=False).session_present is False


def test_session_present_0_on_refusal_MQTT_3_2_2_4():
    hub = Hub("max_keepalive 60\nmax_connections 2\n")
    c = hub.client()
    accepted(c, "p", clean_session=False)
    c.send(encode_simple(DISCONNECT))
    # refused because of keepalive, although a session for "p" is stored
    c = hub.client()
    got = connect_packets(c, "p", 0, clean_session=False, keepalive=61)
    assert kinds(got) == [CONNACK] and got[0].return_code == 2
    assert got[0].session_present is False
    assert c.closed
    # refused because the server is full
    x = online(hub, "x")
    y = online(hub, "y")
    c = hub.client()
    got = connect_packets(c, "p", 0, clean_session=False)
    assert kinds(got) == [CONNACK] and got[0].return_code == 3
    assert got[0].session_present is False
    # refused because anonymous clients are not allowed
    x.send(encode_simple(DISCONNECT))
    hub.broker.config.allow_anonymous = False
    c = hub.client()
    got = connect_packets(c, "p", 0, clean_session=False)
    assert kinds(got) == [CONNACK] and got[0].return_code == 5
    assert got[0].session_present is False
    # the stored session survived every refusal
    hub.broker.config.allow_anonymous = True
    assert accepted(hub.client(), "p", clean_session=False).session_present is True
    ping_ok(y)


def test_mqtt_31_connack_first_byte_is_reserved():
    # MQTT 3.1 has no Session Present flag: the first CONNACK byte is "reserved, not used"
    # (mosquitto sets bit 0 only for 3.1.1 and later). A 3.1 client resuming a session must
    # still see 0 there.
    for split in SPLITS:
        hub = Hub()
        c = hub.client()
        accepted(c, "old", split, protocol_level=3, clean_session=False)
        c.send(encode_simple(DISCONNECT))
        c = hub.client()
        c.send(encode_connect("old", protocol_level=3, clean_session=False), split)
        raw = drain(c.conn)
        assert raw[:2] == b"\x20\x02", raw
        assert raw[2] == 0, "MQTT 3.1 CONNACK byte 1 must be 0, got %d" % raw[2]
        assert raw[3] == 0, raw


# --- clean session [MQTT-3.1.2-4..6] -----------------------------------------------------------

def test_clean_session_1_discards_previous_session_MQTT_3_1_2_6():
    for split in SPLITS:
        hub = Hub()
        p = hub.client()
        pub = online(hub, "pub")
        accepted(p, "p", split, clean_session=False)
        subscribe(p, 1, [(b"t", 1)])
        p.send(encode_simple(DISCONNECT))
        publish(pub, b"t", b"while away", 1)
        p = hub.client()
        assert accepted(p, "p", split, clean_session=True).session_present is False
        assert p.recv() == []  # the queued message went with the old session
        publish(pub, b"t", b"after", 1)
        assert p.recv() == []  # and so did the subscription
        p.send(encode_simple(DISCONNECT))
        # the clean session is not kept either
        p = hub.client()
        assert accepted(p, "p", split, clean_session=False).session_present is False
        publish(pub, b"t", b"later", 1)
        assert p.recv() == []


def test_clean_session_1_session_ends_with_connection_MQTT_3_1_2_6():
    hub = Hub()
    pub = online(hub, "pub")
    c = online(hub, "c", [(b"t", 1)], clean_session=True)
    c.lose()
    publish(pub, b"t", b"nobody", 1)
    c = hub.client()
    assert accepted(c, "c", clean_session=False).session_present is False
    assert c.recv() == []


def test_clean_session_0_keeps_subscriptions_MQTT_3_1_2_4():
    for split in SPLITS:
        hub = Hub()
        pub = online(hub, "pub")
        c = hub.client()
        accepted(c, "keep", split, clean_session=False)
        subscribe(c, 1, [(b"a/+", 0), (b"b/#", 1)])
        for i in range(3):
            if i == 1:
                c.lose()
            else:
                c.send(encode_simple(DISCONNECT))
            c = hub.client()
            assert accepted(c, "keep", split, clean_session=False).session_present is True
            publish(pub, b"a/x", b"q0", 0)
            publish(pub, b"b/y/z", b"q1", 1)
            got = c.recv()
            assert kinds(got) == [PUBLISH, PUBLISH], kinds(got)
            assert got[0].topic == b"a/x" and got[0].qos == 0
            assert got[1].topic == b"b/y/z" and got[1].qos == 1
            ack_all(c, got)


def test_qos1_qos2_stored_while_away_delivered_in_order_MQTT_3_1_2_5():
    for split in SPLITS:
        hub = Hub()
        pub = online(hub, "pub")
        c = online(hub, "s", [(b"t/#", 2)], clean_session=False)
        c.lose()
        publish(pub, b"t/1", b"a", 1)
        publish(pub, b"t/2", b"b", 2)
        publish(pub, b"t/3", b"zero", 0)  # QoS 0 is not stored by default
        publish(pub, b"t/4", b"c", 1)
        publish(pub, b"t/5", b"d", 2)
        publish(pub, b"other", b"no", 1)
        c = hub.client()
        assert accepted(c, "s", split, clean_session=False).session_present is True
        got = c.recv()
        assert kinds(got) == [PUBLISH] * 4, kinds(got)
        assert [p.payload for p in got] == [b"a", b"b", b"c", b"d"]
        assert [p.topic for p in got] == [b"t/1", b"t/2", b"t/4", b"t/5"]
        assert [p.qos for p in got] == [1, 2, 1, 2]
        assert [p.dup for p in got] == [False] * 4  # first transmissions
        assert [p.retain for p in got] == [False] * 4
        mids = [p.mid for p in got]
        assert 0 not in mids and len(set(mids)) == 4, mids
        ack_all(c, got)
        # all acknowledged: nothing is sent again on the next resume
        c.send(encode_simple(DISCONNECT))
        c = hub.client()
        assert accepted(c, "s", split, clean_session=False).session_present is True
        assert c.recv() == []


def test_qos0_not_stored_while_away_by_default():
    hub = Hub()
    pub = online(hub, "pub")
    c = online(hub, "s", [(b"t", 2)], clean_session=False)
    c.send(encode_simple(DISCONNECT))
    publish(pub, b"t", b"q0", 0)
    c = hub.client()
    assert accepted(c, "s", clean_session=False).session_present is True
    assert c.recv() == []


def test_qos0_stored_while_away_with_queue_qos0_messages():
    for split in SPLITS:
        hub = Hub("queue_qos0_messages true\n")
        pub = online(hub, "pub")
        c = online(hub, "s", [(b"t", 2)], clean_session=False)
        c.send(encode_simple(DISCONNECT))
        publish(pub, b"t", b"first", 0)
        publish(pub, b"t", b"second", 1)
        publish(pub, b"t", b"third", 0)
        c = hub.client()
        assert accepted(c, "s", split, clean_session=False).session_present is True
        got = c.recv()
        assert [p.payload for p in got] == [b"first", b"second", b"third"], kinds(got)
        assert [p.qos for p in got] == [0, 1, 0]
        ack_all(c, got)


def test_max_queued_messages_drops_the_rest():
    for split in SPLITS:
        hub = Hub("max_queued_messages 3\n")
        pub = online(hub, "pub")
        c = online(hub, "s", [(b"t", 1)], clean_session=False)
        c.lose()
        for i in range(6):
            publish(pub, b"t", ("m%d" % i).encode(), 1)
        assert "Outgoing messages are being dropped for client s" in hub.log_text()
        c = hub.client()
        assert accepted(c, "s", split, clean_session=False).session_present is True
        got = c.recv()
        assert [p.payload for p in got] == [b"m0", b"m1", b"m2"], [p.payload for p in got]
        ack_all(c, got)
        # the queue works again once drained
        c.lose()
        publish(pub, b"t", b"again", 1)
        c = hub.client()
        accepted(c, "s", split, clean_session=False)
        got = c.recv()
        assert [p.payload for p in got] == [b"again"]


# --- redelivery on resume [MQTT-4.4.0-1] [MQTT-4.6.0-1] -----------------------------------------

def test_unacked_qos1_redelivered_with_dup_same_id_MQTT_4_4_0_1():
    for split in SPLITS:
        hub = Hub()
        pub = online(hub, "pub")
        c = online(hub, "s", [(b"t", 1)], clean_session=False)
        publish(pub, b"t", b"hello", 1)
        got = c.recv()
        assert kinds(got) == [PUBLISH] and got[0].qos == 1 and not got[0].dup
        mid = got[0].mid
        c.lose()  # no PUBACK
        c = hub.client()
        assert accepted(c, "s", split, clean_session=False).session_present is True
        got = c.recv()
        assert kinds(got) == [PUBLISH], kinds(got)
        assert got[0].dup is True  # [MQTT-3.3.1-1]
        assert got[0].mid == mid
        assert got[0].qos == 1 and got[0].topic == b"t" and got[0].payload == b"hello"
        c.send(encode_ack(PUBACK, mid))
        assert c.recv() == []
        c.send(encode_simple(DISCONNECT))
        c = hub.client()
        accepted(c, "s", split, clean_session=False)
        assert c.recv() == []


def test_unacked_qos2_publish_redelivered_MQTT_4_4_0_1():
    for split in SPLITS:
        hub = Hub()
        pub = online(hub, "pub")
        c = online(hub, "s", [(b"t", 2)], clean_session=False)
        publish(pub, b"t", b"two", 2)
        got = c.recv()
        assert kinds(got) == [PUBLISH] and got[0].qos == 2
        mid = got[0].mid
        c.lose()  # no PUBREC
        c = hub.client()
        accepted(c, "s", split, clean_session=False)
        got = c.recv()
        assert kinds(got) == [PUBLISH] and got[0].dup and got[0].mid == mid and got[0].qos == 2
        ack_all(c, got)


def test_qos2_after_pubrec_resends_pubrel_not_publish_MQTT_4_4_0_1():
    for split in SPLITS:
        hub = Hub()
        pub = online(hub, "pub")
        c = online(hub, "s", [(b"t", 2)], clean_session=False)
        publish(pub, b"t", b"two", 2)
        got = c.recv()
        mid = got[0].mid
        c.send(encode_ack(PUBREC, mid))
        got = c.recv()
        assert kinds(got) == [PUBREL] and got[0].mid == mid
        c.lose()  # no PUBCOMP
        c = hub.client()
        assert accepted(c, "s", split, clean_session=False).session_present is True
        got = c.recv()
        assert kinds(got) == [PUBREL], kinds(got)  # [MQTT-4.3.3-1]: never the PUBLISH again
        assert got[0].mid == mid and got[0].flags == 2
        c.send(encode_ack(PUBCOMP, mid))
        assert c.recv() == []
        c.lose()
        c = hub.client()
        accepted(c, "s", split, clean_session=False)
        assert c.recv() == []


def test_resume_order_inflight_then_queued_MQTT_4_6_0_1():
    hub = Hub()
    pub = online(hub, "pub")
    c = online(hub, "s", [(b"t", 2)], clean_session=False)
    publish(pub, b"t", b"m1", 1)
    publish(pub, b"t", b"m2", 2)
    publish(pub, b"t", b"m3", 1)
    first = c.recv()
    assert [p.payload for p in first] == [b"m1", b"m2", b"m3"]
    c.send(encode_ack(PUBACK, first[2].mid))  # m3 acknowledged, m1 and m2 not
    c.lose()
    publish(pub, b"t", b"m4", 1)
    c = hub.client()
    accepted(c, "s", clean_session=False)
    got = c.recv()
    assert [p.payload for p in got] == [b"m1", b"m2", b"m4"], [p.payload for p in got]
    assert [p.dup for p in got] == [True, True, False]
    assert got[0].mid == first[0].mid and got[1].mid == first[1].mid
    assert got[2].mid not in (got[0].mid, got[1].mid)
    ack_all(c, got)


# --- session takeover [MQTT-3.1.4-2] -------------------------------------------------------------

def test_takeover_closes_first_connection_MQTT_3_1_4_2():
    for split in SPLITS:
        hub = Hub()
        w = online(hub, "w", [(b"will/#", 0)])
        pub = online(hub, "pub")
        a = hub.client()
        accepted(a, "dev", split, clean_session=False, will_topic=b"will/dev",
                 will_payload=b"a died")
        subscribe(a, 1, [(b"cmd", 1)])
        b = hub.client()
        ack = accepted(b, "dev", split, clean_session=False)
        assert a.closed
        assert not b.closed
        assert ack.session_present is True
        assert "Client dev already connected, closing old connection." in hub.log_text()
        # a persistent session continued by a persistent connection: the same client came
        # back, so its will does not go out (mosquitto 2.0)
        assert w.recv() == []
        # the subscription moved to the new connection
        publish(pub, b"cmd", b"go", 1)
        assert a.recv() == []
        got = b.recv()
        assert kinds(got) == [PUBLISH] and got[0].payload == b"go"
        ack_all(b, got)
        ping_ok(b)


def test_takeover_publishes_the_will_when_either_connection_has_clean_session_1():
    # [MQTT-3.1.4-2] the old connection is closed; its session ends with it when either side
    # asked for a clean session, and then its will goes out, as mosquitto 2.0 does.
    for old_clean, new_clean in ((True, False), (False, True), (True, True)):
        hub = Hub()
        w = online(hub, "w", [(b"will/#", 0)])
        a = hub.client()
        accepted(a, "dev", clean_session=old_clean, will_topic=b"will/dev",
                 will_payload=b"a died")
        b = hub.client()
        accepted(b, "dev", clean_session=new_clean)
        assert a.closed and not b.closed
        got = w.recv()
        assert kinds(got) == [PUBLISH], (old_clean, new_clean, got)
        assert got[0].topic == b"will/dev" and got[0].payload == b"a died"


def test_takeover_with_clean_session_1_starts_fresh():
    hub = Hub()
    pub = online(hub, "pub")
    a = online(hub, "dev", [(b"cmd", 1)], clean_session=False)
    b = hub.client()
    assert accepted(b, "dev", clean_session=True).session_present is False
    assert a.closed
    publish(pub, b"cmd", b"go", 1)
    assert b.recv() == []


def test_takeover_moves_inflight_messages_MQTT_4_4_0_1():
    hub = Hub()
    pub = online(hub, "pub")
    a = online(hub, "dev", [(b"t", 1)], clean_session=False)
    publish(pub, b"t", b"x", 1)
    got = a.recv()
    mid = got[0].mid
    b = hub.client()
    accepted(b, "dev", clean_session=False)
    got = b.recv()
    assert kinds(got) == [PUBLISH] and got[0].dup and got[0].mid == mid and got[0].payload == b"x"
    ack_all(b, got)


def test_takeover_without_will_publishes_nothing_MQTT_3_1_2_12():
    hub = Hub()
    w = online(hub, "w", [(b"#", 0)])
    online(hub, "dev")
    b = hub.client()
    accepted(b, "dev")
    assert w.recv() == []


# --- will message [MQTT-3.1.2-8..17] ------------------------------------------------------------

def willing(hub, cid="dying", split=0, **kw):
    c = hub.client()
    if "will_topic" not in kw:
        kw["will_topic"] = b"will/" + cid.encode()
    if "will_payload" not in kw:
        kw["will_payload"] = b"bye"
    accepted(c, cid, split, **kw)
    return c


def test_will_published_on_socket_loss_MQTT_3_1_2_8():
    for split in SPLITS:
        hub = Hub()
        w = online(hub, "w", [(b"will/#", 0)])
        c = willing(hub, "dying", split)
        assert w.recv() == []
        c.lose()
        assert c.closed
        got = w.recv()
        assert kinds(got) == [PUBLISH], kinds(got)
        assert got[0].topic == b"will/dying" and got[0].payload == b"bye"
        assert got[0].retain is False  # [MQTT-3.1.2-16]
        # published once only [MQTT-3.1.2-10]
        c.lose()
        assert w.recv() == []
        assert "Client dying closed its connection." in hub.log_text()


def test_will_published_on_protocol_error():
    garbage = (
        b"\x00\x00",                       # reserved packet type
        b"\x36\x04\x00\x01t\x00",          # PUBLISH with QoS 3
        b"\x82\x04\x00\x01\x00\x00",       # SUBSCRIBE: empty filter, no QoS byte
        b"\x30\x04\x00\x02a#",             # wildcard in a PUBLISH topic
        b"\xc0\x01\x00",                   # PINGREQ with a body
        b"\x40\x03\x00\x01\x00",           # PUBACK of length 3
    )
    for data in garbage:
        for split in SPLITS:
            hub = Hub()
            w = online(hub, "w", [(b"will/#", 0)])
            c = willing(hub, "bad", split)
            c.send(data, split)
            assert c.recv() == [], data
            assert c.closed, data
            got = w.recv()
            assert kinds(got) == [PUBLISH] and got[0].payload == b"bye", data
            assert "sent a malformed or invalid packet" in hub.log_text()


def test_will_published_on_keepalive_expiry_MQTT_3_1_2_24():
    hub = Hub()
    w = online(hub, "w", [(b"will/#", 0)], keepalive=0)
    c = willing(hub, "sleepy", keepalive=10)
    hub.advance(16000)
    assert c.closed
    got = w.recv()
    assert kinds(got) == [PUBLISH] and got[0].topic == b"will/sleepy"


def test_no_will_after_disconnect_MQTT_3_1_2_10_MQTT_3_14_4_3():
    for split in SPLITS:
        hub = Hub()
        w = online(hub, "w", [(b"will/#", 0)], keepalive=0)
        c = willing(hub, "polite", split, will_retain=True, will_qos=1)
        c.send(encode_simple(DISCONNECT), split)
        assert c.closed
        assert c.recv() == []
        assert "Client polite disconnected." in hub.log_text()
        c.lose()  # the socket closing afterwards changes nothing
        hub.advance(100000)
        assert w.recv() == []
        v = online(hub, "v")
        subscribe(v, 1, [(b"will/#", 1)])
        assert v.recv() == []  # not retained either


def test_bytes_after_disconnect_are_ignored():
    for split in SPLITS:
        hub = Hub()
        c = online(hub, "c")
        c.send(encode_simple(DISCONNECT) + encode_publish(b"r", b"late", 0, True), split)
        assert c.closed
        v = online(hub, "v")
        subscribe(v, 1, [(b"r", 0)])
        assert v.recv() == []


def test_no_will_without_will_flag_MQTT_3_1_2_12():
    hub = Hub()
    w = online(hub, "w", [(b"#", 0)])
    c = online(hub, "quiet")
    c.lose()
    c = online(hub, "quiet2", keepalive=10)
    hub.advance(20000)
    assert c.closed
    assert w.recv() == []


def test_will_retain_becomes_retained_message_MQTT_3_1_2_17():
    for split in SPLITS:
        hub = Hub()
        w = online(hub, "w", [(b"will/#", 0)])
        c = willing(hub, "ret", split, will_retain=True, will_payload=b"offline")
        c.lose()
        got = w.recv()
        # to an existing subscription RETAIN is 0 [MQTT-3.3.1-9]
        assert kinds(got) == [PUBLISH] and got[0].retain is False
        v = online(hub, "v")
        assert subscribe(v, 1, [(b"will/ret", 0)]) == [0]
        got = v.recv()
        assert kinds(got) == [PUBLISH], kinds(got)
        assert got[0].retain is True and got[0].payload == b"offline"


def test_will_not_retained_without_will_retain_MQTT_3_1_2_16():
    hub = Hub()
    c = willing(hub, "nr")
    c.lose()
    v = online(hub, "v")
    subscribe(v, 1, [(b"will/#", 0)])
    assert v.recv() == []


def test_retained_will_with_empty_payload_clears_retained_MQTT_3_3_1_10():
    hub = Hub()
    pub = online(hub, "pub")
    publish(pub, b"status/dev", b"online", 1, True)
    w = online(hub, "w", [(b"status/#", 0)])
    got = w.recv()
    assert kinds(got) == [PUBLISH] and got[0].retain and got[0].payload == b"online"
    c = willing(hub, "dev", will_topic=b"status/dev", will_payload=b"", will_retain=True)
    c.lose()
    got = w.recv()
    assert kinds(got) == [PUBLISH] and got[0].payload == b"" and got[0].topic == b"status/dev"
    v = online(hub, "v")
    subscribe(v, 1, [(b"status/#", 0)])
    assert v.recv() == []  # [MQTT-3.3.1-11]


def test_will_qos_is_min_of_will_and_granted_MQTT_3_8_4_6():
    for will_qos in (0, 1, 2):
        hub = Hub()
        subs = []
        for q in (0, 1, 2):
            subs.append(online(hub, "s%d" % q, [(b"will/#", q)]))
        c = willing(hub, "q", will_qos=will_qos)
        c.lose()
        for q in (0, 1, 2):
            got = subs[q].recv()
            assert kinds(got) == [PUBLISH], (will_qos, q, kinds(got))
            assert got[0].qos == min(will_qos, q), (will_qos, q, got[0].qos)
            if got[0].qos:
                assert got[0].mid != 0
            ack_all(subs[q], got)


def test_will_qos1_queued_for_offline_subscriber_MQTT_3_1_2_5():
    hub = Hub()
    s = online(hub, "s", [(b"will/#", 1)], clean_session=False)
    s.lose()
    c = willing(hub, "q", will_qos=1)
    c.lose()
    s = hub.client()
    accepted(s, "s", clean_session=False)
    got = s.recv()
    assert kinds(got) == [PUBLISH] and got[0].payload == b"bye" and got[0].qos == 1


# --- keepalive [MQTT-3.1.2-24] [MQTT-3.12.4-1] -----------------------------------------------------

def test_keepalive_closes_after_one_and_a_half_times_MQTT_3_1_2_24():
    for split in SPLITS:
        hub = Hub()
        c = hub.client()
        accepted(c, "k", split, keepalive=10)
        hub.advance(14900)
        assert not c.closed
        hub.advance(1100)  # 16 s of silence
        assert c.closed
        assert c.recv() == []
        assert "Client k has exceeded timeout, disconnecting." in hub.log_text()


def test_keepalive_and_connect_timeout_across_clock_wrap():
    # The engine's millisecond clock wraps at TICKS_MASK; timers must neither fire at once nor
    # never fire when they straddle the wrap.
    for start in (TICKS_MASK - 3000, TICKS_MASK - 14000, TICKS_MASK):
        hub = Hub("", start)
        c = online(hub, "k", keepalive=10)
        n = hub.client()
        hub.advance(9900)
        assert not n.closed, start
        hub.advance(1100)
        assert n.closed, start
        hub.advance(14900 - 11000)
        assert not c.closed, start
        hub.advance(1100)
        assert c.closed, start


def test_pingreq_resets_keepalive_timer():
    for split in SPLITS:
        hub = Hub()
        c = hub.client()
        accepted(c, "k", split, keepalive=10)
        for i in range(4):
            hub.advance(10000)
            c.send(encode_simple(PINGREQ), split)
            got = c.recv()
            assert kinds(got) == [PINGRESP]
            assert not c.closed
        hub.advance(14900)
        assert not c.closed
        hub.advance(1100)
        assert c.closed


def test_any_packet_resets_keepalive_timer():
    hub = Hub()
    c = online(hub, "k", keepalive=10)
    for i in range(4):
        hub.advance(12000)
        publish(c, b"t", b"tick", 0)
        assert not c.closed
    c.send(encode_subscribe(7, [(b"x", 0)]))
    hub.advance(12000)
    assert not c.closed
    hub.advance(4000)
    assert c.closed


def test_pingreq_gets_pingresp_MQTT_3_12_4_1():
    for split in SPLITS:
        hub = Hub()
        c = online(hub, "p")
        c.send(encode_simple(PINGREQ), split)
        got = c.recv()
        assert kinds(got) == [PINGRESP] and got[0].flags == 0
        c.send(encode_simple(PINGREQ) * 3, split)
        assert kinds(c.recv()) == [PINGRESP] * 3


def test_keepalive_0_never_times_out():
    hub = Hub()
    c = online(hub, "zero", keepalive=0)
    k = online(hub, "ten", keepalive=10)
    hub.advance(600000)
    assert not c.closed
    assert k.closed
    ping_ok(c)


def test_keepalive_above_max_keepalive_rejected():
    refused_with(encode_connect("k", keepalive=61), 2, "keepalive 61 > 60", "max_keepalive 60\n")
    refused_with(encode_connect("k", keepalive=65535), 2, "keepalive 65535 > 60",
                 "max_keepalive 60\n")
    for split in SPLITS:
        hub = Hub("max_keepalive 60\n")
        accepted(hub.client(), "k", split, keepalive=60)


def test_no_connect_closed_after_connect_timeout():
    for partial in (b"", encode_connect("slow")[:5]):
        hub = Hub()
        c = hub.client()
        if partial:
            c.send(partial, 1)
        hub.advance(9900)
        assert not c.closed
        hub.advance(1100)
        assert c.closed
        assert c.recv() == []
        assert "sent no CONNECT in time" in hub.log_text()


def test_connect_timeout_does_not_apply_once_connected():
    hub = Hub()
    c = online(hub, "c", keepalive=0)
    hub.advance(30000)
    assert not c.closed
    ping_ok(c)


# --- limits and authorisation ----------------------------------------------------------------------

def test_max_connections_refuses_with_connack_3():
    for split in SPLITS:
        hub = Hub("max_connections 2\n")
        a = online(hub, "a", [(b"to/a", 1)])
        b = online(hub, "b")
        c = hub.client()
        got = connect_packets(c, "c", split)
        assert kinds(got) == [CONNACK] and got[0].return_code == 3
        assert got[0].session_present is False
        assert c.closed
        assert "max_connections (2) reached" in hub.log_text()
        # the first two keep working
        ping_ok(a)
        ping_ok(b)
        publish(b, b"to/a", b"still here", 1)
        got = a.recv()
        assert kinds(got) == [PUBLISH] and got[0].payload == b"still here"
        ack_all(a, got)
        # a takeover at capacity is not a new connection
        a2 = hub.client()
        accepted(a2, "a", split)
        assert a.closed
        # a freed place can be taken
        b.send(encode_simple(DISCONNECT))
        d = hub.client()
        accepted(d, "d", split)
        ping_ok(a2)
        ping_ok(d)


def test_max_sessions_full_of_offline_sessions_discards_the_least_recently_seen():
    # Issue 15: a new client is never locked out by sessions whose clients went away; the one
    # seen least recently is discarded (logged, counted); only when every session in the table
    # is connected is a new client refused with CONNACK 0x03.
    for split in SPLITS:
        hub = Hub("max_sessions 2\n")
        a = online(hub, "a", [(b"t", 1)], clean_session=False)
        b = online(hub, "b", clean_session=False)
        a.send(encode_simple(DISCONNECT))
        hub.advance(2000)
        b.lose()
        hub.advance(3000)
        c = hub.client()
        assert accepted(c, "c", split, clean_session=False).session_present is False
        assert "Client c: discarding the session of offline client a (not seen for 5 s) to" \
            " make room: max_sessions (2) reached." in hub.lines, hub.lines
        assert hub.broker.sessions_evicted == 1
        assert sorted(hub.broker.sessions) == ["b", "c"]
        # b's session is still there
        b = hub.client()
        assert accepted(b, "b", split, clean_session=False).session_present is True
        # a takeover does not count as a new session
        b2 = hub.client()
        assert accepted(b2, "b", split, clean_session=False).session_present is True
        assert b.closed
        # every session connected: refused
        for clean in (False, True):
            d = hub.client()
            got = connect_packets(d, "d", split, clean_session=clean)
            assert kinds(got) == [CONNACK] and got[0].return_code == 3, (clean, kinds(got))
            assert got[0].session_present is False
            assert d.closed
        assert "Client d refused: max_sessions (2) reached and every session is connected." \
            in hub.lines
        # once a session ends (clean session 1), its place is free
        b2.send(encode_simple(DISCONNECT))
        bc = hub.client()
        accepted(bc, "b", split, clean_session=True)
        bc.send(encode_simple(DISCONNECT))
        d = hub.client()
        assert accepted(d, "d", split).session_present is False


def test_persistent_client_expiration_removes_offline_sessions_not_seen_for_that_long():
    # mosquitto's persistent_client_expiration; $SYS/broker/clients/expired counts them
    hub = Hub("persistent_client_expiration 1h\nsys_interval 1\n")
    pub = online(hub, "pub", keepalive=0)
    old = online(hub, "old", [(b"t", 1)], clean_session=False)
    old.lose()
    hub.advance(1800 * 1000)
    back = online(hub, "back", [(b"t", 1)], clean_session=False)
    back.lose()
    hub.advance(1800 * 1000 - 1000)
    assert sorted(hub.broker.sessions) == ["back", "old", "pub"]
    hub.advance(2000)
    assert sorted(hub.broker.sessions) == ["back", "pub"]
    assert "Expiring client old: not seen for 3600 s (persistent_client_expiration)." \
        in hub.lines, [line for line in hub.lines if "xpir" in line]
    mon = online(hub, "mon", [(b"$SYS/broker/clients/expired", 0)])
    assert [p.payload for p in mon.recv()] == [b"1"]
    # the one that came back within the hour resumes its session
    c = hub.client()
    assert accepted(c, "back", clean_session=False).session_present is True
    publish(pub, b"t", b"still", 1)
    assert [p.payload for p in c.recv()] == [b"still"]


def test_allow_anonymous_false_refuses_with_connack_5():
    # The harness appends "allow_anonymous true" to any config text, so switch it off here.
    for split in SPLITS:
        hub = Hub()
        hub.broker.config.allow_anonymous = False
        c = hub.client()
        got = connect_packets(c, "anon", split)
        assert kinds(got) == [CONNACK] and got[0].return_code == 5
        assert got[0].session_present is False
        assert c.closed
        assert "not authorised" in hub.log_text()


# --- DISCONNECT [MQTT-3.14.1-1] --------------------------------------------------------------------

def test_disconnect_with_remaining_length_is_a_protocol_error():
    # DISCONNECT has no variable header and no payload (3.14.2, 3.14.3): a body is a malformed
    # packet, so the connection is closed as for any protocol error [MQTT-4.8.0-1]. It is not a
    # DISCONNECT the server "received", so the will is published (3.1.2.5: "the Server closes the
    # Network Connection because of a protocol error").
    for data in (b"\xe0\x01\x00", b"\xe0\x02\x00\x00"):
        for split in SPLITS:
            hub = Hub()
            w = online(hub, "w", [(b"will/#", 0)])
            c = willing(hub, "odd", split)
            c.send(data, split)
            assert c.closed, data
            assert c.recv() == []
            got = w.recv()
            assert kinds(got) == [PUBLISH] and got[0].payload == b"bye", data
            assert "DISCONNECT remaining length must be 0" in hub.log_text()


def test_disconnect_with_reserved_flags_is_a_protocol_error_MQTT_3_14_1_1():
    for split in SPLITS:
        hub = Hub()
        w = online(hub, "w", [(b"will/#", 0)])
        c = willing(hub, "odd", split)
        c.send(b"\xe1\x00", split)
        assert c.closed
        got = w.recv()
        assert kinds(got) == [PUBLISH] and got[0].payload == b"bye"


def test_disconnect_split_across_feeds_discards_will():
    hub = Hub()
    w = online(hub, "w", [(b"will/#", 0)])
    c = willing(hub, "split")
    c.send(encode_simple(DISCONNECT)[:1])
    assert not c.closed
    c.send(encode_simple(DISCONNECT)[1:])
    assert c.closed
    assert w.recv() == []
