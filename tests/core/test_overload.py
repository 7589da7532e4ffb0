"""Engine under overload and abuse (issue 15): refusals that stay polite, logs that stay short.

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython.
"""
from broker.codec import Reader
from broker.const import CONNACK, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBLISH, SUBACK
from broker.hooks import Hooks
from broker.session import MESSAGE_OVERHEAD
from harness import Hub
from packets import (
    decode, encode_ack, encode_connect, encode_publish, encode_simple, encode_subscribe,
)


def test_repeated_refusals_are_logged_once_per_interval_with_a_count():
    hub = Hub("max_connections 1\n")
    hub.client().connect("first")
    for i in range(5):
        c = hub.client()
        c.send(encode_connect("late-%d" % i))
        assert c.closed
    refused = [line for line in hub.lines if "max_connections (1) reached" in line]
    assert refused == ["Client late-0 refused: max_connections (1) reached."], refused
    hub.advance(10000)
    summary = [line for line in hub.lines if "more like this" in line]
    assert summary == ["Client late-4 refused: max_connections (1) reached."
                       " (4 more like this in the last 10 s)"], hub.lines
    # a new interval logs its first line again, and an interval with one line has no summary
    c = hub.client()
    c.send(encode_connect("later"))
    hub.advance(10000)
    assert hub.lines[-1] == "Client later refused: max_connections (1) reached.", hub.lines


# ---- what the broker acknowledges, it can deliver (issue 15, item 4) ---------------------------

def _online(hub, cid, subs=(), **kw):
    c = hub.client("127.0.0.1:%d" % (6000 + len(hub.broker.conns)))
    assert c.connect(cid, **kw).return_code == 0
    if subs:
        c.subscribe(1, list(subs))
    return c


def _ack_all(c):
    """Receive and acknowledge until nothing more comes; the payloads in order."""
    got = []
    while True:
        ps = [p for p in c.recv() if p.type == PUBLISH]
        if not ps:
            return got
        for p in ps:
            got.append(p.payload)
            if p.qos == 1:
                c.send(encode_ack(PUBACK, p.mid))


def test_memory_limit_refuses_before_acknowledging_and_frees_as_messages_go():
    hub = Hub("memory_limit 2000\n")
    sub = _online(hub, "sub", [(b"q/#", 1)], clean_session=False)
    sub.lose()
    pub = _online(hub, "pub")
    acked = []
    for i in range(5):
        pub.send(encode_publish(b"q/%d" % i, b"%d" % i + b"x" * 499, qos=1, mid=i + 1))
        got = pub.recv()
        if pub.closed:
            assert got == []  # refused: never acknowledged
            break
        assert [(p.type, p.mid) for p in got] == [(PUBACK, i + 1)]
        acked.append(i)
    assert acked == [0, 1, 2]  # three of 500 bytes (and their overhead) fit in 2,000
    assert hub.broker.ledger.bytes <= 2000
    assert any("no room to keep a message of 503 bytes on 'q/3' (memory_limit 2000 reached"
               in line for line in hub.lines), hub.lines
    # the subscriber comes back: everything acknowledged is delivered, and the room is free
    sub = _online(hub, "sub", clean_session=False)
    assert [p[:1] for p in _ack_all(sub)] == [b"0", b"1", b"2"]
    assert hub.broker.ledger.bytes == 0 and hub.broker.ledger.messages == 0
    pub = _online(hub, "pub")
    pub.send(encode_publish(b"q/3", b"3" + b"x" * 499, qos=1, mid=4, dup=True))
    assert [(p.type, p.mid) for p in pub.recv()] == [(PUBACK, 4)]
    assert [p[:1] for p in _ack_all(sub)] == [b"3"]


def test_max_queued_bytes_bounds_one_offline_client_not_the_others():
    # as max_queued_messages: past it the message is dropped for that client only, counted
    hub = Hub("max_queued_bytes 1000\n")
    away = _online(hub, "away", [(b"t", 1)], clean_session=False)
    away.lose()
    here = _online(hub, "here", [(b"t", 1)])
    pub = _online(hub, "pub")
    for i in range(3):
        pub.send(encode_publish(b"t", b"%d" % i + b"y" * 399, qos=1, mid=i + 1))
        assert [(p.type, p.mid) for p in pub.recv()] == [(PUBACK, i + 1)]
    assert [p[:1] for p in _ack_all(here)] == [b"0", b"1", b"2"]
    s = hub.broker.sessions["away"]
    assert len(s.queue) == 2 and s.dropped == 1
    assert any("max_queued_bytes 1000 reached" in line for line in hub.lines), hub.lines
    away = _online(hub, "away", clean_session=False)
    assert [p[:1] for p in _ack_all(away)] == [b"0", b"1"]


def test_a_message_is_kept_once_however_many_sessions_hold_it():
    hub = Hub()
    ledger = hub.broker.ledger
    subs = [_online(hub, "s%d" % i, [(b"t", 1)]) for i in range(3)]
    pub = _online(hub, "pub")
    pub.send(encode_publish(b"t", b"p" * 100, qos=1, mid=1, retain=True))
    assert pub.recv()[0].type == PUBACK
    assert ledger.messages == 1 and ledger.bytes == 101 + MESSAGE_OVERHEAD
    for c in subs:
        assert _ack_all(c) == [b"p" * 100]
    assert ledger.messages == 1  # the retained one
    pub.send(encode_publish(b"t", b"", retain=True))
    assert ledger.messages == 0 and ledger.bytes == 0


def test_kept_messages_go_out_from_their_own_buffer_when_the_output_cannot_grow():
    # Three retained messages of 3,900 bytes for a new subscriber, on a heap that has no room
    # for a bigger output buffer: each is sent from the message's own bytes (spooled), one at a
    # time, in order, with what the subscriber sends meanwhile answered after it.
    hub = Hub("max_packet_size 4096\n")
    pub = _online(hub, "pub")
    for i in range(3):
        pub.send(encode_publish(b"ret/%d" % i, b"%d" % i * 3900, qos=1, mid=i + 1, retain=True))
    pub.recv()
    sub = _online(hub, "sub")
    hub.broker.heap_low = lambda n: n > 1000  # room for a subscription, not a 4 KB buffer
    size = len(sub.conn.out)
    sub.send(encode_subscribe(1, [(b"ret/#", 1)]) + encode_simple(PINGREQ))
    got = []
    while True:
        ps = sub.recv()
        if not ps:
            break
        for p in ps:
            got.append(p)
            if p.type == PUBLISH:
                sub.send(encode_ack(PUBACK, p.mid))
    assert [p.type for p in got] == [SUBACK, PUBLISH, PINGRESP, PUBLISH, PUBLISH], got
    # (retained messages come in the table's order, which differs between runtimes)
    assert sorted([p.payload for p in got if p.type == PUBLISH]) == [b"%d" % i * 3900
                                                                     for i in range(3)]
    assert len(sub.conn.out) == size  # never grown for them
    assert not sub.closed


def test_spooled_bytes_survive_any_split_of_the_writes():
    hub = Hub()
    sub = _online(hub, "sub", [(b"big/#", 1), (b"small", 0)])
    hub.broker.copy_max = 0  # every kept message from its own buffer
    pub = _online(hub, "pub")
    pub.send(encode_publish(b"big/a", b"A" * 300, qos=1, mid=1))
    pub.send(encode_publish(b"big/b", b"", qos=1, mid=2))
    pub.send(encode_publish(b"small", b"live"))  # QoS 0 while the first is being spooled
    conn = sub.conn
    want = bytearray()
    step = 1
    n = conn.chunk()
    while n:
        k = min(n, step)
        want += conn.cbuf[conn.coff:conn.coff + k]
        conn.sent(k)
        step = step % 7 + 1
        n = conn.chunk()
        if not n:
            hub.broker.drained(conn)
            n = conn.chunk()
    r = Reader(1 << 20)
    pos = 0
    got = []
    while pos < len(want):
        pos = r.take(want, pos, len(want))
        if r.ready:
            p = decode(r.b0, r.buf, r.start, r.end)
            got.append((p.topic, p.payload, p.qos))
    # the QoS 0 message routed while the first was being spooled comes right after it; the
    # second kept one waited for the spool
    assert got == [(b"big/a", b"A" * 300, 1), (b"small", b"live", 0), (b"big/b", b"", 1)], got


def test_a_will_is_kept_only_when_there_is_room_for_it():
    hub = Hub("memory_limit 1000\n")
    c = hub.client()
    c.send(encode_connect("heavy", will_topic=b"w", will_payload=b"x" * 2000))
    got = c.recv()
    assert got[0].type == CONNACK and got[0].return_code == 3 and c.closed
    ok = hub.client()
    assert ok.connect("light", will_topic=b"w", will_payload=b"bye").return_code == 0
    assert hub.broker.ledger.messages == 1
    ok.send(encode_simple(DISCONNECT))
    assert hub.broker.ledger.messages == 0


def test_an_in_process_publish_that_cannot_be_kept_returns_false():
    hub = Hub("memory_limit 500\n")
    app = hub.broker.local_client("app")
    assert app.publish("t", b"x" * 100, qos=1) is True
    assert app.publish("t", b"x" * 1000, qos=1) is False
    assert app.publish("t", b"x" * 1000, qos=0) is True  # nothing to keep


# ---- one client cannot take every slot (issue 15, item 12) ----------------------------------------

def test_one_client_holds_at_most_its_share_of_the_subscriptions():
    hub = Hub("max_subscriptions 10\n")  # a share of 5 by default
    a = _online(hub, "a")
    filters = [(b"a/%d" % i, 0) for i in range(6)]
    assert a.subscribe(1, filters) == [0, 0, 0, 0, 0, 0x80]
    assert "Subscription of a to 'a/5' refused: max_subscriptions_per_client (5) reached." \
        in hub.lines
    assert a.subscribe(2, [(b"a/0", 1)]) == [1]  # a replacement still works
    b = _online(hub, "b")
    assert b.subscribe(1, [(b"b/%d" % i, 0) for i in range(5)]) == [0] * 5
    hub2 = Hub("max_subscriptions 10\nmax_subscriptions_per_client 10\n")
    a = _online(hub2, "a")
    assert a.subscribe(1, [(b"a/%d" % i, 0) for i in range(10)]) == [0] * 10


def test_one_client_holds_at_most_its_share_of_the_retained_messages():
    hub = Hub("max_retained_messages 4\n")  # a share of 2 by default
    a = _online(hub, "a")
    b = _online(hub, "b")
    for t in (b"a/1", b"a/2", b"a/3"):
        a.send(encode_publish(t, b"x", retain=True))
    assert "Retained message on 'a/3' not kept: max_retained_per_client (2) reached." \
        in hub.lines, hub.lines
    b.send(encode_publish(b"b/1", b"y", retain=True))
    b.send(encode_publish(b"b/2", b"y", retain=True))
    a.send(encode_publish(b"a/1", b"new", retain=True))  # its own: replaced
    a.send(encode_publish(b"b/1", b"mine", retain=True))  # b's, and a is at its share
    w = _online(hub, "w")
    w.send(encode_subscribe(1, [(b"#", 0)]))
    got = sorted((p.topic, p.payload) for p in w.recv() if p.type == PUBLISH)
    assert got == [(b"a/1", b"new"), (b"a/2", b"x"), (b"b/1", b"y"), (b"b/2", b"y")], got
    a.send(encode_publish(b"a/2", b"", retain=True))  # cleared: room for another of a's
    a.send(encode_publish(b"a/3", b"z", retain=True))
    assert hub.broker.retained.owned == {"a": 2, "b": 2}


def test_a_subscription_the_heap_has_no_room_for_is_refused_with_0x80():
    hub = Hub()
    c = _online(hub, "c")
    hub.broker.heap_low = lambda n: True
    assert c.subscribe(1, [(b"a", 0), (b"b/+", 1)]) == [0x80, 0x80]
    assert "Subscription of c to 'a' refused: the heap is nearly full." in hub.lines
    hub.broker.heap_low = lambda n: False
    assert c.subscribe(2, [(b"a", 0)]) == [0]
    assert not c.closed


def _raise_memory_error(*args: object) -> None:
    raise MemoryError


def test_refusals_for_room_share_one_constant_connack():
    # CONNACK 0x03 for max_connections needs no buffer of its own: the heap may be what is
    # short when clients are refused in numbers
    hub = Hub("max_connections 1\n")
    hub.client().connect("first")
    refused = []
    for i in range(2):
        c = hub.client()
        c.send(encode_connect("late-%d" % i))
        assert c.closed
        refused.append(c.conn.cbuf)
    assert bytes(refused[0][:4]) == b"\x20\x02\x00\x03"
    assert refused[0] is refused[1]


class _NoRoom(dict):
    """A session table whose every insertion finds the heap short."""

    def __setitem__(self, key: object, value: object) -> None:
        raise MemoryError


def test_out_of_memory_on_connect_before_the_session_answers_connack_3():
    hub = Hub()
    hub.broker.sessions = _NoRoom()
    c = hub.client()
    c.send(encode_connect("short"))
    assert c.closed
    got = c.recv()
    assert [(p.type, p.return_code) for p in got] == [(CONNACK, 3)], got
    assert hub.broker.connected == 0


def test_out_of_memory_on_connect_after_admission_answers_connack_3():
    # the client counted as connected, and its session was made, when the heap ran out
    # before its CONNACK: it gets 0x03 all the same, and nothing of it stays
    hub = Hub()
    hub.broker._log = _raise_memory_error
    c = hub.client()
    c.send(encode_connect("short"))
    assert c.closed
    got = c.recv()
    assert [(p.type, p.return_code) for p in got] == [(CONNACK, 3)], got
    assert hub.broker.connected == 0
    assert "short" not in hub.broker.sessions


class _NoRoomToAuthorize(Hooks):
    """Hooks whose subscription check finds the heap short: a MemoryError while a SUBSCRIBE is
    handled, after the CONNACK."""

    def may_subscribe(self, *args: object) -> bool:
        raise MemoryError


def test_out_of_memory_after_the_connack_sends_no_second_one():
    hub = Hub()
    _NoRoomToAuthorize().attach(hub.broker)
    c = hub.client()
    c.send(encode_connect("short") + encode_subscribe(1, [("a/b", 0)]))
    assert c.closed
    got = c.recv()
    assert [(p.type, p.return_code) for p in got] == [(CONNACK, 0)], got
