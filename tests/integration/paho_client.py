"""A thin, blocking-with-timeouts wrapper around a paho-mqtt 2.x client for integration tests."""

from __future__ import annotations

import queue
import socket
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WAIT = 5.0          # how long to wait for something that must happen
QUIET = 0.5         # how long to watch for something that must not happen


class Message:
    """What a subscriber received (copied out of paho's MQTTMessage)."""

    def __init__(self, msg):
        self.topic = msg.topic
        self.payload = bytes(msg.payload)
        self.qos = msg.qos
        self.retain = bool(msg.retain)
        self.dup = bool(msg.dup)
        self.properties = msg.properties  # MQTT 5.0: paho's Properties (None before 5.0)

    def __repr__(self):
        return "<Message %r %r qos=%d retain=%d dup=%d>" % (
            self.topic, self.payload, self.qos, self.retain, self.dup)


class PahoClient:
    def __init__(self, broker, client_id="", clean_session=True, protocol=mqtt.MQTTv311,
                 keepalive=60, will=None, properties=None, clean_start=True):
        """will: (topic, payload, qos, retain) or, for MQTT 5.0, (topic, payload, qos, retain,
        will properties), or None; properties: the CONNECT properties (MQTT 5.0).

        With protocol=MQTTv5, clean_session is not used (paho refuses it): Clean Start is
        clean_start."""
        self.broker = broker
        self.clean_start = clean_start
        self.client_id = client_id
        self.keepalive = keepalive
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if protocol == mqtt.MQTTv5 else clean_session,
            protocol=protocol,
            reconnect_on_failure=False,  # a dropped client must stay dropped
        )
        if will is not None:
            self.client.will_set(*will)
        self.connect_properties = properties
        self.messages = queue.Queue()
        self.connack = threading.Event()
        self.disconnected = threading.Event()
        self.session_present = None
        self.reason_code = None
        self.connack_properties = None
        self.disconnect_reason = None
        self._lock = threading.Lock()
        self._subacks = {}
        self._unsubacks = {}
        self._publish_reasons = {}
        self._ack_event = threading.Condition(self._lock)
        self._loop_started = False
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish

    # -- callbacks (paho's network thread) ----------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.session_present = bool(flags.session_present)
        self.reason_code = reason_code
        self.connack_properties = properties
        self.connack.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_reason = reason_code
        self.disconnected.set()

    def _on_message(self, client, userdata, msg):
        self.messages.put(Message(msg))

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties):
        with self._lock:
            self._subacks[mid] = [rc.value for rc in reason_code_list]
            self._ack_event.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_code_list, properties):
        with self._lock:
            self._unsubacks[mid] = [rc.value for rc in reason_code_list]
            self._ack_event.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            self._publish_reasons[mid] = reason_code

    # -- actions ------------------------------------------------------------------------------
    def connect(self, timeout=WAIT, expect_success=True):
        if self.client.protocol == mqtt.MQTTv5:
            self.client.connect(self.broker.host, self.broker.port, keepalive=self.keepalive,
                                clean_start=self.clean_start, properties=self.connect_properties)
        else:
            self.client.connect(self.broker.host, self.broker.port, keepalive=self.keepalive)
        self.client.loop_start()
        self._loop_started = True
        assert self.connack.wait(timeout), "no CONNACK within %.1fs" % timeout
        if expect_success:
            assert not self.reason_code.is_failure, "connection refused: %s" % self.reason_code
        return self

    def _wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no %s within %.1fs" % (what, timeout))
                self._ack_event.wait(remaining)

    def subscribe(self, topic, qos=0, timeout=WAIT, properties=None):
        """subscribe("t", 1) or subscribe([("a", 0), ("b", 2)]); returns SUBACK return codes.
        MQTT 5.0: qos may be paho's SubscribeOptions; properties, the SUBSCRIBE's."""
        if isinstance(topic, str):
            if isinstance(qos, int):
                result, mid = self.client.subscribe(topic, qos, properties=properties)
            else:
                result, mid = self.client.subscribe(topic, options=qos, properties=properties)
        else:
            result, mid = self.client.subscribe(list(topic), properties=properties)
        assert result == mqtt.MQTT_ERR_SUCCESS, "subscribe failed: %s" % result
        self._wait_for(lambda: mid in self._subacks, timeout, "SUBACK")
        with self._lock:
            return self._subacks.pop(mid)

    def unsubscribe(self, topic, timeout=WAIT):
        """unsubscribe("t") or unsubscribe(["a", "b"]); returns the UNSUBACK reason codes
        (MQTT 5.0; an empty list before 5.0)."""
        result, mid = self.client.unsubscribe(topic)
        assert result == mqtt.MQTT_ERR_SUCCESS, "unsubscribe failed: %s" % result
        self._wait_for(lambda: mid in self._unsubacks, timeout, "UNSUBACK")
        with self._lock:
            return self._unsubacks.pop(mid)

    def publish(self, topic, payload=b"", qos=0, retain=False, timeout=WAIT, properties=None):
        """Publish and wait until the QoS flow completes (for QoS 0: until written)."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(timeout)
        assert info.is_published(), "publish of %r not completed within %.1fs" % (topic, timeout)
        return info

    def publish_reason(self, topic, payload=b"", qos=1, properties=None, timeout=WAIT):
        """Publish and return the reason code of the packet that completed the flow (MQTT 5.0:
        the PUBACK's at QoS 1, the PUBCOMP's at QoS 2), a paho ReasonCode."""
        info = self.publish(topic, payload, qos, timeout=timeout, properties=properties)
        with self._lock:
            return self._publish_reasons.pop(info.mid)

    def publish_many(self, items, timeout=WAIT):
        """Publish (topic, payload, qos, retain) tuples back to back, then wait for all."""
        infos = [self.client.publish(*item) for item in items]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
            assert info.is_published(), "not all publishes completed within %.1fs" % timeout

    def get(self, timeout=WAIT) -> Message:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("%s: no message within %.1fs" % (self.client_id, timeout))

    def get_many(self, n, timeout=WAIT):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            remaining = deadline - time.monotonic()
            try:
                out.append(self.messages.get(timeout=max(0.0, remaining)))
            except queue.Empty:
                raise AssertionError("%s: got %d of %d messages within %.1fs: %r"
                                     % (self.client_id, len(out), n, timeout, out[-3:]))
        return out

    def get_until(self, topic, timeout=WAIT):
        """Messages up to and including the first on `topic` (a marker)."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = self.messages.get(timeout=max(0.0, remaining))
            except queue.Empty:
                raise AssertionError("%s: marker %r not received within %.1fs; got %r"
                                     % (self.client_id, topic, timeout, out))
            out.append(msg)
            if msg.topic == topic:
                return out

    def assert_no_message(self, timeout=QUIET):
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("%s: unexpected message %r" % (self.client_id, msg))

    def wait_disconnected(self, timeout=WAIT):
        assert self.disconnected.wait(timeout), (
            "%s still connected after %.1fs" % (self.client_id, timeout))

    def disconnect(self, timeout=WAIT, reasoncode=None):
        """Clean disconnect: send DISCONNECT (MQTT 5.0: with reasoncode, a paho ReasonCode)
        and stop the network thread."""
        self.client.disconnect(reasoncode)
        self.wait_disconnected(timeout)
        self._stop_loop()

    def drop(self, timeout=WAIT):
        """Close the network connection without sending DISCONNECT (as if the client died)."""
        sock = self.client.socket()
        assert sock is not None, "not connected"
        sock.shutdown(socket.SHUT_RDWR)
        self.wait_disconnected(timeout)
        self._stop_loop()

    def _stop_loop(self):
        if self._loop_started:
            self._loop_started = False
            self.client.loop_stop()

    def close(self):
        """Teardown: disconnect if still connected, stop the thread; never raises."""
        try:
            if not self.disconnected.is_set() and self.client.is_connected():
                self.client.disconnect()
                self.disconnected.wait(1.0)
        except Exception:
            pass
        try:
            self._stop_loop()
        except Exception:
            pass
