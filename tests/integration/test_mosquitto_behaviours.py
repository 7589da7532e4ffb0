"""What a mosquitto 2.0 user relies on, where the specification leaves room (issue 15), on every
broker kind; `BROKER_UNDER_TEST=mosquitto` checks that the reference broker does the same.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from raw_mqtt import (
    PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, UNSUBACK, ack_packet, packet, publish_packet,
    subscribe_packet, unsubscribe_packet,
)

pytestmark = pytest.mark.integration

WAIT = 5.0


def _with_dup(raw: bytes) -> bytes:
    return bytes([raw[0] | 0x08]) + raw[1:]


def test_client_publishes_into_sys_are_acknowledged_not_delivered(broker_factory, raw_client):
    b = broker_factory(["sys_interval 0"])
    watcher = raw_client(b)
    assert watcher.connect("watcher").return_code == 0
    assert watcher.subscribe([("$SYS/broker/version", 1), ("marker", 1)]) == [1, 1]
    pub = raw_client(b)
    assert pub.connect("sys-writer").return_code == 0
    # acknowledged per QoS as usual (publish() checks PUBACK, PUBREC/PUBCOMP), never routed
    for qos in (0, 1, 2):
        pub.publish("$SYS/broker/version", b"fake %d" % qos, qos=qos, retain=True,
                    packet_id=qos + 1)
    pub.publish("marker", b"m", qos=1, packet_id=9)
    p = watcher.recv_packet(WAIT)
    assert (p.type, p.topic, p.payload) == (PUBLISH, "marker", b"m"), p
    # and never retained
    late = raw_client(b)
    assert late.connect("late").return_code == 0
    assert late.subscribe([("$SYS/broker/version", 0), ("marker", 0)]) == [0, 0]
    late.send(publish_packet("marker", b"end"))
    p = late.recv_packet(WAIT)
    assert (p.topic, p.payload) == ("marker", b"end"), p


def test_qos2_pubrec_before_the_message_goes_onward(broker, raw_client):
    c = raw_client(broker)
    assert c.connect("echo").return_code == 0
    assert c.subscribe([("echo/t", 2)]) == [2]
    c.send(publish_packet("echo/t", b"x", qos=2, packet_id=4))
    first = c.recv_packet(WAIT)
    assert (first.type, first.packet_id) == (PUBREC, 4), first
    c.send(ack_packet(PUBREL, 4))
    rest = [c.recv_packet(WAIT), c.recv_packet(WAIT)]
    assert sorted(p.type for p in rest) == sorted([PUBLISH, PUBCOMP]), rest


def test_mqtt31_client_resends_with_dup_set(broker, raw_client):
    # MQTT 3.1 sent PUBREL, SUBSCRIBE and UNSUBSCRIBE at QoS 1 with DUP on a re-send
    c = raw_client(broker)
    assert c.connect("v31", protocol_name="MQIsdp", protocol_level=3).return_code == 0
    c.send(_with_dup(subscribe_packet(1, [("v31/t", 2)])))
    assert c.recv_packet(WAIT).type == SUBACK
    c.send(publish_packet("v31/other", b"x", qos=2, packet_id=7))
    assert c.recv_packet(WAIT).type == PUBREC
    c.send(packet(PUBREL, 0x0A, b"\x00\x07"))
    p = c.recv_packet(WAIT)
    assert (p.type, p.packet_id) == (PUBCOMP, 7), p
    c.send(_with_dup(unsubscribe_packet(2, ["v31/t"])))
    assert c.recv_packet(WAIT).type == UNSUBACK
    assert c.is_open()


def test_persistent_takeover_by_a_persistent_connection_sends_no_will(broker, raw_client):
    w = raw_client(broker)
    assert w.connect("will-watcher").return_code == 0
    assert w.subscribe([("will/#", 0)]) == [0]
    for old_clean, new_clean, fires in ((False, False, False), (False, True, True),
                                        (True, False, True)):
        first = raw_client(broker)
        assert first.connect("twin", clean_session=old_clean,
                             will=("will/twin", b"gone", 0, False)).return_code == 0
        second = raw_client(broker)
        assert second.connect("twin", clean_session=new_clean).return_code == 0
        assert first.wait_closed(WAIT) == []  # [MQTT-3.1.4-2]
        second.send(publish_packet("will/marker", b"%d%d" % (old_clean, new_clean)))
        got = [w.recv_packet(WAIT)]
        if fires:
            got.append(w.recv_packet(WAIT))
        assert [p.topic for p in got] == (["will/twin"] if fires else []) + ["will/marker"], \
            (old_clean, new_clean, got)
        second.disconnect()


def test_sys_subscriber_gets_values_at_once_after_start(broker_factory, raw_client):
    b = broker_factory(["sys_interval 60"])
    c = raw_client(b)
    assert c.connect("sys-reader").return_code == 0
    assert c.subscribe([("$SYS/broker/uptime", 0)]) == [0]
    p = c.recv_packet(WAIT)
    assert p.type == PUBLISH and p.topic == "$SYS/broker/uptime" and p.retain, p


@pytest.fixture
def file_dir(broker_kind, tmp_path):
    """Where a test writes the files its configuration names: next to the configuration file,
    which the wasm32 kind copies with them; for mosquitto, which drops root for its own user,
    a directory it can read (pytest's tmp_path is private to root)."""
    if broker_kind.name != "mosquitto":
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="broker-acl-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_session_taken_over_by_another_user_delivers_only_what_they_may_read(
        broker_factory, raw_client, file_dir):
    acl = file_dir / "users.acl"
    acl.write_text("topic readwrite #\nuser alice\ntopic read a/#\nuser bob\ntopic read b/#\n")
    b = broker_factory(["acl_file %s" % acl, "allow_anonymous true"])
    alice = raw_client(b)
    assert alice.connect("alice-id", clean_session=False, username="alice").return_code == 0
    assert alice.subscribe([("a/#", 1)]) == [1]
    alice.disconnect()
    pub = raw_client(b)
    assert pub.connect("writer").return_code == 0
    pub.publish("a/private", b"for alice", qos=1)
    bob = raw_client(b)
    ack = bob.connect("alice-id", clean_session=False, username="bob")
    assert ack.return_code == 0 and ack.session_present
    assert bob.subscribe([("b/#", 1)], packet_id=2) == [1]
    pub.publish("a/private", b"for alice again", qos=1, packet_id=2)
    pub.publish("b/mine", b"for bob", qos=1, packet_id=3)
    p = bob.recv_packet(WAIT)
    assert (p.type, p.topic, p.payload) == (PUBLISH, "b/mine", b"for bob"), p
    assert bob.is_open()  # and nothing else came before the PINGRESP
