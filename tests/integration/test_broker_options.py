"""Limits, configuration and log output of the broker process.

DESIGN.md: when a fixed-size table is full the broker refuses that one request with the code the
specification gives, logs it, and keeps serving everyone else. Options use mosquitto.conf names.

Where mosquitto has the same option these tests also run against it (that is how they were
validated); where mosquitto's behaviour differs from our contract (its exit code for a bad
config) the reference gets its own, clearly marked expectation. Tests on our own table-size
options, and max_connections (see the test), are skipped for mosquitto.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from board import board_limit
from raw_mqtt import PUBACK, PUBLISH, ack_packet, connect_packet, publish_packet

pytestmark = pytest.mark.integration


def _round_trip(sub, pub, topic, payload):
    """pub publishes at QoS 1; sub (subscribed to topic at QoS 1) must receive it."""
    pub.publish(topic, payload, qos=1, packet_id=9)
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload) == (topic, payload)
    sub.send(ack_packet(PUBACK, p.packet_id))


@pytest.mark.own_broker
def test_full_subscription_table_gives_suback_0x80(broker_factory, raw_client):
    # (one client may hold the whole table here; by default it may hold half)
    broker = broker_factory(["max_subscriptions 2", "max_subscriptions_per_client 2"])
    c = raw_client(broker)
    assert c.connect("table").return_code == 0
    codes = c.subscribe([("tab/one", 1), ("tab/two", 1), ("tab/three", 1)])
    # [MQTT-3.8.4-5] [MQTT-3.9.3-2] one code per filter; 0x80 = failure for the one that
    # did not fit, the others granted
    assert codes == [1, 1, 0x80]
    # the connection keeps working: the granted subscriptions deliver, the refused one does not
    pub = raw_client(broker)
    assert pub.connect("table-pub").return_code == 0
    pub.publish("tab/three", b"refused", qos=1, packet_id=3)
    _round_trip(c, pub, "tab/one", b"still served")
    assert c.is_open()
    # and a later SUBSCRIBE still gets an answer (0x80 again: the table is still full)
    assert c.subscribe([("tab/four", 0)], packet_id=2) == [0x80]


def test_max_connections_refuses_the_third_client(broker_factory, broker_kind, raw_client):
    if broker_kind.reference:
        pytest.skip("mosquitto refuses at accept time without a CONNACK, and 2.0.11 frees two "
                    "max_connections slots per closed connection, so its count is already off "
                    "after the fixture's readiness probe")
    broker = broker_factory(["max_connections 2"])
    a = raw_client(broker)
    b = raw_client(broker)
    assert a.connect("first").return_code == 0
    assert b.connect("second").return_code == 0
    c = raw_client(broker)
    # DESIGN.md: a full connection table -> CONNACK 0x03 (server unavailable), then close
    c.send(connect_packet("third"))
    packets = c.wait_closed(timeout=5)
    assert len(packets) == 1, packets
    assert (packets[0].name, packets[0].return_code) == ("CONNACK", 0x03)
    assert packets[0].session_present is False  # [MQTT-3.2.2-4]
    # the first two keep working
    assert a.subscribe([("mc/t", 1)]) == [1]
    _round_trip(a, b, "mc/t", b"still served")
    # and the slot freed by a disconnect is reusable (the broker may need a moment to
    # notice that b has gone)
    b.disconnect()
    deadline = time.monotonic() + 3.0
    while True:
        d = raw_client(broker)
        try:
            if d.connect("fourth", timeout=1).return_code == 0:
                break
        except (AssertionError, OSError):
            pass
        d.close()
        assert time.monotonic() < deadline, "no connection slot came free after a disconnect"
        time.sleep(0.1)
    assert a.is_open()


@pytest.mark.kinds("micropython")
def test_board_profile_limits_are_in_effect(broker, raw_client):
    # The MicroPython kind always runs with the board profile (boards/rp2/broker.conf): check
    # that its connection and packet size limits really are the ones the broker applies.
    n = board_limit("max_connections")
    clients = [raw_client(broker) for _ in range(n)]
    for i, c in enumerate(clients):
        assert c.connect("board-%d" % i).return_code == 0
    extra = raw_client(broker)
    extra.send(connect_packet("board-extra"))
    # DESIGN.md: a full connection table -> CONNACK 0x03 (server unavailable), then close
    packets = extra.wait_closed(timeout=5)
    assert [(p.name, p.return_code) for p in packets] == [("CONNACK", 0x03)]
    # a packet one byte over max_packet_size closes that connection only
    limit = board_limit("max_packet_size")
    topic = "board/big"
    payload = b"x" * (limit + 1 - 3 - 2 - len(topic))  # fixed header 1 + 2 (rl), topic 2 + len
    big = publish_packet(topic, payload)
    assert len(big) == limit + 1
    clients[0].send(big)
    assert clients[0].wait_closed(timeout=5) == []
    # one exactly at the limit is delivered
    assert clients[1].subscribe([(topic, 0)]) == [0]
    clients[2].send(publish_packet(topic, payload[:-1]))
    p = clients[1].expect(PUBLISH)
    assert (p.topic, len(p.payload)) == (topic, len(payload) - 1)
    assert all(c.is_open() for c in clients[1:])


def test_max_packet_size_closes_only_the_offending_connection(broker_factory, raw_client):
    broker = broker_factory(["max_packet_size 100"])
    sub = raw_client(broker)
    big = raw_client(broker)
    assert sub.connect("small-sub").return_code == 0
    assert big.connect("big-pub").return_code == 0
    assert sub.subscribe([("size/#", 1)]) == [1]
    big.send(publish_packet("size/big", b"x" * 200, qos=0))
    # a packet over the limit closes that connection (and is not delivered) ...
    assert big.wait_closed(timeout=5) == []
    # ... while everyone else continues
    other = raw_client(broker)
    assert other.connect("other").return_code == 0
    _round_trip(sub, other, "size/small", b"fits")
    assert sub.is_open()


def test_log_has_connect_and_disconnect_lines(broker_factory, raw_client):
    broker = broker_factory(verbose=True)
    c = raw_client(broker)
    assert c.connect("log-client-7").return_code == 0
    port = c.local_port
    # mosquitto style: "New client connected from 127.0.0.1:PORT as CLIENTID ..."
    connect_line = re.compile(
        r"New client connected from 127\.0\.0\.1:%d as log-client-7\b" % port)
    broker.wait_log(lambda text: connect_line.search(text) is not None)
    c.disconnect()
    # ... and "Client CLIENTID disconnected"
    disconnect_line = re.compile(r"Client log-client-7 disconnected")
    broker.wait_log(lambda text: disconnect_line.search(text) is not None)


def test_unknown_config_option_stops_startup_with_file_and_line(broker_factory, broker_kind):
    broker = broker_factory(start=False)
    broker.start(["max_inflight_messages 10", "retain_available true", "no_such_option yes"],
                 wait=False)
    code = broker.wait_exit(timeout=10)
    lines = broker.config_path.read_text().splitlines()
    bad_line = lines.index("no_such_option yes") + 1
    log = broker.log()
    if broker_kind.reference:
        assert code == 3  # mosquitto's MOSQ_ERR_INVAL; our contract says 1
    else:
        assert code == 1, log
        assert "Traceback" not in log
    path = str(broker.config_path)
    assert path in log or broker.config_path.name in log, log
    rest = log.replace(path, "<config>")
    assert re.search(r"(?<!\d)%d(?!\d)" % bad_line, rest), (bad_line, log)


def test_port_already_in_use_exits_with_one_clear_line(broker_factory):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        broker = broker_factory(start=False)
        broker.start(port=port, wait=False)
        code = broker.wait_exit(timeout=10)
    log = broker.log()
    assert code == 1, log
    # one clear line says what went wrong (start-up notices before it are fine), no traceback
    in_use = [line for line in log.splitlines() if "in use" in line.lower()]
    assert len(in_use) == 1, log
    assert "Traceback" not in log


@pytest.mark.own_broker
def test_listening_line_names_host_and_port(broker):
    # launch contract: once it accepts connections, one stderr line "listening on HOST:PORT"
    lines = [line for line in broker.log().splitlines() if "listening on" in line]
    assert len(lines) == 1, broker.log()
    assert "listening on 127.0.0.1:%d" % broker.port in lines[0]


def test_stop_signal_stops_the_broker_cleanly(broker, raw_client):
    c = raw_client(broker)
    assert c.connect("still-connected").return_code == 0
    assert c.subscribe([("term/t", 1)]) == [1]
    # launch contract: SIGINT/SIGTERM (CPython) and Ctrl-C (MicroPython) stop it cleanly, exit
    # code 0, connections closed. broker.stop() sends the kind's signal: SIGTERM for CPython
    # (and mosquitto), SIGINT for MicroPython.
    assert broker.stop() == 0, broker.log()
    c.wait_closed(timeout=5)
    assert "Traceback" not in broker.log()
