"""In-process clients: same topic rules, retained and QoS semantics as network clients, no socket."""
from harness import Hub
from packets import encode_publish
from broker.const import CONNACK, SUBACK_FAILURE


class Inbox:
    def __init__(self) -> None:
        self.got = []  # type: list

    def __call__(self, topic: bytes, payload: bytes, qos: int, retain: bool) -> None:
        self.got.append((topic, payload, qos, retain))


def test_local_publish_reaches_network_subscriber_at_granted_qos():
    hub = Hub()
    sub = hub.client()
    sub.connect("net-sub")
    assert sub.subscribe(1, [(b"sensor/+", 1)]) == [1]
    sensor = hub.broker.local_client("sensor")
    sensor.publish("sensor/temp", b"21.5", qos=2)
    got = sub.publishes()
    assert [(p.topic, p.payload, p.qos, p.retain) for p in got] == [(b"sensor/temp", b"21.5", 1, False)]


def test_network_publish_reaches_local_subscriber_with_wildcards():
    hub = Hub()
    inbox = Inbox()
    app = hub.broker.local_client("app", inbox)
    assert app.subscribe("cmd/#", 2) == 2
    assert app.subscribe(b"+/led", 0) == 0
    pub = hub.client()
    pub.connect("net-pub")
    pub.send(encode_publish(b"cmd/led", b"on", qos=1, mid=7), split=1)
    # one copy at the highest granted QoS [MQTT-3.3.5-1], QoS 1 completes at once in-process
    assert inbox.got == [(b"cmd/led", b"on", 1, False)]
    pub.send(encode_publish(b"other/x", b"no"))
    assert len(inbox.got) == 1


def test_local_subscriber_gets_retained_messages_with_retain_set():
    # [MQTT-3.3.1-6] [MQTT-3.3.1-8]
    hub = Hub()
    pub = hub.client()
    pub.connect("p")
    pub.send(encode_publish(b"state/door", b"open", qos=1, mid=1, retain=True))
    inbox = Inbox()
    app = hub.broker.local_client("app", inbox)
    app.subscribe("state/#", 0)
    assert inbox.got == [(b"state/door", b"open", 0, True)]


def test_local_retained_publish_is_kept_and_cleared():
    hub = Hub()
    app = hub.broker.local_client("app")
    app.publish("state/lamp", b"on", qos=1, retain=True)
    sub = hub.client()
    sub.connect("s")
    sub.subscribe(1, [(b"state/lamp", 1)])
    got = sub.publishes()
    assert [(p.payload, p.qos, p.retain) for p in got] == [(b"on", 1, True)]
    app.publish("state/lamp", b"", retain=True)  # [MQTT-3.3.1-10]
    assert [p.payload for p in sub.publishes()] == [b""]
    late = hub.client("127.0.0.1:6000")
    late.connect("late")
    late.subscribe(1, [(b"state/#", 0)])
    assert late.publishes() == []


def test_local_publish_and_subscribe_apply_topic_rules():
    hub = Hub()
    app = hub.broker.local_client("app")
    for bad in ("a/+", "a/#", "", "a\x00b"):
        try:
            app.publish(bad, b"x")
            assert False, bad
        except ValueError:
            pass
    for bad in ("a/#/b", "a+", ""):
        try:
            app.subscribe(bad)
            assert False, bad
        except ValueError:
            pass


def test_dollar_topics_and_local_to_local():
    # [MQTT-4.7.2-1]
    hub = Hub()
    inbox = Inbox()
    a = hub.broker.local_client("a", inbox)
    a.subscribe("#")
    b = hub.broker.local_client("b")
    b.publish("$internal/x", b"hidden")
    b.publish("plain/x", b"seen")
    assert [t for t, _, _, _ in inbox.got] == [b"plain/x"]


def test_unsubscribe_and_close_end_delivery():
    hub = Hub()
    inbox = Inbox()
    a = hub.broker.local_client("a", inbox)
    a.subscribe("t")
    assert a.unsubscribe("t")
    hub.broker.publish(b"t", b"1")
    a.subscribe("t")
    a.close()
    hub.broker.publish(b"t", b"2")
    assert inbox.got == []
    assert hub.broker.subs.count == 0 and "a" not in hub.broker.sessions
    try:
        a.publish("t", b"x")
        assert False
    except ValueError:
        pass


def test_full_subscription_table_answers_0x80():
    hub = Hub("max_subscriptions 1\n")
    a = hub.broker.local_client("a")
    assert a.subscribe("x") == 0
    assert a.subscribe("y") == SUBACK_FAILURE


def test_network_client_cannot_take_over_a_local_client_id():
    hub = Hub()
    hub.broker.local_client("hub-sensor")
    c = hub.client()
    ack = c.connect("hub-sensor")
    assert ack.type == CONNACK and ack.return_code == 2
    assert c.closed


def test_local_client_ids_are_unique():
    hub = Hub()
    hub.broker.local_client("dup")
    try:
        hub.broker.local_client("dup")
        assert False
    except ValueError:
        pass
