"""$SYS/broker/... topics through a real broker process (both runtimes): they move with traffic."""

from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.own_broker]


def _next(client, timeout):
    try:
        return client.get(timeout=timeout)
    except AssertionError:  # nothing within the timeout
        return None


def _latest(client, wanted, timeout=5.0):
    """Collect $SYS messages until every wanted topic has arrived; the latest value of each."""
    values = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not wanted <= values.keys():
        m = _next(client, max(0.05, deadline - time.monotonic()))
        if m is not None:
            values[m.topic] = m.payload.decode()
    return values


def test_sys_values_move_when_traffic_flows(broker_factory, mqtt_client):
    broker = broker_factory(["sys_interval 1"])
    mon = mqtt_client(broker, "sys-monitor")
    assert mon.subscribe("$SYS/broker/#", 0) == [0]
    received = "$SYS/broker/publish/messages/received"
    connected = "$SYS/broker/clients/connected"
    first = _latest(mon, {received, connected, "$SYS/broker/version", "$SYS/broker/uptime"})
    assert first["$SYS/broker/version"].startswith("broker version ")
    before = int(first.get(received, "0"))
    pub = mqtt_client(broker, "sys-pub")
    for i in range(20):
        pub.publish("traffic/%d" % i, b"x" * 10, qos=1)
    deadline = time.monotonic() + 6.0
    after = before
    seen_connected = first.get(connected)
    while time.monotonic() < deadline and (after < before + 20 or seen_connected != "2"):
        m = _next(mon, 0.5)
        if m is None:
            continue
        if m.topic == received:
            after = int(m.payload)
        elif m.topic == connected:
            seen_connected = m.payload.decode()
    assert after >= before + 20
    assert seen_connected == "2"


def test_hash_subscriber_never_sees_sys(broker_factory, mqtt_client):
    # [MQTT-4.7.2-1]
    broker = broker_factory(["sys_interval 1"])
    everything = mqtt_client(broker, "sys-hash")
    assert everything.subscribe("#", 0) == [0]
    everything.assert_no_message(timeout=2.5)  # two $SYS intervals go by
