"""A bridge set to `bridge_protocol_version mqttv50`, driven byte by byte: the remote broker is
played by the test, and what the bridge must send is written out by hand. Both runtimes."""
from harness import Hub, drain
from packets import encode_publish, encode_subscribe
from test_engine_v5 import USER_PROPS, connect5, publish5, subscribe5, v5_client, v5_subscriber
from broker import codec
from broker.bridge import IDLE, UP, Bridge

BASE = ("connection cloud\naddress 10.0.0.5:1884\nremote_clientid hub7\nrestart_timeout 2\n"
        "bridge_protocol_version mqttv50\n")


def _s(text: bytes) -> bytes:
    return bytes((len(text) >> 8, len(text) & 0xFF)) + text


def _frame(b0: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes((b0, len(body))) + body


class Remote:
    """The remote broker's side of the link: the packets the bridge wrote, as (first byte,
    body) pairs, and what it is sent."""

    def __init__(self, hub: Hub, bridge: Bridge) -> None:
        self.hub = hub
        self.bridge = bridge
        self.reader = codec.Reader(1 << 20)

    def recv(self) -> "list":
        conn = self.bridge.conn
        data = drain(conn)
        self.hub.broker.drained(conn)
        out = []
        pos = 0
        r = self.reader
        while pos < len(data):
            pos = r.take(data, pos, len(data))
            if r.ready:
                out.append((r.b0, bytes(r.buf[r.start:r.end])))
        return out

    def send(self, data: bytes) -> None:
        buf = bytearray(data)
        self.bridge.feed(buf, len(buf))


def make(topics: str, extra: str = "notifications false\n") -> "tuple":
    hub = Hub(BASE + topics + extra)
    bridge = Bridge(hub.broker, hub.broker.config.bridges[0])
    return hub, bridge, Remote(hub, bridge)


def opened(hub: Hub, bridge: Bridge, remote: Remote) -> bytes:
    """The link is up: the CONNECT's body."""
    assert bridge.due(hub.now)
    bridge.connecting(hub.now)
    bridge.opened(hub.now)
    got = remote.recv()
    assert [b0 for b0, body in got] == [0x10], got
    return got[0][1]


def up(hub: Hub, bridge: Bridge, remote: Remote, props: bytes = b"") -> "list":
    """Connect, the CONNACK with props accepting it; what the bridge sent after it."""
    opened(hub, bridge, remote)
    remote.send(_frame(0x20, b"\x00\x00" + bytes((len(props),)) + props))
    assert bridge.state == UP
    return remote.recv()


def in_flight(bridge: Bridge) -> int:
    return bridge.session.inflight - 1  # (slot 0 is the SUBSCRIBE's)


# ---- CONNECT and CONNACK --------------------------------------------------------------------


def test_connect_at_level_5_keeps_the_remote_session_MQTT_3_1_2_23() -> None:
    hub, bridge, remote = make("topic a out\n", "notifications false\nremote_username u\n"
                                                "remote_password pw\n")
    # protocol level 5 without mosquitto's bridge bit; user name and password, Clean Start 0;
    # keep alive 60; properties: Session Expiry Interval 0xFFFFFFFF (cleansession false: the
    # session outlives the link), Receive Maximum 20 (max_inflight_messages)
    assert opened(hub, bridge, remote) == (
        b"\x00\x04MQTT\x05\xc0\x00\x3c"
        b"\x08\x11\xff\xff\xff\xff\x21\x00\x14"
        b"\x00\x04hub7\x00\x01u\x00\x02pw")


def test_connect_with_cleansession_and_the_notification_will_MQTT_3_1_3_1() -> None:
    hub, bridge, remote = make("topic a out\n", "cleansession true\nmax_packet_size 4096\n")
    # Clean Start, will QoS 1 retained; Receive Maximum 20 and Maximum Packet Size 4096; then
    # the client id, the will's properties (none), topic and payload [MQTT-3.1.3-1]
    assert opened(hub, bridge, remote) == (
        b"\x00\x04MQTT\x05\x2e\x00\x3c"
        b"\x08\x21\x00\x14\x27\x00\x00\x10\x00"
        b"\x00\x04hub7\x00" + _s(b"$SYS/broker/connection/cloud/state") + b"\x00\x010")


def test_subscribe_with_no_local_and_retain_as_published_MQTT_3_8_3_3() -> None:
    hub, bridge, remote = make("topic cmd/# in 1\ntopic up/# both 2\ntopic x out 1\n")
    got = up(hub, bridge, remote)
    # as mosquitto's v5 bridge: each `in` or `both` topic with No Local 0x04 (the bridge's
    # own messages do not come back) and Retain As Published 0x08 [MQTT-3.3.1-13]; no
    # properties
    assert got == [(0x82, b"\x00\x01\x00" + _s(b"cmd/#") + b"\x0d" + _s(b"up/#") + b"\x0e")]
    remote.send(_frame(0x90, b"\x00\x01\x03\x1f\x00\x00\x01\x87"))  # a Reason String, empty
    assert "refused the subscription to 'up/#' (0x87)" in hub.log_text()
    assert "'cmd/#'" not in hub.log_text()


def test_refusal_with_a_reason_code_and_string() -> None:
    hub, bridge, remote = make("topic a\n")
    opened(hub, bridge, remote)
    remote.send(_frame(0x20, b"\x00\x87\x05\x1f\x00\x02no"))
    assert bridge.must_close
    assert "the remote broker says: no" in hub.log_text()
    assert "connection refused (0x87)" in hub.log_text()


def test_a_311_broker_is_connected_to_again_as_its_client() -> None:
    # a broker that does not know level 5 answers CONNACK 0x01 (3.1.1's two bytes): the bridge
    # connects again at once at 3.1.1, as mosquitto's v5 bridge does
    hub, bridge, remote = make("topic a/# both 1\n")
    opened(hub, bridge, remote)
    remote.send(b"\x20\x02\x00\x01")
    assert bridge.must_close
    bridge.lost(hub.now, "closed")
    assert bridge.state == IDLE and bridge.due(hub.now)
    assert opened(hub, bridge, remote)[6] == 0x84  # 3.1.1 with the bridge bit (try_private)
    remote.send(b"\x20\x02\x00\x00")
    assert remote.recv() == [(0x82, b"\x00\x01" + _s(b"a/#") + b"\x01")]
    local = hub.client()
    local.connect("p")
    local.send(encode_publish(b"a/b", b"x", qos=0))
    assert remote.recv() == [(0x30, _s(b"a/b") + b"x")]


def test_the_remote_keep_alive_replaces_the_bridge_s_MQTT_3_2_2_21() -> None:
    hub, bridge, remote = make("topic a\n")
    up(hub, bridge, remote, b"\x13\x00\x0a")  # Server Keep Alive 10
    hub.advance(9000)
    bridge.tick(hub.now)
    assert remote.recv() == []
    hub.advance(1000)
    bridge.tick(hub.now)
    assert remote.recv() == [(0xC0, b"")]  # PINGREQ after 10 s, not 60
    hub.advance(5500)
    bridge.tick(hub.now)  # over 15 s without a packet from the remote: 1.5 times 10
    assert bridge.must_close


def test_v5_code_only_for_a_bridge_set_to_mqttv50() -> None:
    hub = Hub("connection c\naddress h\ntopic a\n")
    bridge = Bridge(hub.broker, hub.broker.config.bridges[0])
    assert bridge.v5 is None and hub.broker.v5 is None
    hub, bridge, remote = make("topic a\n")
    assert bridge.v5 is not None and hub.broker.v5 is not None


# ---- PUBLISH both ways ----------------------------------------------------------------------


def test_user_properties_go_out_in_their_order_MQTT_3_3_2_17_MQTT_3_3_2_18() -> None:
    hub, bridge, remote = make("topic s/# out 1\n")
    up(hub, bridge, remote)
    pub = hub.client()
    pub.send(connect5(b"pub"))
    drain(pub.conn)
    pub.send(publish5(b"s/t", b"21", qos=1, mid=7, props=USER_PROPS))
    pub.send(publish5(b"s/u", b"0", qos=0, props=b"\x03" + _s(b"text/plain")))
    got = remote.recv()
    assert got == [
        (0x32, _s(b"s/t") + b"\x00\x02" + bytes((len(USER_PROPS),)) + USER_PROPS + b"21"),
        (0x30, _s(b"s/u") + b"\x0d\x03" + _s(b"text/plain") + b"0")]
    remote.send(b"\x40\x02\x00\x02")
    assert not in_flight(bridge)


def test_user_properties_come_in_to_v5_subscribers_only_MQTT_3_3_2_17() -> None:
    hub, bridge, remote = make("topic cmd/# in 1 site/ hub7/\n")
    up(hub, bridge, remote)
    sub5 = v5_subscriber(hub, b"s5", b"site/#", 1)
    sub3 = hub.client("127.0.0.1:7000")
    sub3.connect("s3")
    sub3.subscribe(1, [(b"site/#", 1)])
    props = USER_PROPS + b"\x02\x00\x00\x00\x1e"  # and a Message Expiry Interval of 30 s
    remote.send(publish5(b"hub7/cmd/led", b"on", qos=1, mid=9, props=props))
    assert remote.recv() == [(0x40, b"\x00\x09")]  # routed, then acknowledged
    # the v5 subscriber: what is left of the expiry first, then the User Properties as they
    # came [MQTT-3.3.2-6]
    assert drain(sub5.conn) == _frame(0x32, _s(b"site/cmd/led") + b"\x00\x01"
                                      + bytes((len(props),)) + b"\x02\x00\x00\x00\x1e"
                                      + USER_PROPS + b"on")
    assert [(p.topic, p.payload) for p in sub3.publishes()] == [(b"site/cmd/led", b"on")]


def test_a_retained_message_keeps_its_properties_here() -> None:
    hub, bridge, remote = make("topic r/# in 1\n")
    up(hub, bridge, remote)
    remote.send(publish5(b"r/1", b"v", qos=1, mid=3, props=USER_PROPS, retain=True))
    late = v5_client(hub, b"late")
    late.send(subscribe5(1, b"r/#", 1))
    # the SUBACK, then the retained message with its properties, RETAIN set (Retain As
    # Published kept it on the way in)
    assert drain(late.conn) == b"\x90\x04\x00\x01\x00\x01" + _frame(
        0x33, _s(b"r/1") + b"\x00\x01" + bytes((len(USER_PROPS),)) + USER_PROPS + b"v")


def test_a_message_waiting_for_the_link_counts_its_expiry_down_MQTT_3_3_2_5() -> None:
    hub, bridge, remote = make("topic e/# out 1\n")
    pub = hub.client()
    pub.send(connect5(b"pub"))
    drain(pub.conn)
    pub.send(publish5(b"e/short", b"s", qos=1, mid=1, props=b"\x02\x00\x00\x00\x02"))
    pub.send(publish5(b"e/long", b"l", qos=1, mid=2, props=b"\x02\x00\x00\x00\x0a"))
    hub.advance(4000)
    got = up(hub, bridge, remote)
    # e/short expired while it waited; e/long goes with 6 of its 10 s left [MQTT-3.3.2-6]
    assert got == [(0x32, _s(b"e/long") + b"\x00\x02\x05\x02\x00\x00\x00\x06l")]


# ---- the remote broker's limits -------------------------------------------------------------


def test_the_remote_receive_maximum_bounds_what_is_in_flight_MQTT_3_3_4_7() -> None:
    hub, bridge, remote = make("topic q/# out 1\n")
    up(hub, bridge, remote, b"\x21\x00\x02")  # Receive Maximum 2
    app = hub.broker.local_client("app")
    for i in range(4):
        app.publish("q/%d" % i, b"x", qos=1)
    got = remote.recv()
    assert [body[:5] for b0, body in got] == [_s(b"q/0"), _s(b"q/1")]
    remote.send(b"\x40\x02" + got[0][1][5:7])
    assert [body[:5] for b0, body in remote.recv()] == [_s(b"q/2")]
    assert in_flight(bridge) == 2


def test_nothing_larger_than_the_remote_maximum_packet_size_MQTT_3_2_2_15() -> None:
    hub, bridge, remote = make("topic m/# out 1\n", "notifications false\n")
    up(hub, bridge, remote, b"\x27\x00\x00\x00\x14")  # Maximum Packet Size 20
    app = hub.broker.local_client("app")
    app.publish("m/big", b"x" * 20, qos=1)  # 33 bytes: dropped as if sent
    app.publish("m/big0", b"y" * 20, qos=0)
    app.publish("m/s", b"ok", qos=1)  # 12 bytes
    assert remote.recv() == [(0x32, _s(b"m/s") + b"\x00\x02\x00ok")]
    bridge.tick(hub.now)
    assert bridge.session.dropped == 2
    assert hub.broker.messages_dropped == 2
    assert "1 message(s) larger than the remote broker's Maximum Packet Size" in hub.log_text()


def test_the_remote_maximum_qos_and_retain_available_MQTT_3_2_2_11_MQTT_3_2_2_14() -> None:
    hub, bridge, remote = make("topic o/# out 2\ntopic i/# in 2\n")
    # Maximum QoS 1, Retain Available 0
    got = up(hub, bridge, remote, b"\x24\x01\x25\x00")
    assert got == [(0x82, b"\x00\x01\x00" + _s(b"i/#") + b"\x0d")]  # subscribed at QoS 1
    hub.broker.local_client("app").publish("o/1", b"r", qos=2, retain=True)
    assert remote.recv() == [(0x32, _s(b"o/1") + b"\x00\x02\x00r")]


# ---- acknowledgements and DISCONNECT --------------------------------------------------------


def test_a_refusing_acknowledgement_ends_the_delivery_MQTT_3_3_4_7() -> None:
    hub, bridge, remote = make("topic a/# out 2\n")
    up(hub, bridge, remote)
    app = hub.broker.local_client("app")
    app.publish("a/1", b"1", qos=2)
    app.publish("a/2", b"2", qos=2)
    got = remote.recv()
    assert len(got) == 2 and in_flight(bridge) == 2
    remote.send(b"\x50\x03" + got[0][1][5:7] + b"\x87")  # PUBREC 0x87: no PUBREL
    remote.send(b"\x50\x04" + got[1][1][5:7] + b"\x10\x00")  # 0x10: a PUBREL follows
    assert remote.recv() == [(0x62, got[1][1][5:7])]
    assert in_flight(bridge) == 1
    assert "refused message %d (0x87)" % ((got[0][1][5] << 8) | got[0][1][6]) \
        in hub.log_text()


def test_disconnect_from_the_remote_is_logged_and_the_bridge_reconnects() -> None:
    hub, bridge, remote = make("topic a\n")
    up(hub, bridge, remote)
    remote.send(_frame(0xE0, b"\x8b\x07\x1f\x00\x04down"))  # 0x8B Server shutting down
    assert bridge.must_close
    assert "the remote broker disconnected (0x8b: down)" in hub.log_text()
    bridge.lost(hub.now, "")
    hub.advance(2000)
    assert bridge.due(hub.now)


def test_a_topic_alias_it_was_not_allowed_is_answered_with_disconnect_MQTT_3_1_2_27() -> None:
    hub, bridge, remote = make("topic a\n")
    up(hub, bridge, remote)
    remote.send(publish5(b"a", b"x", props=b"\x23\x00\x01"))
    # DISCONNECT 0x94 Topic Alias invalid, then the link closes [MQTT-4.13.1-1]
    assert remote.recv() == [(0xE0, b"\x94")]
    assert bridge.must_close


def test_a_malformed_property_is_answered_with_disconnect_MQTT_4_13_1_1() -> None:
    hub, bridge, remote = make("topic a in\n")
    up(hub, bridge, remote)
    remote.send(publish5(b"a", b"x", props=b"\x99\x00"))  # no such property
    assert remote.recv() == [(0xE0, b"\x81")]
    assert bridge.must_close


def test_a_311_publisher_s_message_goes_out_with_no_properties() -> None:
    hub, bridge, remote = make("topic p/# out 0\n")
    up(hub, bridge, remote)
    pub = hub.client()
    pub.connect("p3")
    pub.send(encode_publish(b"p/1", b"a", qos=0, retain=True))
    pub.send(encode_subscribe(1, [(b"z", 0)]))
    assert remote.recv() == [(0x31, _s(b"p/1") + b"\x00a")]


def test_connect_of_a_v5_subscriber_here_keeps_working() -> None:
    # the bridge loaded broker.v5 first: a v5 client that connects afterwards shares it
    hub, bridge, remote = make("topic a\n")
    c = hub.client()
    c.send(connect5(b"x"))
    assert drain(c.conn)[:4] == b"\x20\x09\x00\x00"  # (Receive Maximum, Topic Alias Maximum)
