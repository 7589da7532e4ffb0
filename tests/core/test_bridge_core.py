"""broker.bridge driven byte by byte: the remote broker is played by the test. Both runtimes."""
from harness import Hub, drain
import packets
from packets import encode_ack, encode_publish, encode_suback
from broker import codec
from broker.bridge import IDLE, UP, Bridge
from broker.const import (
    CONNECT, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBSCRIBE,
)

BASE = ("connection cloud\naddress 10.0.0.5:1884\nremote_clientid hub7\nrestart_timeout 2\n")


class Remote:
    """The remote broker's side of one bridge: what the bridge wrote, and what it is sent."""

    def __init__(self, hub: Hub, bridge: Bridge) -> None:
        self.hub = hub
        self.bridge = bridge
        self.reader = codec.Reader(1 << 20)

    def recv(self) -> "list":
        """What the bridge sent, taken as its port takes it; then what waited for room in the
        output goes in (for the next call)."""
        conn = self.bridge.conn
        data = drain(conn)
        self.hub.broker.drained(conn)
        out = []
        pos = 0
        while pos < len(data):
            pos = self.reader.take(data, pos, len(data))
            if self.reader.ready:
                r = self.reader
                body = bytearray(r.buf[r.start:r.end])
                level = 0
                if r.b0 >> 4 == CONNECT:
                    # the decoder reads past the level only for 3 and 4: take the bridge bit off
                    i = 2 + body[1]
                    level = body[i]
                    body[i] = level & 0x7F
                p = packets.decode(r.b0, body, 0, len(body))
                if level:
                    p.connect.protocol_level = level
                out.append(p)
        return out

    def send(self, data: bytes, split: int = 0) -> None:
        step = split or len(data)
        for i in range(0, len(data), step):
            chunk = bytearray(data[i:i + step])
            self.bridge.feed(chunk, len(chunk))


def make(topics: str, extra: str = "") -> "tuple":
    hub = Hub(BASE + topics + extra)
    bridge = Bridge(hub.broker, hub.broker.config.bridges[0])
    return hub, bridge, Remote(hub, bridge)


def up(hub: Hub, bridge: Bridge, remote: Remote, present: bool = False) -> "list":
    """Connect: the CONNECT is checked, CONNACK accepted; returns what followed it."""
    assert bridge.due(hub.now)
    bridge.connecting(hub.now)
    bridge.opened(hub.now)
    got = remote.recv()
    assert [p.type for p in got] == [CONNECT], got
    remote.send(packets.encode_connack(present, 0), split=1)
    assert bridge.state == UP
    return remote.recv()


def in_flight(bridge: Bridge) -> int:
    """Messages sent and not yet acknowledged (the window's slot 0 is the SUBSCRIBE's)."""
    return bridge.session.inflight - 1


def down(hub: Hub, bridge: Bridge) -> None:
    bridge.lost(hub.now, "test")
    assert bridge.state == IDLE


def test_connect_carries_the_settings_and_a_will() -> None:
    hub, bridge, remote = make("topic a out\n", "remote_username u\nremote_password pw\n"
                                                "keepalive_interval 30\n")
    bridge.connecting(hub.now)
    bridge.opened(hub.now)
    got = remote.recv()
    assert len(got) == 1 and got[0].type == CONNECT
    c = got[0].connect
    # try_private: mosquitto's bridge flag on the protocol level; 3.1.1 otherwise
    assert c.protocol_name == "MQTT" and c.protocol_level == 0x84
    assert c.client_id == "hub7" and not c.clean_session and c.keepalive == 30
    assert c.username == "u" and c.password == b"pw"
    # notifications: the remote broker publishes 0 for us if the link dies
    assert c.will_topic == b"$SYS/broker/connection/cloud/state" and c.will_payload == b"0"
    assert c.will_qos == 1 and c.will_retain


def test_after_connack_notifications_and_subscribe() -> None:
    hub, bridge, remote = make("topic cmd/# in 1 site/ hub7/\ntopic up/# out 1\n")
    state = []  # type: list
    hub.broker.local_client("watch", lambda t, p, q, r: state.append((t, p, r))).subscribe(
        "$SYS/broker/connection/+/state")
    got = up(hub, bridge, remote)
    assert [p.type for p in got] == [PUBLISH, SUBSCRIBE], got
    assert (got[0].topic, got[0].payload, got[0].qos, got[0].retain) == \
        (b"$SYS/broker/connection/cloud/state", b"1", 1, True)
    assert got[1].topics == [(b"hub7/cmd/#", 1)]
    assert state == [(b"$SYS/broker/connection/cloud/state", b"1", False)]
    assert hub.broker.retained.count == 1  # the state is retained locally
    remote.send(encode_suback(got[1].mid, [0x80]))
    assert "refused the subscription to 'hub7/cmd/#'" in hub.log_text()


def test_out_with_prefixes_and_wildcards_qos1_acknowledged() -> None:
    hub, bridge, remote = make("topic +/temp out 1 site/ hub7/\n", "notifications false\n")
    up(hub, bridge, remote)
    pub = hub.client()
    pub.connect("sensor")
    pub.send(encode_publish(b"site/kitchen/temp", b"21", qos=1, mid=3))
    assert [p.type for p in pub.recv()] == [PUBACK]
    pub.send(encode_publish(b"site/kitchen/hum", b"40", qos=1, mid=4))  # no rule: stays local
    pub.send(encode_publish(b"kitchen/temp", b"x", qos=1, mid=5))  # no local prefix
    got = remote.recv()
    assert [(p.topic, p.payload, p.qos) for p in got] == [(b"hub7/kitchen/temp", b"21", 1)]
    assert in_flight(bridge) == 1
    remote.send(encode_ack(PUBACK, got[0].mid))
    assert not in_flight(bridge)


def test_in_with_prefixes_routes_then_acknowledges() -> None:
    hub, bridge, remote = make("topic cmd/# in 1 site/ hub7/\n", "notifications false\n")
    up(hub, bridge, remote)
    sub = hub.client()
    sub.connect("actuator")
    sub.subscribe(1, [(b"site/cmd/#", 1)])
    remote.send(encode_publish(b"hub7/cmd/led", b"on", qos=1, mid=9), split=2)
    got = sub.publishes()
    assert [(p.topic, p.payload, p.qos) for p in got] == [(b"site/cmd/led", b"on", 1)]
    acks = remote.recv()
    assert [(p.type, p.mid) for p in acks] == [(PUBACK, 9)]


def test_messages_that_came_in_do_not_go_back_out() -> None:
    hub, bridge, remote = make("topic # both 1\n", "notifications false\n")
    assert [p.type for p in up(hub, bridge, remote)] == [SUBSCRIBE]
    sub = hub.client()
    sub.connect("display")
    sub.subscribe(1, [(b"#", 0)])
    remote.send(encode_publish(b"a/b", b"x", qos=1, mid=2))
    assert [p.topic for p in sub.publishes()] == [b"a/b"]
    assert [p.type for p in remote.recv()] == [PUBACK]  # and no PUBLISH back
    local = hub.client("127.0.0.1:6000")
    local.connect("local-pub")
    local.send(encode_publish(b"c/d", b"y", qos=0))
    assert [p.topic for p in remote.recv()] == [b"c/d"]  # a local message does go out


def test_queue_while_down_keeps_order_bounds_and_counts() -> None:
    hub, bridge, remote = make("topic q/# out 1\n", "notifications false\n"
                                                    "bridge_max_queued_messages 3\n"
                                                    "max_inflight_messages 2\n")
    hub.broker.local_client("app").publish("q/early", b"0", qos=1)  # never connected yet
    first = up(hub, bridge, remote)
    assert [p.payload for p in first] == [b"0"]
    down(hub, bridge)  # q/early is in flight, unacknowledged
    app = hub.broker.local_client("app2")
    for i in range(1, 6):
        app.publish("q/%d" % i, str(i).encode(), qos=1)
    assert len(bridge.session.queue) == 3 and bridge.session.dropped == 2
    assert "bridge_max_queued_messages 3 reached" in hub.log_text()
    app.publish("q/zero", b"z", qos=0)  # QoS 0 is not kept while the link is down
    assert bridge.session.dropped == 3
    hub.advance(2000)  # restart_timeout 2
    got = up(hub, bridge, remote, present=True)
    # the unacknowledged one again first, DUP set, same identifier [MQTT-4.4.0-1]; then the
    # queue in order, two in flight at a time
    assert [(p.payload, p.dup) for p in got] == [(b"0", True), (b"1", False)]
    assert got[0].mid == first[0].mid
    remote.send(encode_ack(PUBACK, got[0].mid) + encode_ack(PUBACK, got[1].mid))
    got = remote.recv()
    assert [p.payload for p in got] == [b"2", b"3"]
    for p in got:
        remote.send(encode_ack(PUBACK, p.mid))
    assert not in_flight(bridge) and not bridge.session.queue and not remote.recv()


def test_messages_larger_than_the_output_go_one_at_a_time() -> None:
    # as a client's: each is sent from its own buffer, and the next waits in the queue until
    # the output is out (broker.delivery), so that the output never grows to their size
    hub, bridge, remote = make("topic big/# out 1\n", "notifications false\n"
                                                      "max_packet_size 2048\n")
    up(hub, bridge, remote)
    app = hub.broker.local_client("app")
    big = [bytes((0x41 + i,)) * 10000 for i in range(3)]
    for i in range(3):
        app.publish("big/%d" % i, big[i], qos=1)
    assert len(bridge.session.queue) == 2 and len(bridge.conn.out) < 10000
    got = []  # type: list
    for i in range(3):
        got += remote.recv()
    assert [(p.topic, p.payload) for p in got] == [(b"big/0", big[0]), (b"big/1", big[1]),
                                                   (b"big/2", big[2])]


def test_the_subscribe_identifier_is_never_a_publish_one() -> None:
    # [MQTT-2.3.1-2]: the SUBSCRIBE's packet identifier stays its own while it is unanswered
    hub, bridge, remote = make("topic in/# in 1\ntopic out/# out 1\n",
                               "notifications false\nmax_inflight_messages 3\n")
    sub = up(hub, bridge, remote)
    assert [p.type for p in sub] == [SUBSCRIBE]
    app = hub.broker.local_client("app")
    mids = []
    for i in range(20):
        app.publish("out/%d" % i, b"x", qos=1)
        for p in remote.recv():
            mids.append(p.mid)
            remote.send(encode_ack(PUBACK, p.mid))
    assert len(mids) == 20 and sub[0].mid not in mids


def test_qos2_both_ways_exactly_once() -> None:
    hub, bridge, remote = make("topic out2 out 2\ntopic in2 in 2\n", "notifications false\n")
    up(hub, bridge, remote)
    got = []  # type: list
    hub.broker.local_client("app", lambda t, p, q, r: got.append((t, q))).subscribe("in2", 2)
    hub.broker.local_client("pub").publish("out2", b"x", qos=2)
    p = remote.recv()[0]
    assert (p.topic, p.qos) == (b"out2", 2)
    remote.send(encode_ack(PUBREC, p.mid))
    assert [(a.type, a.mid) for a in remote.recv()] == [(PUBREL, p.mid)]  # [MQTT-4.3.3-1]
    remote.send(encode_ack(PUBCOMP, p.mid))
    assert not in_flight(bridge)
    incoming = encode_publish(b"in2", b"y", qos=2, mid=40)
    remote.send(incoming)
    remote.send(encode_publish(b"in2", b"y", qos=2, mid=40, dup=True))  # re-sent
    assert got == [(b"in2", 2)]
    assert [(a.type, a.mid) for a in remote.recv()] == [(PUBREC, 40), (PUBREC, 40)]
    remote.send(encode_ack(PUBREL, 40))
    assert [(a.type, a.mid) for a in remote.recv()] == [(PUBCOMP, 40)]  # [MQTT-4.3.3-2]


def test_retained_messages_cross_both_ways() -> None:
    hub, bridge, remote = make("topic r/# both 1\n", "notifications false\n")
    hub.broker.local_client("app").publish("r/old", b"kept", qos=1, retain=True)
    got = up(hub, bridge, remote)
    assert [(p.type, p.topic, p.retain) for p in got] == [(SUBSCRIBE, b"", False),
                                                          (PUBLISH, b"r/old", True)]
    remote.send(encode_publish(b"r/remote", b"v", qos=1, mid=5, retain=True))
    seen = []  # type: list
    hub.broker.local_client("late", lambda t, p, q, r: seen.append((t, r))).subscribe("r/#")
    assert (b"r/remote", True) in seen and (b"r/old", True) in seen


def test_try_private_falls_back_to_a_plain_client() -> None:
    hub, bridge, remote = make("topic a\n")
    bridge.connecting(hub.now)
    bridge.opened(hub.now)
    remote.recv()
    remote.send(packets.encode_connack(False, 1))  # unacceptable protocol version
    assert bridge.must_close
    down(hub, bridge)
    assert bridge.due(hub.now)  # at once, not after the back-off
    bridge.connecting(hub.now)
    bridge.opened(hub.now)
    assert remote.recv()[0].connect.protocol_level == 4


def test_refusal_and_backoff() -> None:
    hub, bridge, remote = make("topic a\n", "restart_timeout 2 8\n")
    waits = []
    for i in range(6):
        bridge.connecting(hub.now)
        bridge.opened(hub.now)
        remote.recv()
        remote.send(packets.encode_connack(False, 5))
        assert bridge.must_close
        start = hub.now
        down(hub, bridge)
        assert not bridge.due(hub.now)
        while not bridge.due(hub.now):
            hub.advance(250)
        waits.append(hub.now - start)
    assert "connection refused (not authorised)" in hub.log_text()
    assert min(waits) >= 2000 and max(waits) <= 8250, waits
    assert max(waits) > 2250, waits  # it does back off


def test_keepalive_ping_and_timeout() -> None:
    hub, bridge, remote = make("topic a\n", "keepalive_interval 5\nnotifications false\n")
    up(hub, bridge, remote)
    hub.advance(5000)
    bridge.tick(hub.now)
    assert [p.type for p in remote.recv()] == [PINGREQ]
    remote.send(packets.encode_simple(PINGRESP))
    hub.advance(5000)
    bridge.tick(hub.now)
    assert [p.type for p in remote.recv()] == [PINGREQ]
    hub.advance(3000)  # no answer: 1.5 times the keepalive since the last packet
    bridge.tick(hub.now)
    assert bridge.must_close


def test_link_lost_notifies_zero_locally() -> None:
    hub, bridge, remote = make("topic a\n")
    states = []  # type: list
    hub.broker.local_client("w", lambda t, p, q, r: states.append(p)).subscribe(
        "$SYS/broker/connection/cloud/state")
    up(hub, bridge, remote)
    down(hub, bridge)
    assert states == [b"1", b"0"]


def test_stop_says_zero_and_disconnects() -> None:
    hub, bridge, remote = make("topic a\n")
    up(hub, bridge, remote)
    bridge.stop()
    got = remote.recv()
    assert [(p.type, p.payload) for p in got] == [(PUBLISH, b"0"), (DISCONNECT, b"")]
    assert bridge.must_close


def test_garbage_from_the_remote_closes_the_link_only() -> None:
    hub, bridge, remote = make("topic a\n")
    up(hub, bridge, remote)
    remote.send(packets.encode_subscribe(1, [(b"x", 0)]))
    assert bridge.must_close
    assert "malformed" in hub.log_text()


def test_an_incoming_topic_too_long_here_is_dropped_and_acknowledged() -> None:
    hub, bridge, remote = make("topic # in 1\n", "notifications false\nmax_topic_length 8\n")
    up(hub, bridge, remote)
    remote.send(encode_publish(b"far/too/long/topic", b"x", qos=1, mid=3))
    assert [(p.type, p.mid) for p in remote.recv()] == [(PUBACK, 3)]
    assert "longer than max_topic_length" in hub.log_text()
    assert bridge.state == UP and not bridge.must_close


def test_an_incoming_topic_with_bad_utf8_closes_the_link() -> None:
    # [MQTT-1.5.3-1]: ill-formed UTF-8 closes the network connection
    hub, bridge, remote = make("topic # in 1\n", "notifications false\n")
    up(hub, bridge, remote)
    remote.send(encode_publish(b"bad\xff", b"x", qos=1, mid=4))
    assert bridge.must_close and not remote.recv()
