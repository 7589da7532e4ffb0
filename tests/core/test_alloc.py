"""Zero heap allocations per routed PUBLISH, checked with micropython.heap_lock() (MicroPython only).

With the heap locked, any allocation raises MemoryError; the engine turns that into a closed
connection, so each test also checks that every connection is still open and that every
subscriber received every byte it should have.
"""
from broker import keepalive, lifecycle
from broker.config import parse
from broker.const import PUBACK
from broker.engine import CLOSED, Broker
from broker.session import Message
from broker.topics import filter_matches_in_place
from packets import encode_ack, encode_connect, encode_publish, encode_subscribe
from support import MPY, SkipTest

if MPY:
    import micropython
else:
    from broker.bytesops import micropython  # its native decorator, a no-op here

BATCH = 20          # PUBLISH packets per feed() call, as one socket read would bring them
ROUNDS = 150        # 3,000 messages per test


# MQTT 5 packets, built here as a client writes them: Protocol Level 5, Clean Start, Keep Alive 60
# and no properties in CONNECT and SUBSCRIBE.
def _s(text: bytes) -> bytes:
    return bytes((len(text) >> 8, len(text) & 0xFF)) + text


def _connect5(cid: bytes) -> bytes:
    body = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + _s(cid)
    return bytes((0x10, len(body))) + body


def _subscribe5(filters: "list") -> bytes:
    body = b"\x00\x01\x00"  # packet identifier 1, no properties
    for filt, options in filters:
        body += _s(filt) + bytes((options,))
    return bytes((0x82, len(body))) + body


TOPIC = b"plant/line1/temp"
PAYLOAD = b"x" * 64
# one User Property ("unit", "C"), as section 3.3.2.3.7 of MQTT 5.0 encodes it
USER_PROPERTY = b"\x26\x00\x04unit\x00\x01C"
PUBLISH5 = b"\x30\x5d\x00\x10plant/line1/temp\x0a" + USER_PROPERTY + PAYLOAD
# the same message as a 3.1.1 subscriber gets it, and a 3.1.1 one as a v5 subscriber gets it
PUBLISH311 = b"\x30\x52\x00\x10plant/line1/temp" + PAYLOAD
PUBLISH5_BARE = b"\x30\x53\x00\x10plant/line1/temp\x00" + PAYLOAD


def _hub(config: str = "") -> Broker:
    cfg = parse(config + "\nallow_anonymous true\n", "<alloc>")
    return Broker(cfg, None, 1000)


def _client(b: Broker, cid: str, filters: "list", level: int = 4) -> object:
    """A client of protocol level 4 (3.1.1) or 5; filters: (filter, QoS or v5 options)."""
    conn = lifecycle.accept(b, None, "127.0.0.1:1")
    assert conn is not None
    if level == 5:
        data = bytearray(_connect5(cid.encode()))
        if filters:
            data += _subscribe5(filters)
    else:
        data = bytearray(encode_connect(cid))
        if filters:
            data += encode_subscribe(1, filters)
    b.feed(conn, data, len(data))
    _sent(conn)
    return conn


# (native: its frame is over 11 words, see test_routing_puts_no_frame_on_the_heap)
@micropython.native
def _sent(conn: "object") -> int:
    """Take everything conn has to send, as a port does (Conn.chunk, Conn.sent), without
    allocating; how many bytes that was."""
    total = 0
    n = conn.chunk()  # type: ignore[attr-defined]
    while n:
        conn.sent(n)  # type: ignore[attr-defined]
        total += n
        n = conn.chunk()  # type: ignore[attr-defined]
    return total


def _received(conn: "object", packet: bytes) -> int:
    """Take everything conn has to send, as _sent does; how many copies of packet that was,
    or a negative number when it was anything else. Compared in place: nothing allocated."""
    copies = 0
    n = conn.chunk()  # type: ignore[attr-defined]
    while n:
        buf = conn.cbuf  # type: ignore[attr-defined]
        p = conn.coff  # type: ignore[attr-defined]
        end = p + n
        while p < end:
            if not packet or not buf.startswith(packet, p):
                return -1000000
            p += len(packet)
            copies += 1
        conn.sent(n)  # type: ignore[attr-defined]
        n = conn.chunk()  # type: ignore[attr-defined]
    return copies


def _route_locked(b: Broker, pub: "object", packet: bytes, subs: "list", expect: "list",
                  halves: "object" = None) -> None:
    """pub sends BATCH copies of packet per feed() call (as one socket read would bring
    them), ROUNDS + 1 times; subscriber i must get expect[i] (b"": nothing) for each copy (or,
    with halves, for halves[i] halves of them), byte for byte, and every connection must stay
    open. Round 0 runs unlocked: it sizes the output buffers once (allowed at subscribe time);
    every later round is steady state and must not allocate."""
    stream = bytearray(packet * BATCH)
    n = len(stream)
    got = [0] * len(subs)
    keepalive.tick(b, 1000)
    feed = b.feed
    locked = False
    try:
        for r in range(ROUNDS + 1):
            if r == 1:
                micropython.heap_lock()
                locked = True
            feed(pub, stream, n)
            for i in range(len(subs)):
                got[i] += _received(subs[i], expect[i])
    finally:
        if locked:
            micropython.heap_unlock()
    assert pub.state != CLOSED  # type: ignore[attr-defined]
    for i in range(len(subs)):
        assert subs[i].state != CLOSED, i
        want = (ROUNDS + 1) * BATCH if expect[i] else 0
        if halves is not None:
            want = want * halves[i] // 2  # type: ignore[index]
        assert got[i] == want, (i, got[i])


# (native: its frame is over 11 words, see test_routing_puts_no_frame_on_the_heap)
@micropython.native
def _ack_publishes(b: Broker, conn: "object", acks: bytearray) -> None:
    """PUBACK every QoS 1 PUBLISH conn has to send, as its client would: the packet
    identifiers read off the bytes on their way out, the PUBACKs written into acks (preset
    with their first two bytes, room for all of them), nothing allocated."""
    k = 0
    n = conn.chunk()  # type: ignore[attr-defined]
    while n:
        buf = conn.cbuf  # type: ignore[attr-defined]
        p = conn.coff  # type: ignore[attr-defined]
        end = p + n
        while p < end:
            b0 = buf[p]
            p += 1
            size = 0
            shift = 0
            while True:  # the Remaining Length
                d = buf[p]
                p += 1
                size |= (d & 0x7F) << shift
                shift += 7
                if d < 0x80:
                    break
            if b0 >> 4 == 3 and b0 & 0x06:
                at = p + 2 + ((buf[p] << 8) | buf[p + 1])  # past the topic name
                acks[k + 2] = buf[at]
                acks[k + 3] = buf[at + 1]
                k += 4
            p += size
        conn.sent(n)  # type: ignore[attr-defined]
        n = conn.chunk()  # type: ignore[attr-defined]
    if k:
        b.feed(conn, acks, k)  # type: ignore[arg-type]


def test_qos0_routing_allocates_nothing() -> None:
    # DESIGN.md: zero heap allocations per QoS 0 PUBLISH routed in steady state.
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    b = _hub()
    pub = _client(b, "pub", [])
    # exact and wildcard filters, overlapping on one client, and one client that must not match
    subs = [
        _client(b, "s1", [(b"plant/line1/temp", 0)]),
        _client(b, "s2", [(b"plant/+/temp", 1)]),
        _client(b, "s3", [(b"plant/#", 2), (b"plant/line1/temp", 0)]),
        _client(b, "s4", [(b"+/+/+", 0)]),
        _client(b, "s5", [(b"other/#", 0), (b"plant/line2/temp", 0)]),
    ]
    packet = encode_publish(TOPIC, PAYLOAD)
    _route_locked(b, pub, packet, subs, [packet, packet, packet, packet, b""])


def test_qos0_routing_through_wildcard_levels_allocates_nothing() -> None:
    # The tree of wildcard filters: '+' and '#' branches matching at once at several depths, a
    # filter of 40 levels, and filters that share levels without matching.
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    b = _hub()
    pub = _client(b, "pub", [])
    deep = b"/".join([b"+"] * 40)
    subs = [
        _client(b, "s1", [(b"+/+/temp/#", 0), (b"plant/+/+/x", 0)]),
        _client(b, "s2", [(b"plant/+/temp/+/#", 1), (b"+/line1/#", 0)]),
        _client(b, "s3", [(b"#", 0), (b"plant/line2/#", 0)]),
        _client(b, "s4", [(deep, 0), (b"+/+/+/+", 1)]),
        _client(b, "s5", [(b"plant/+/hum", 0), (b"+/line1/temp/b", 0), (deep + b"/#", 0)]),
    ]
    packet = encode_publish(b"plant/line1/temp/a", PAYLOAD)
    _route_locked(b, pub, packet, subs, [packet, packet, packet, packet, b""])


def _v5_subscribers(b: Broker, level: int) -> "list":
    """Exact and wildcard filters, overlapping on one client, one that must not match; the v5
    ones with subscription options but no Subscription Identifier."""
    nl_rap = 0x0C  # No Local, Retain As Published: nothing to rewrite in a QoS 0 copy
    return [
        _client(b, "s1", [(TOPIC, 0)], level),
        _client(b, "s2", [(b"plant/+/temp", 1 | nl_rap if level == 5 else 1)], level),
        _client(b, "s3", [(b"plant/#", 2), (TOPIC, 0)], level),
        _client(b, "s4", [(b"other/#", 0)], level),
    ]


def test_qos0_routing_between_v5_clients_allocates_nothing() -> None:
    # Issue 17: a v5 PUBLISH with a User Property, no Topic Alias, no Message Expiry Interval,
    # to v5 subscribers with no Subscription Identifier: its properties go on byte for byte
    # [MQTT-3.3.2-17] [MQTT-3.3.2-18], the same packet as it came, and nothing is allocated.
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    b = _hub()
    pub = _client(b, "pub", [], 5)
    subs = _v5_subscribers(b, 5)
    _route_locked(b, pub, PUBLISH5, subs, [PUBLISH5, PUBLISH5, PUBLISH5, b""])


def test_qos0_routing_from_v5_to_311_clients_allocates_nothing() -> None:
    # A 3.1.1 subscriber gets the payload without the properties.
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    b = _hub()
    pub = _client(b, "pub", [], 5)
    subs = _v5_subscribers(b, 4)
    _route_locked(b, pub, PUBLISH5, subs, [PUBLISH311, PUBLISH311, PUBLISH311, b""])


def test_qos0_routing_from_311_to_v5_clients_allocates_nothing() -> None:
    # A v5 subscriber gets a 3.1.1 message with a Property Length of 0.
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    b = _hub()
    pub = _client(b, "pub", [])
    subs = _v5_subscribers(b, 5)
    _route_locked(b, pub, PUBLISH311, subs, [PUBLISH5_BARE, PUBLISH5_BARE, PUBLISH5_BARE, b""])


def test_qos0_routing_to_shared_subscriptions_allocates_nothing() -> None:
    # Groups of shared subscriptions (MQTT 5.0 section 4.8.2, from 3.1.1 clients as mosquitto
    # takes them): each picks its member as the message is routed; a member subscribed beside
    # its group gets one copy.
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    b = _hub()
    pub = _client(b, "pub", [])
    subs = [
        _client(b, "s1", [(b"$share/g/plant/line1/temp", 0)]),
        _client(b, "s2", [(b"$share/g/plant/line1/temp", 0)]),
        _client(b, "s3", [(b"$share/h/plant/#", 0), (b"plant/+/temp", 0)]),
        _client(b, "s4", [(b"$share/h/plant/#", 0)]),
        _client(b, "s5", [(b"$share/g/other/#", 0)]),
    ]
    packet = encode_publish(b"plant/line1/temp", b"x" * 64)
    _route_locked(b, pub, packet, subs, [packet] * 5, [1, 1, 2, 1, 0])  # in halves


def test_qos1_routing_allocates_only_the_stored_message() -> None:
    # A QoS 1 message must be kept until every subscriber acknowledges it [MQTT-4.3.2-1]: one
    # Message object plus one buffer holding topic and payload. Nothing else may allocate.
    if not MPY:
        raise SkipTest("gc.mem_alloc accounting is MicroPython's")
    import gc
    b = _hub()
    pub = _client(b, "pub", [])
    subs = [_client(b, "s%d" % i, [(b"plant/+/temp", 1), (b"plant/#", 1)]) for i in range(4)]
    topic = b"plant/line1/temp"
    payload = b"x" * 64
    stream = bytearray(encode_publish(topic, payload, qos=1, mid=1) * BATCH)
    acks = bytearray(encode_ack(PUBACK, 0) * (2 * BATCH))

    def round_trip() -> None:
        b.feed(pub, stream, len(stream))
        _sent(pub)
        for c in subs:
            _ack_publishes(b, c, acks)

    round_trip()
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for _ in range(10):
            round_trip()
        per_message = (gc.mem_alloc() - before) // (10 * BATCH)
    finally:
        gc.enable()
    assert pub.state != CLOSED and all(c.state != CLOSED for c in subs)
    # 64-bit unix port: a 4-field object and a bytearray header, each rounded to 32-byte blocks
    assert per_message <= len(topic) + len(payload) + 160, per_message


def _native_hot_path() -> bool:
    """Whether this MicroPython compiled the engine's hot path to machine code (the unix port
    from source), and counts every allocation (micropython.mem_total). (_hub is bytecode.)"""
    return MPY and hasattr(micropython, "mem_total") and type(Broker.feed) is not type(_hub)


# (native: its frame is over 11 words, see test_routing_puts_no_frame_on_the_heap)
@micropython.native
def _round_trip(b: Broker, pub: "object", stream: bytearray, subs: "list",
                acks: bytearray) -> None:
    """pub's stream in, its answers out, and every QoS 1 delivery acknowledged."""
    b.feed(pub, stream, len(stream))  # type: ignore[arg-type]
    _sent(pub)
    for c in subs:
        _ack_publishes(b, c, acks)


def _message_cost(size: int) -> int:
    """What micropython.mem_total() counts for making one kept message of size bytes."""
    before = micropython.mem_total()
    Message(bytearray(size), 0, 1, False)
    return micropython.mem_total() - before


def test_routing_puts_no_frame_on_the_heap() -> None:
    # A bytecode function whose frame is over 11 words has it allocated at each call and freed
    # at its return: heap_lock() hides that (the frame falls back to the C stack) and mem_alloc
    # does not see it, but micropython.mem_total() counts it. Every function a message passes
    # through with such a frame is native where the hot path is (docs/design.md).
    if not _native_hot_path():
        raise SkipTest("a runtime that runs the hot path as bytecode (or counts no allocations)")
    b = _hub()
    pub = _client(b, "pub", [])
    subs = [_client(b, "s%d" % i, [(b"plant/+/temp", 1), (b"plant/line1/temp", 0)])
            for i in range(4)]
    topic = b"plant/line1/temp"
    payload = b"x" * 64
    for qos, kept in ((0, 0), (1, _message_cost(len(topic) + len(payload)))):
        stream = bytearray(encode_publish(topic, payload, qos=qos, mid=1) * BATCH)
        acks = bytearray(encode_ack(PUBACK, 0) * (2 * BATCH))
        _round_trip(b, pub, stream, subs, acks)
        before = micropython.mem_total()
        for _ in range(10):
            _round_trip(b, pub, stream, subs, acks)
        per_message = (micropython.mem_total() - before) // (10 * BATCH)
        assert pub.state != CLOSED and all(c.state != CLOSED for c in subs)
        # QoS 1: the kept message alone [MQTT-4.3.2-1], as
        # test_qos1_routing_allocates_only_the_stored_message
        assert per_message <= kept, (qos, per_message, kept)


def test_deep_filter_matched_in_place_allocates_nothing() -> None:
    # A SUBSCRIBE looks up the retained messages its filters match without compiling them: a
    # 60-level filter compiled is an object per level, 3.7 KB of a board's heap at once.
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    filt = b"/".join([b"+"] + [b"a"] * 58 + [b"#"])
    topic = bytearray(b"x/" + b"/".join([b"a"] * 58) + b"/y/z")
    miss = bytearray(b"x/" + b"/".join([b"a"] * 57) + b"/b/y")
    micropython.heap_lock()
    try:
        hit = filter_matches_in_place(filt, topic, 0, len(topic))
        missed = filter_matches_in_place(filt, miss, 0, len(miss))
    finally:
        micropython.heap_unlock()
    assert hit and not missed


def test_idle_connection_gives_its_buffers_back() -> None:
    # An idle client should cost little more than its Conn and Session (issue #3: < 1 KB).
    from harness import Hub
    hub = Hub()
    sub = hub.client()
    sub.connect("idle")
    sub.subscribe(1, [(b"t", 1)])
    conn = sub.conn
    assert len(conn.out) > 0  # the CONNACK and SUBACK needed a buffer
    part = encode_publish(b"u", b"p", qos=1, mid=7)
    sub.send(part[:3])  # a split packet is gathered in the reader's own buffer
    hub.advance(1000)
    assert len(conn.out) == 0  # nothing written for a while
    assert conn.reader.have == 3  # but a partial packet is never dropped
    sub.send(part[3:])
    assert [p.type for p in sub.recv()] == [PUBACK]
    hub.advance(1000)
    assert len(conn.out) == 0 and len(conn.reader.pending) == 0
    assert not sub.closed
    pub = hub.client("127.0.0.1:5001")
    pub.connect("pub")
    pub.send(encode_publish(b"t", b"after", qos=1, mid=1))
    got = sub.publishes()
    assert [(p.topic, p.payload) for p in got] == [(b"t", b"after")]


def test_busy_connection_keeps_its_output_buffer() -> None:
    from harness import Hub
    hub = Hub()
    sub = hub.client()
    sub.connect("busy")
    sub.subscribe(1, [(b"t", 0)])
    pub = hub.client("127.0.0.1:5001")
    pub.connect("pub")
    out = None
    for i in range(20):
        pub.send(encode_publish(b"t", b"m"))
        assert len(sub.publishes()) == 1
        if out is None:
            out = sub.conn.out
        assert sub.conn.out is out, i
        hub.advance(250)
