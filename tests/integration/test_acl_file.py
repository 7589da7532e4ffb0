"""acl_file over real sockets, on both runtimes, with paho-mqtt clients: denied PUBLISH dropped
(but acknowledged), SUBACK 0x80, a '#' subscriber that receives only what it may read, patterns
with %c and %u, the anonymous section, $SYS only where granted, a malformed file at start-up."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.own_broker  # our SUBSCRIBE rule (overlap) and log lines

ACL = """# anonymous clients
topic read public/#
topic anon/rw

user alice
topic alice/#
topic write sensors/+/temp
topic read sensors/#

user bob
topic read $SYS/#
topic readwrite #

pattern readwrite clients/%c/#
pattern read users/%u/inbox
"""


def start(broker_factory, tmp_path, extra=()):
    path = tmp_path / "broker.acl"
    path.write_text(ACL)
    return broker_factory(["acl_file %s" % path, "allow_anonymous true", *extra])


def user(mqtt_client, broker, client_id, name=None):
    c = mqtt_client(broker, client_id, connect=False)
    if name is not None:
        c.client.username_pw_set(name)
    c.connect()
    return c


def test_publish_subscribe_and_delivery(broker_factory, mqtt_client, tmp_path):
    b = start(broker_factory, tmp_path)
    alice = user(mqtt_client, b, "alice-1", "alice")
    bob = user(mqtt_client, b, "bob-1", "bob")
    anon = user(mqtt_client, b, "anon-1")

    # SUBACK: 0x80 for a filter no read rule overlaps
    assert anon.subscribe([("public/+", 1), ("private/#", 0), ("anon/rw", 2)]) == [1, 0x80, 2]
    b.wait_log(lambda t: "Denied SUBSCRIBE of anon-1 to 'private/#' (acl_file)." in t)

    # a '#' subscriber receives only what it may read
    assert alice.subscribe("#", 1) == [1]
    bob.publish("secret/x", b"no", qos=1)
    bob.publish("sensors/k/temp", b"yes", qos=1)
    m = alice.get()
    assert (m.topic, m.payload) == ("sensors/k/temp", b"yes")
    alice.assert_no_message()

    # a denied PUBLISH is acknowledged (QoS 1 and 2 complete) and dropped
    assert bob.subscribe("#", 0) == [0]
    alice.publish("sensors/k/hum", b"dropped", qos=1)
    alice.publish("other", b"dropped", qos=2)
    alice.publish("alice/x", b"kept", qos=1)
    m = bob.get()
    assert (m.topic, m.payload) == ("alice/x", b"kept")
    bob.assert_no_message()
    b.wait_log(lambda t: "Denied PUBLISH from alice-1 to 'sensors/k/hum' (acl_file)." in t)

    # readwrite by default in the anonymous section
    anon.publish("anon/rw", b"rw", qos=1)
    assert anon.get().topic == "anon/rw"


def test_patterns_and_sys(broker_factory, mqtt_client, tmp_path):
    b = start(broker_factory, tmp_path, ["sys_interval 1"])
    dev = user(mqtt_client, b, "dev1")
    assert dev.subscribe([("clients/dev1/#", 1), ("clients/dev2/#", 1)]) == [1, 0x80]
    carol = user(mqtt_client, b, "carol-1", "carol")
    assert carol.subscribe([("users/carol/inbox", 0), ("users/dave/inbox", 0)]) == [0, 0x80]
    carol.publish("clients/dev1/cmd", b"not hers", qos=1)
    dev.publish("clients/dev1/cmd", b"his", qos=1)
    assert dev.get().payload == b"his"
    dev.assert_no_message()

    assert carol.subscribe("$SYS/#", 0) == [0x80]
    bob = user(mqtt_client, b, "bob-2", "bob")
    assert bob.subscribe("$SYS/broker/uptime", 0) == [0]
    assert bob.get(timeout=5).topic == "$SYS/broker/uptime"


def test_malformed_acl_file_stops_start_up(broker_factory, tmp_path):
    path = tmp_path / "bad.acl"
    path.write_text("topic read a\n\nuser x\ntopic read a/#/b\n")
    b = broker_factory(["acl_file %s" % path], start=False)
    b.start(["acl_file %s" % path], wait=False)
    assert b.wait_exit() != 0
    assert "%s:4: invalid topic filter 'a/#/b'" % path in b.log(), b.log()
