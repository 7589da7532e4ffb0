import queue

import paho.mqtt.client as mqtt
import pytest


def connect(broker, client_id):
    """A paho client with its network loop in a thread, and the broker's answer (CONNACK)."""
    connacks = queue.Queue()

    def on_connect(client, userdata, flags, reason, properties):
        if reason.is_failure:
            client.disconnect()  # refused: no reconnection attempts
        connacks.put(reason)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client, connacks.get(timeout=5)


def disconnect(*clients):
    for client in clients:
        client.disconnect()
        client.loop_stop()


def test_publish_and_receive(mqtt_broker):
    received = queue.Queue()
    subscribed = queue.Queue()
    sub, _ = connect(mqtt_broker, "display")
    pub, _ = connect(mqtt_broker, "thermometer")
    sub.on_message = lambda client, userdata, msg: received.put(msg)
    sub.on_subscribe = lambda client, userdata, mid, reason_codes, props: subscribed.put(mid)
    try:
        sub.subscribe("home/+/temperature", qos=1)
        subscribed.get(timeout=5)
        pub.publish("home/kitchen/temperature", b"21.5", qos=1).wait_for_publish(timeout=5)
        msg = received.get(timeout=5)
    finally:
        disconnect(sub, pub)
    assert msg.topic == "home/kitchen/temperature"
    assert msg.payload == b"21.5"


@pytest.mark.mqtt_broker("max_connections 1")
def test_second_client_is_refused(mqtt_broker):
    first, accepted = connect(mqtt_broker, "first")
    second, refused = connect(mqtt_broker, "second")
    disconnect(first, second)
    assert not accepted.is_failure
    assert refused == "Server unavailable"  # CONNACK return code 3
