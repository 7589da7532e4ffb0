"""The engine (broker.engine.Broker) fed random sequences of client actions from several clients:
CONNECT with random flags, ids, wills and keepalive; SUBSCRIBE with valid and invalid filters;
PUBLISH with random topics, QoS, RETAIN and DUP; acks with random ids; pings, disconnects, socket
loss, clock advances, garbage and mutated packets; each fed whole or split at random points, under
random (mostly tiny) limits.

After every step (engine_driver.World.check): nothing raised out of feed/lost/tick/drained, the
log has no "Internal error", and the tables are consistent and within their limits; everything
the broker wrote frames, decodes and is a server packet that the state allows. At the end every
socket goes away and only persistent sessions, with their subscriptions, are left.

Then focused properties for the answers the specification fixes: CONNACK 0x01 for an unsupported
protocol level, silence and close for a packet before CONNECT, one SUBACK code per filter, and
the exact acknowledgements of a stream of valid packets.
"""
from hypothesis import event, given, strategies as st
from hypothesis.control import currently_in_test_context

from broker.conn import CONNECTED
from broker.const import (
    CONNACK, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
    SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
)

from engine_driver import World
from mqtt_strategies import (
    cuts, examples, filters_any, filters_valid, mutate, mutations, split, topic_names,
    valid_packet,
)
import packets
from packets import encode_ack, encode_publish, encode_simple, encode_subscribe

# ---- raw packet builders (the client encoders cannot express every invalid packet) ---------------


def _str(b: bytes) -> bytes:
    return bytes((len(b) >> 8 & 0xFF, len(b) & 0xFF)) + b


def frame(b0: int, body: bytes) -> bytes:
    n = len(body)
    rl = bytearray()
    while True:
        d = n & 0x7F
        n >>= 7
        rl.append(d | (0x80 if n else 0))
        if not n:
            break
    return bytes((b0,)) + bytes(rl) + body


client_ids = st.sampled_from((b"a", b"b", b"c", b"", b"x" * 24, "\u00e9".encode(), b"\xff"))
keepalives = st.sampled_from((0, 0, 1, 2, 10, 60, 65535))
levels = st.sampled_from((4, 4, 4, 4, 4, 3, 6, 0, 255))  # (MQTT 5: tests/core/test_engine_v5)
payloads = st.sampled_from((b"", b"p", b"q" * 40, b"\x00\xff"))
any_topics = st.one_of(topic_names, topic_names, filters_any, st.just(b""), st.just(b"t" * 30),
                       st.just(b"\xc3"))
any_filters = st.one_of(filters_valid, filters_valid, filters_any, st.just(b""),
                        st.just(b"f/" * 15), st.just(b"\xc3"))
small_mids = st.one_of(st.integers(0, 4), st.integers(0, 65535))


@st.composite
def connect_packet(draw: st.DrawFn) -> bytes:
    level = draw(levels)
    name = draw(st.sampled_from((b"MQTT", b"MQIsdp", b"MQTT", b"MQTT", b"")))
    if level == 3 and draw(st.booleans()):
        name = b"MQIsdp"
    if level == 4:
        name = draw(st.sampled_from((b"MQTT", b"MQTT", b"MQTT", b"MQIsdp")))
    clean = draw(st.booleans())
    will = draw(st.none() | st.tuples(any_topics, payloads, st.integers(0, 2), st.booleans()))
    user = draw(st.none() | st.just(b"u") | st.just(b"\xc3"))
    password = draw(st.none() | st.just(b"pw"))
    flags = (2 if clean else 0) | (0x80 if user is not None else 0) | (
        0x40 if password is not None else 0)
    if will is not None:
        flags |= 4 | (will[2] << 3) | (0x20 if will[3] else 0)
    if draw(st.integers(0, 9)) == 0:
        flags = draw(st.integers(0, 255))  # whatever the flags say, the payload follows them
    ka = draw(keepalives)
    body = _str(name) + bytes((level, flags, ka >> 8, ka & 0xFF)) + _str(draw(client_ids))
    if flags & 4:
        w = will or (b"w", b"", 0, False)
        body += _str(w[0]) + _str(w[1])
    if flags & 0x80:
        body += _str(user if user is not None else b"u")
    if flags & 0x40:
        body += _str(password if password is not None else b"pw")
    return frame(0x10, body)


@st.composite
def publish_packet(draw: st.DrawFn) -> bytes:
    qos = draw(st.sampled_from((0, 0, 1, 1, 2, 2, 3)))
    b0 = 0x30 | (qos << 1) | (1 if draw(st.booleans()) else 0)
    if draw(st.integers(0, 5)) == 0:
        b0 |= 8
    body = _str(draw(any_topics))
    if qos:
        mid = draw(small_mids)
        body += bytes((mid >> 8, mid & 0xFF))
    return frame(b0, body + draw(payloads))


@st.composite
def subscribe_packet(draw: st.DrawFn) -> bytes:
    mid = draw(small_mids)
    body = bytes((mid >> 8, mid & 0xFF))
    for f in draw(st.lists(any_filters, min_size=1, max_size=4)):
        body += _str(f) + bytes((draw(st.sampled_from((0, 1, 2, 0, 1, 2, 3, 0x81))),))
    return frame(0x82, body)


@st.composite
def unsubscribe_packet(draw: st.DrawFn) -> bytes:
    mid = draw(small_mids)
    body = bytes((mid >> 8, mid & 0xFF))
    for f in draw(st.lists(any_filters, min_size=0, max_size=3)):
        body += _str(f)
    return frame(0xA2, body)


ack_packet = st.builds(encode_ack, st.sampled_from((PUBACK, PUBREC, PUBREL, PUBCOMP)), small_mids)

one_packet = st.one_of(
    connect_packet(), connect_packet(), publish_packet(), publish_packet(), publish_packet(),
    subscribe_packet(), subscribe_packet(), unsubscribe_packet(), ack_packet,
    st.just(encode_simple(PINGREQ)), st.just(encode_simple(DISCONNECT)),
    st.sampled_from((b"\xc0\x01\x00", b"\xe0\x01\x00", b"\x40\x03\x00\x01\x00", b"\x20\x02\x00\x00",
                     b"\xf0\x00", b"\x00\x00", b"\x10\xff\xff\xff\xff")),
    st.binary(max_size=12),
    valid_packet.map(lambda p: p[0]),
)


@st.composite
def sent_bytes(draw: st.DrawFn) -> bytes:
    data = b"".join(draw(st.lists(one_packet, min_size=1, max_size=3)))
    if draw(st.integers(0, 5)) == 0:
        data = mutate(data, draw(mutations))
    return data


# Valid traffic (what keeps sessions alive long enough to route, queue, resume and fill their
# windows); small packet ids so that acks meet the broker's own.
valid_mids = st.integers(1, 6)
sys_filters = st.sampled_from((b"$SYS/#", b"$SYS/broker/+/+", b"$SYS/broker/uptime"))
valid_subscribe = st.builds(
    encode_subscribe, valid_mids,
    st.lists(st.tuples(filters_valid | sys_filters, st.integers(0, 2)), min_size=1, max_size=3))
valid_unsubscribe = st.builds(packets.encode_unsubscribe, valid_mids,
                              st.lists(filters_valid, min_size=1, max_size=2))


@st.composite
def valid_publish(draw: st.DrawFn) -> bytes:
    qos = draw(st.integers(0, 2))
    return encode_publish(draw(topic_names), draw(payloads), qos, draw(st.booleans()),
                          qos > 0 and draw(st.booleans()), draw(valid_mids) if qos else 0)


valid_traffic = st.lists(st.one_of(
    valid_publish(), valid_publish(), valid_publish(), valid_subscribe, valid_unsubscribe,
    st.builds(encode_ack, st.sampled_from((PUBACK, PUBREC, PUBREL, PUBCOMP)), valid_mids),
    st.just(encode_simple(PINGREQ))), min_size=1, max_size=4).map(b"".join)

SLOTS = 3
slot = st.integers(0, SLOTS - 1)
action = st.one_of(
    st.tuples(st.just("send"), slot, valid_traffic, cuts),
    st.tuples(st.just("send"), slot, valid_traffic, cuts),
    st.tuples(st.just("send"), slot, valid_traffic, cuts),
    st.tuples(st.just("send"), slot, sent_bytes(), cuts),
    st.tuples(st.just("reconnect"), slot, st.sampled_from(("a", "b", "b", "c", "")),
              st.sampled_from((False, False, True)),
              st.none() | st.tuples(topic_names, payloads, st.integers(0, 2), st.booleans()),
              keepalives),
    st.tuples(st.just("drain"), slot),
    st.tuples(st.just("ack"), slot),
    st.tuples(st.just("ack"), slot),
    st.tuples(st.just("lose"), slot),
    st.tuples(st.just("open"), slot) | st.tuples(st.just("tick"), st.just(0)),
    st.tuples(st.just("tick"), st.sampled_from((0, 100, 500, 1000, 15000, 61000, 200000))),
)


@st.composite
def config_text(draw: st.DrawFn) -> str:
    """Mostly tiny limits, so that every one of them is reached; the limits that refuse whole
    clients or packets are set less often, so that sessions live long enough to route."""
    def opt(name: str, values: "st.SearchStrategy", rarely: bool = False) -> str:
        v = draw(st.one_of(st.none(), st.none(), st.none(), values) if rarely
                 else st.none() | values)
        return "" if v is None else "%s %s\n" % (name, v)
    return "".join((
        opt("max_packet_size", st.sampled_from((20, 40, 100, 1000)), True),
        opt("max_inflight_messages", st.integers(1, 4)),
        opt("max_queued_messages", st.integers(1, 5)),
        opt("max_subscriptions", st.integers(1, 8)),
        opt("max_retained_messages", st.integers(1, 3)),
        opt("max_sessions", st.integers(1, 4), True),
        opt("max_connections", st.integers(1, 3), True),
        opt("max_topic_length", st.integers(1, 20), True),
        opt("max_keepalive", st.sampled_from((10, 60, 65535)), True),
        opt("retain_available", st.sampled_from(("true", "false")), True),
        opt("queue_qos0_messages", st.sampled_from(("true", "false"))),
        opt("allow_anonymous", st.just("false"), True),
        opt("log_type", st.sampled_from(("all", "debug", "none"))),
        opt("sys_interval", st.sampled_from((0, 1, 10))),
    ))


def run(config: str, steps: list, start: "list | None" = None) -> World:
    """Play steps on a fresh broker; World checks the invariants after every one. start: per
    slot, None for a bare socket, or the subscriptions of a client connected first (slot 1 with
    a persistent session)."""
    w = World(config)
    peers = [w.open("slot%d" % i) for i in range(SLOTS)]
    for i, subs in enumerate(start or ()):
        if subs is not None:
            peers[i].send(packets.encode_connect("abc"[i], clean_session=i != 1, keepalive=0))
            if subs:
                peers[i].send(encode_subscribe(1, subs))
    for step in steps:
        kind = step[0]
        if kind == "tick":
            w.tick(step[1])
            continue
        i = step[1]
        p = peers[i]
        if kind == "send":
            p.send(step[2], step[3])
        elif kind == "drain":
            p.drain()
        elif kind == "ack":
            p.drain()
            p.send(p.acks())
        elif kind == "lose":
            p.lose()
        elif kind in ("open", "reconnect"):
            q = w.open("slot%d.%d" % (i, len(w.peers)))
            if q.conn is None:
                continue
            peers[i] = q
            if kind == "reconnect":
                cid, clean, will, ka = step[2:]
                kw = {} if will is None else dict(will_topic=will[0], will_payload=will[1],
                                                  will_qos=will[2], will_retain=will[3])
                q.send(packets.encode_connect(cid, clean_session=clean, keepalive=ka, **kw))
    w.finish()
    if not currently_in_test_context():
        return w
    got = [x for q in w.peers for x in q.got]
    for qos in (0, 1, 2):
        if any(x.type == PUBLISH and x.qos == qos for x in got):
            event("delivered QoS %d" % qos)
    if any(x.type == PUBLISH and x.dup for x in got):
        event("re-sent with DUP")
    if any(s.queue for s in w.broker.sessions.values()):
        event("messages left queued")
    if any(x.type == SUBACK and 0x80 in x.codes for x in got):
        event("SUBACK failure code")
    return w


_subs = st.lists(st.tuples(filters_valid | st.just(b"#") | sys_filters, st.integers(0, 2)),
                 min_size=1, max_size=3)
starts = st.lists(st.one_of(st.none(), _subs, _subs, _subs), min_size=SLOTS, max_size=SLOTS)


@examples(0.5)
@given(config_text(), st.lists(action, min_size=4, max_size=30), starts)
def test_random_client_actions_keep_the_engine_consistent(config, steps, start):
    run(config, steps, start)


@examples(0.25)
@given(st.lists(action, min_size=8, max_size=60), starts)
def test_random_client_actions_default_limits(steps, start):
    """The same with the default (large) limits: the paths where nothing is refused."""
    run("", steps, start)


# ---- answers the specification fixes --------------------------------------------------------------


@examples()
@given(st.one_of(
    st.tuples(st.just(b"MQTT"), st.integers(0, 255).filter(lambda v: v != 4 and v != 5)),
    st.tuples(st.just(b"MQIsdp"), st.integers(0, 255).filter(lambda v: v != 3))),
    st.binary(min_size=3, max_size=40), st.binary(max_size=20), cuts)
def test_unsupported_protocol_level_gets_connack_1_then_close(name_level, rest, after, cut):
    """[MQTT-3.1.2-2]: CONNACK with return code 0x01 (session present 0 [MQTT-3.2.2-4]), then
    the connection is closed, whatever follows the level byte and whatever comes after."""
    name, level = name_level
    data = frame(0x10, _str(name) + bytes((level,)) + rest) + after
    w = World()
    p = w.open()
    p.send(data, cut)
    got = p.drain()
    assert [(x.type, x.session_present, x.return_code) for x in got] == [(CONNACK, False, 1)]
    assert p.closed
    w.finish()


@examples()
@given(valid_packet.filter(lambda p: p[1][0] != 1), st.binary(max_size=20), cuts)
def test_packet_before_connect_gets_no_answer_and_close(packet, after, cut):
    """[MQTT-3.1.0-1]: the first packet must be CONNECT; anything else closes the connection
    with no answer."""
    w = World()
    p = w.open()
    p.send(packet[0] + after, cut)
    assert p.closed
    assert p.drain() == []
    w.finish()


@examples()
@given(st.integers(1, 65535), st.lists(st.tuples(filters_valid | topic_names, st.integers(0, 2)),
                                       min_size=1, max_size=6),
       st.sampled_from(("", "max_subscriptions 2\n", "max_topic_length 3\n")), cuts)
def test_valid_subscribe_gets_one_suback_code_per_filter(mid, topics, config, cut):
    """[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-5] [MQTT-3.9.3-1]: one SUBACK with the packet id
    and one return code per filter, in order: the granted QoS (at most the requested one), or
    0x80 when refused."""
    w = World(config)
    p = w.open()
    p.send(packets.encode_connect("c"))
    p.drain()
    p.send(encode_subscribe(mid, topics), cut)
    got = p.drain()
    assert not p.closed
    assert [(x.type, x.mid) for x in got] == [(SUBACK, mid)]
    codes = got[0].codes
    assert len(codes) == len(topics)
    for (f, q), code in zip(topics, codes):
        assert code == 0x80 or code <= q
        if len(f) > w.config.max_topic_length:
            assert code == 0x80
    if not config:
        assert codes == [q for _, q in topics]  # nothing to refuse with the defaults
    w.finish()


@examples()
@given(st.lists(st.one_of(
    st.tuples(st.just(PUBLISH), topic_names, st.integers(0, 2), st.integers(1, 6), st.booleans()),
    st.tuples(st.just(PUBREL), st.integers(1, 6)),
    st.tuples(st.just(PINGREQ)),
    st.tuples(st.just(UNSUBSCRIBE), st.integers(1, 6), filters_valid),
    st.tuples(st.just(SUBSCRIBE), st.integers(1, 6), st.just(b"nothing/matches")),
), min_size=1, max_size=12), cuts)
def test_valid_packets_get_exactly_their_acknowledgements(stream, cut):
    """A stream of valid packets (no subscriber for the messages) in random pieces is answered
    with exactly: PUBACK for QoS 1, PUBREC for QoS 2 (also for a re-sent id still awaiting
    PUBREL), PUBCOMP for PUBREL, PINGRESP, UNSUBACK, SUBACK, in order, with the packet ids."""
    data = b""
    want = []
    for item in stream:
        t = item[0]
        if t == PUBLISH:
            _, topic, qos, mid, retain = item
            data += encode_publish(topic, b"m", qos, retain, False, mid if qos else 0)
            if qos:
                want.append((PUBACK if qos == 1 else PUBREC, mid))
        elif t == PUBREL:
            data += encode_ack(PUBREL, item[1])
            want.append((PUBCOMP, item[1]))
        elif t == PINGREQ:
            data += encode_simple(PINGREQ)
            want.append((PINGRESP, 0))
        elif t == UNSUBSCRIBE:
            data += packets.encode_unsubscribe(item[1], [item[2]])
            want.append((UNSUBACK, item[1]))
        else:
            data += encode_subscribe(item[1], [(item[2], 1)])
            want.append((SUBACK, item[1]))
    w = World()
    p = w.open()
    p.send(packets.encode_connect("c"))
    p.drain()
    p.send(data, cut)
    assert [(x.type, x.mid) for x in p.drain()] == want
    assert p.conn.state == CONNECTED
    w.finish()


@examples(0.5)
@given(st.lists(one_packet, min_size=1, max_size=8), cuts, st.sampled_from((1, 0)))
def test_whole_or_split_feeding_gives_the_same_outcome(stream, cut, bytewise):
    """The engine's answers do not depend on how the bytes were cut into feed() calls."""
    data = b"".join(stream)
    results = []
    for pieces in ([data], split(data, cut), [data[i:i + 1] for i in range(len(data))]):
        w = World()
        p = w.open()
        for piece in pieces:
            p.send(piece)
        out = [packets_fields(x) for x in p.drain()]
        results.append((out, p.closed))
        w.finish()
    assert results[0] == results[1] == results[2]


def packets_fields(x: packets.Packet) -> tuple:
    return (x.type, x.flags, x.mid, x.topic, x.payload, tuple(x.codes), x.return_code,
            x.session_present)



@examples(0.5)
@given(st.integers(1, 120), st.lists(st.integers(0, 2000), min_size=1, max_size=40),
       st.booleans())
def test_keepalive_closes_after_one_and_a_half_periods(keepalive, gaps, with_will):
    """[MQTT-3.1.2-24]: a client that sends nothing for 1.5 x keepalive is disconnected (its will
    published); one that sends before then is not. The port ticks every 250 ms at most; the
    engine checks every 500 ms, so the close may come up to a second late. A socket that never
    sends CONNECT is dropped after CONNECT_TIMEOUT_MS."""
    w = World()
    watcher = w.open("watcher")
    watcher.send(packets.encode_connect("w", keepalive=0))
    watcher.send(encode_subscribe(1, [(b"will", 0)]))
    watcher.drain()
    idle = w.open("idle")  # never sends CONNECT
    p = w.open("p")
    kw = dict(will_topic=b"will", will_payload=b"gone") if with_will else {}
    p.send(packets.encode_connect("c", keepalive=keepalive, **kw))
    last = w.now
    limit = keepalive * 1500
    for gap in gaps:  # send a PINGREQ after each gap, ticking as a port does
        end = w.now + gap
        while w.now < end:
            w.tick(min(250, end - w.now))
            silent = w.now - last
            if silent <= limit:
                assert not p.closed, (silent, limit)
            elif silent > limit + 1000:
                assert p.closed, (silent, limit)
        if p.closed:
            break
        p.send(encode_simple(PINGREQ))
        last = w.now
    while not p.closed:
        w.tick(250)
        assert w.now - last <= limit + 1000
    wills = [x.payload for x in watcher.drain() if x.type == PUBLISH]
    assert wills == ([b"gone"] if with_will else [])
    if w.now - 1000 > 10000 + 1000:
        assert idle.closed
    w.finish()


@examples()
@given(st.sampled_from(("", "a", "b" * 23, "c" * 24, "\u00e9")), st.booleans(),
       st.sampled_from((0, 10, 11, 60, 65535)), st.sampled_from((4, 4, 3)),
       st.none() | st.tuples(topic_names, payloads, st.integers(0, 2), st.booleans()),
       st.none() | st.sampled_from(("u", "")), st.sampled_from((10, 60, 65535)),
       st.booleans(), cuts)
def test_connect_answer_follows_the_rules(cid, clean, keepalive, level, will, user, max_ka,
                                          anonymous, cut):
    """A well-formed CONNECT gets exactly one CONNACK: 0x00 (session present 0 on a fresh broker,
    and always 0 for MQTT 3.1), or one of the refusals that apply, with session present 0
    [MQTT-3.2.2-4], and then the connection is closed with nothing more sent:
    0x02 for an empty id with CleanSession 0 [MQTT-3.1.3-8], for an MQTT 3.1 id outside 1..23
    characters, or for a keepalive above max_keepalive (mosquitto's answer); 0x05 when anonymous
    clients are not allowed."""
    config = "max_keepalive %d\nallow_anonymous %s\n" % (max_ka, "true" if anonymous else "false")
    kw = dict(clean_session=clean, keepalive=keepalive, protocol_level=level, username=user)
    if will is not None:
        kw.update(will_topic=will[0], will_payload=will[1], will_qos=will[2], will_retain=will[3])
    w = World(config)
    p = w.open()
    p.send(packets.encode_connect(cid, **kw), cut)  # type: ignore[arg-type]
    got = p.drain()
    refusals = set()
    if level == 3 and not 0 < len(cid) <= 23:
        refusals.add(2)
    if not cid and not clean:
        refusals.add(2)
    if keepalive > max_ka:
        refusals.add(2)
    if not anonymous:
        refusals.add(5)
    assert len(got) == 1 and got[0].type == CONNACK, [x.type for x in got]
    code = got[0].return_code
    if refusals:
        assert code in refusals and not got[0].session_present
        assert p.closed
    else:
        assert code == 0 and not got[0].session_present
        assert p.conn.state == CONNECTED
    w.finish()
