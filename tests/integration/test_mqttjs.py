"""MQTT 5.0 with MQTT.js (npm `mqtt`, protocolVersion 5), run by Node as tests/integration/mqttjs/
client.mjs: a subscriber and a publisher, what the subscriber received printed as JSON.

`make test` installs MQTT.js into tests/integration/mqttjs/node_modules (npm ci); without it, or
without node, the tests are skipped, and fail under CI. Normative statements are cited as
[MQTT-x.y.z-n] (OASIS MQTT Version 5.0); every expectation holds for mosquitto 2.0 as well
(BROKER_UNDER_TEST=mosquitto).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import V5_HEAP

pytestmark = [pytest.mark.integration, pytest.mark.heap(V5_HEAP)]

MQTTJS = Path(__file__).resolve().parent / "mqttjs"

# Every property a server forwards as it came (section 3.3.2.3), two User Properties of the same
# name among them, and keys out of alphabetical order, as MQTT.js writes them: in the order of
# the object's keys, a list's values one after the other.
RICH = {
    "payloadFormatIndicator": True,
    "contentType": "application/json",
    "responseTopic": "js/reply/42",
    "correlationData": "req-42",
    "userProperties": {"unit": ["C", "F"], "site": "lyon"},
}


def mqttjs(peer, broker, spec):
    """Run client.mjs with spec (the broker's port added); its JSON result."""
    node = peer("node")
    if not (MQTTJS / "node_modules" / "mqtt").is_dir():
        reason = ("MQTT.js is missing: make test installs it"
                  " (npm ci --prefix tests/integration/mqttjs)")
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (a missing peer is a failure under CI)", pytrace=False)
        pytest.skip(reason)
    argv = [node, str(MQTTJS / "client.mjs"), json.dumps(dict(spec, port=broker.port))]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, "%s\nbroker log:\n%s" % (proc.stderr, broker.log())
    return json.loads(proc.stdout)


def test_properties_reach_an_mqttjs_subscriber_in_order_MQTT_3_3_2_17(broker, peer):
    # [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] forwarded unaltered;
    # [MQTT-3.3.2-18] the User Properties in their order; [MQTT-3.3.4-3] the Subscription
    # Identifier of the matching subscription sent with each message.
    got = mqttjs(peer, broker, {
        "subscribe": [["js/#", {"qos": 1, "properties": {"subscriptionIdentifier": 7}}]],
        "publish": [
            ["js/a", "hello", {"qos": 1, "properties": RICH}],
            ["js/b", "zero", {"qos": 0, "properties": {"userProperties": {"b": "2", "a": "1"}}}],
        ],
        "expect": 2,
    })
    assert got["granted"] == [1]
    assert got["acks"] == [0, None]
    first, second = got["received"]
    assert (first["topic"], first["payload"], first["qos"], first["retain"]) == \
        ("js/a", "hello", 1, False)
    assert first["properties"] == dict(RICH, correlationData="req-42".encode().hex(),
                                       subscriptionIdentifier=7)
    assert first["userPropertyOrder"] == ["unit", "site"]
    assert (second["topic"], second["payload"], second["qos"]) == ("js/b", "zero", 0)
    assert second["properties"] == {"userProperties": {"b": "2", "a": "1"},
                                    "subscriptionIdentifier": 7}
    assert second["userPropertyOrder"] == ["b", "a"]


def test_mqttjs_publisher_gets_puback_0x10_when_nobody_subscribed_MQTT_3_4_2_1(broker, peer):
    # PUBACK's Reason Code 0x10 (No matching subscribers) [MQTT-3.4.2-1], then one that is
    # delivered: 0x00, which MQTT.js reads from the short PUBACK [MQTT-3.4.2-1].
    got = mqttjs(peer, broker, {
        "subscribe": [["js/here", {"qos": 1}]],
        "publish": [
            ["js/nobody", "lost", {"qos": 1, "properties": {"contentType": "text/plain"}}],
            ["js/here", "kept", {"qos": 1, "properties": {"contentType": "text/plain"}}],
        ],
        "expect": 1,
    })
    assert got["acks"] == [0x10, 0]
    [msg] = got["received"]
    assert (msg["topic"], msg["payload"], msg["properties"]) == \
        ("js/here", "kept", {"contentType": "text/plain"})
