"""Bridges over TLS (bridge_cafile, bridge_insecure, bridge_certfile/bridge_keyfile) on both
runtimes, into a real mosquitto with a TLS listener started by each test on a free loopback port
(Debian package mosquitto; a skip locally without it, a failure under CI=true).

The certificates are the session's (the fixture pki, tls_pki.py). The mosquitto keeps its plain
listener (conftest's), where the tests' own clients connect; only the bridge uses the TLS one.
"""

from __future__ import annotations

import os
import time

import pytest

from conftest import BRIDGE_HEAP, HOST, KINDS, free_port
from test_bridge import QUIET, WAIT, bridged, drain, hub, probe, state_topic

# the bridge code on top of the broker's: MicroPython gets a bigger heap than the other tests
pytestmark = [pytest.mark.integration, pytest.mark.own_broker, pytest.mark.heap(BRIDGE_HEAP)]


def tls_remote(broker_factory, pki, cert="server", require_certificate=False):
    """A mosquitto with a TLS listener serving cert; returns it and the TLS port."""
    port = free_port()
    lines = ["listener %d %s" % (port, HOST), "cafile " + pki.path("ca.crt"),
             "certfile " + pki.path(cert + ".crt"), "keyfile " + pki.path(cert + ".key")]
    if require_certificate:
        lines.append("require_certificate true")
    if os.geteuid() == 0:
        # as root mosquitto would run as the user mosquitto, who cannot read the key files
        lines.append("user root")
    return broker_factory(lines, kind=KINDS["mosquitto"]), port


def tls_hub(broker_factory, pki, name, port, ca="ca", extra=()):
    return hub(broker_factory, name, port, ["topic up/# out 1", "topic down/# in 1"],
               ["bridge_cafile " + pki.path(ca + ".crt")] + list(extra))


def crosses_both_ways(mqtt_client, near, far):
    """QoS 1 messages go out and come in over the bridge, once each, in order."""
    far_sub = mqtt_client(far, "far-sub")
    far_sub.subscribe("up/#", 1)
    near_sub = mqtt_client(near, "near-sub")
    near_sub.subscribe("down/#", 1)
    far_pub = mqtt_client(far, "far-pub")
    near_pub = mqtt_client(near, "near-pub")
    probe(far_pub, near_sub, "down/probe")
    for i in range(5):
        near_pub.publish("up/%d" % i, b"u%d" % i, qos=1)
        far_pub.publish("down/%d" % i, b"d%d" % i, qos=1)
    ups = far_sub.get_many(5, timeout=WAIT)
    downs = near_sub.get_many(5, timeout=WAIT)
    assert [(m.topic, m.payload, m.qos) for m in ups] == [
        ("up/%d" % i, b"u%d" % i, 1) for i in range(5)]
    assert [(m.topic, m.payload, m.qos) for m in downs] == [
        ("down/%d" % i, b"d%d" % i, 1) for i in range(5)]
    assert drain(far_sub, 0.3) == [] and drain(near_sub, 0.3) == []


def never_connects(mqtt_client, near, far, name, reason):
    """The bridge fails at the handshake, attempt after attempt, for reason (in the hub's log):
    the remote broker never sees its CONNECT, the hub's notification never says 1, and the hub
    keeps serving its own clients."""
    watch = mqtt_client(near, "watch-" + name)
    watch.subscribe(state_topic(name), 1)
    failed = "Bridge %s: connection to 127.0.0.1:" % name
    near.wait_log(lambda text: text.count(failed) >= 2, timeout=WAIT)
    assert "TLS handshake failed: " in near.log() and reason in near.log(), near.log()
    assert [m.payload for m in drain(watch, QUIET)] in ([], [b"0"])
    assert "as %s " % name not in far.log() and "as %s\n" % name not in far.log(), far.log()
    a = mqtt_client(near, "local-a")
    a.subscribe("local/#", 1)
    mqtt_client(near, "local-b").publish("local/x", b"still served", qos=1)
    m = a.get(timeout=WAIT)
    assert (m.topic, m.payload) == ("local/x", b"still served")
    assert near.proc.poll() is None


def test_out_and_in_over_tls_at_qos_1(broker_factory, mqtt_client, pki):
    far, port = tls_remote(broker_factory, pki)
    near = tls_hub(broker_factory, pki, "tls1", port)
    bridged(mqtt_client, near, "tls1")
    crosses_both_ways(mqtt_client, near, far)
    assert "as tls1" in far.log()  # what never_connects looks for


def test_a_certificate_from_another_ca_never_connects(broker_factory, mqtt_client, pki):
    far, port = tls_remote(broker_factory, pki)
    near = tls_hub(broker_factory, pki, "tls2", port, ca="rogue-ca")
    # CPython's words, then MicroPython's (mbedTLS)
    never_connects(mqtt_client, near, far, "tls2", "certificate verify failed"
                   if near.kind == "cpython" else "not correctly signed by the trusted CA")


def test_a_host_name_mismatch_never_connects_without_bridge_insecure(
        broker_factory, mqtt_client, pki):
    far, port = tls_remote(broker_factory, pki, cert="elsewhere")
    near = tls_hub(broker_factory, pki, "tls3", port, extra=["bridge_insecure false"])
    never_connects(mqtt_client, near, far, "tls3", "address mismatch"
                   if near.kind == "cpython" else "Common Name (CN) does not match")


@pytest.mark.kinds("cpython")
def test_bridge_insecure_skips_the_host_name_check_only(broker_factory, mqtt_client, pki):
    far, port = tls_remote(broker_factory, pki, cert="elsewhere")
    near = tls_hub(broker_factory, pki, "tls4", port, extra=["bridge_insecure true"])
    bridged(mqtt_client, near, "tls4")
    crosses_both_ways(mqtt_client, near, far)
    # the chain is still checked
    rogue = tls_hub(broker_factory, pki, "tls5", port, ca="rogue-ca",
                    extra=["bridge_insecure true"])
    never_connects(mqtt_client, rogue, far, "tls5", "certificate verify failed")


@pytest.mark.kinds("micropython")
def test_bridge_insecure_true_stops_start_up_on_micropython(broker_factory, pki):
    lines = ["connection tls6", "address 127.0.0.1:%d" % free_port(), "topic up/# out 1",
             "bridge_cafile " + pki.path("ca.crt"), "bridge_insecure true"]
    b = broker_factory(lines, start=False)
    b.start(lines, wait=False)
    assert b.wait_exit() == 1
    log = b.log()
    assert ("Error: connection tls6: bridge_insecure true is not available on MicroPython"
            in log), log
    assert "listening on" not in log


def test_a_client_certificate_for_a_remote_that_requires_one(broker_factory, mqtt_client, pki):
    far, port = tls_remote(broker_factory, pki, require_certificate=True)
    near = tls_hub(broker_factory, pki, "tls7", port, extra=[
        "bridge_certfile " + pki.path("client.crt"), "bridge_keyfile " + pki.path("client.key")])
    bridged(mqtt_client, near, "tls7")
    crosses_both_ways(mqtt_client, near, far)
    # without one, the remote broker ends every handshake
    bare = tls_hub(broker_factory, pki, "tls8", port)
    failed = "Bridge tls8: connection to 127.0.0.1:%d failed" % port
    bare.wait_log(lambda text: text.count(failed) >= 2, timeout=WAIT)
    assert "as tls8" not in far.log()


def test_unusable_bridge_tls_files_stop_start_up(broker_factory, pki, tmp_path):
    port = free_port()
    lines = ["connection tls9", "address 127.0.0.1:%d" % port, "topic up/# out 1",
             "bridge_cafile " + pki.path("ca.crt"), "bridge_certfile " + pki.path("client.key"),
             "bridge_keyfile " + pki.path("client.key")]
    b = broker_factory(lines, start=False)
    b.start(lines, wait=False)
    assert b.wait_exit() == 1
    log = b.log()
    assert ("Error: connection tls9: cannot use bridge_certfile %s with bridge_keyfile %s: "
            % (pki.path("client.key"), pki.path("client.key"))) in log, log
    missing = str(tmp_path / "missing.crt")
    lines[3] = "bridge_cafile " + missing
    b = broker_factory(lines, start=False)
    b.start(lines, wait=False)
    assert b.wait_exit() == 1
    assert ": bridge_cafile: cannot read %s: " % missing in b.log(), b.log()
    assert "listening on" not in b.log()


def test_the_handshake_does_not_block_the_loop(broker_factory, mqtt_client, pki):
    # a "remote broker" that accepts the TCP connection and never answers the ClientHello
    import socket
    silent = socket.socket()
    silent.bind((HOST, 0))
    silent.listen(1)
    try:
        near = hub(broker_factory, "tls10", silent.getsockname()[1], ["topic up/# out 1"],
                   ["bridge_cafile " + pki.path("ca.crt"), "keepalive_interval 5"])
        near.wait_log(lambda text: "Connecting bridge tls10" in text, timeout=WAIT)
        start = time.monotonic()
        a = mqtt_client(near, "local-a")
        a.subscribe("local/#", 1)
        mqtt_client(near, "local-b").publish("local/x", b"served", qos=1)
        assert a.get(timeout=WAIT).payload == b"served"
        assert time.monotonic() - start < 3.0
        assert "Bridge tls10 connected" not in near.log()
    finally:
        silent.close()
