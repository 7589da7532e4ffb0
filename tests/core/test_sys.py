"""$SYS/broker/... topics, as mosquitto publishes them, every sys_interval seconds."""
from harness import Hub
from packets import encode_publish
from support import MPY


def _values(packets: "list") -> "dict":
    return dict((p.topic.decode(), p.payload.decode()) for p in packets)


def test_sys_topics_published_every_interval_and_move_with_traffic():
    hub = Hub("sys_interval 1\n")
    mon = hub.client()
    mon.connect("monitor")
    mon.subscribe(1, [(b"$SYS/#", 0)])
    hub.advance(1000)
    first = _values(mon.publishes())
    for name in ("version", "uptime", "clients/connected", "clients/maximum", "clients/total",
                 "clients/disconnected", "messages/received", "messages/sent", "bytes/received",
                 "bytes/sent", "publish/messages/received", "publish/messages/sent",
                 "publish/messages/dropped", "retained messages/count", "subscriptions/count",
                 "load/messages/received/1min", "load/bytes/sent/15min",
                 "load/connections/5min"):
        assert "$SYS/broker/" + name in first, name
    assert first["$SYS/broker/clients/connected"] == "1"
    assert first["$SYS/broker/subscriptions/count"] == "1"
    assert first["$SYS/broker/uptime"] == "1 seconds"
    # on MicroPython the heap is worth watching: in use and free, in bytes
    assert ("$SYS/broker/heap/current" in first) == MPY
    if MPY:
        assert int(first["$SYS/broker/heap/current"]) > 0
        assert int(first["$SYS/broker/heap/free"]) > 0
    pub = hub.client("127.0.0.1:6000")
    pub.connect("pub", clean_session=False)
    for i in range(5):
        pub.send(encode_publish(b"data/x", b"%d" % i, retain=(i == 0)))
    hub.advance(1000)
    second = _values(mon.publishes())
    assert second["$SYS/broker/clients/connected"] == "2"
    assert second["$SYS/broker/clients/maximum"] == "2"
    assert int(second["$SYS/broker/publish/messages/received"]) == 5
    assert int(second["$SYS/broker/bytes/received"]) > int(first["$SYS/broker/bytes/received"])
    assert second["$SYS/broker/retained messages/count"] == "1"
    assert float(second["$SYS/broker/load/publish/received/1min"]) > 0
    assert second["$SYS/broker/uptime"] == "2 seconds"
    # unchanged values are not published again (mosquitto does the same)
    assert "$SYS/broker/version" not in second
    pub.lose()
    hub.advance(1000)
    third = _values(mon.publishes())
    assert third["$SYS/broker/clients/disconnected"] == "1"
    assert third["$SYS/broker/clients/connected"] == "1"
    assert "$SYS/broker/clients/maximum" not in third


def test_new_subscriber_gets_current_values_with_retain_but_no_retained_slot_is_used():
    hub = Hub("sys_interval 1\nmax_retained_messages 1\n")
    hub.advance(1000)
    late = hub.client()
    late.connect("late")
    late.subscribe(1, [(b"$SYS/broker/version", 0)])
    got = late.publishes()
    assert len(got) == 1 and got[0].retain and got[0].payload.startswith(b"broker version ")
    assert hub.broker.retained.count == 0


def test_sys_topics_are_not_matched_by_a_leading_wildcard():
    # [MQTT-4.7.2-1]
    hub = Hub("sys_interval 1\n")
    c = hub.client()
    c.connect("all")
    c.subscribe(1, [(b"#", 0), (b"+/broker/#", 0)])
    hub.advance(3000)
    assert c.publishes() == []


def test_sys_interval_0_publishes_nothing_and_loads_nothing():
    hub = Hub("sys_interval 0\n")
    assert hub.broker.sys is None
    c = hub.client()
    c.connect("c")
    c.subscribe(1, [(b"$SYS/#", 0)])
    hub.advance(30000)
    assert c.publishes() == []


def test_sys_values_reach_a_subscriber_in_the_first_interval():
    # a new $SYS subscriber gets the current values at once, also before the first interval
    # after start-up is over (as it does later, and as mosquitto does)
    hub = Hub("sys_interval 10\n")
    mon = hub.client()
    mon.connect("monitor")
    mon.subscribe(1, [(b"$SYS/#", 0)])
    got = _values(mon.publishes())
    assert got["$SYS/broker/version"].startswith("broker version ")
    assert got["$SYS/broker/uptime"] == "0 seconds"
    assert "$SYS/broker/clients/connected" in got


def test_an_unchanged_value_is_neither_made_again_nor_published_again():
    # an interval allocates only for what changed: the smallest heap that runs $SYS is set by
    # what one interval makes at once
    hub = Hub("sys_interval 1\n")
    mon = hub.client()
    mon.connect("monitor")
    mon.subscribe(1, [(b"$SYS/broker/version", 0), (b"$SYS/broker/clients/expired", 0)])
    assert len(mon.publishes()) == 2
    values = hub.broker.sys.values  # type: ignore[union-attr]
    still = (b"$SYS/broker/version", b"$SYS/broker/clients/expired",
             b"$SYS/broker/clients/evicted", b"$SYS/broker/retained messages/count")
    made = [m for m in values if m is not None and m.topic() in still]
    assert len(made) == len(still)
    hub.advance(1000)
    assert mon.publishes() == []
    assert all(any(m is v for v in values) for m in made)


def test_loads_are_shown_with_two_decimals():
    hub = Hub("sys_interval 1\n")
    mon = hub.client()
    mon.connect("monitor")
    mon.subscribe(1, [(b"$SYS/broker/load/connections/1min", 0)])
    assert _values(mon.publishes())["$SYS/broker/load/connections/1min"] == "0.00"
    hub.advance(1000)
    # one connection in a one-second interval: 60 a minute, weighted by 1 - exp(-1/60)
    assert _values(mon.publishes())["$SYS/broker/load/connections/1min"] == "0.99"
