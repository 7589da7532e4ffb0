"""TLS listeners (mosquitto's `listener` + certfile, keyfile, cafile, require_certificate) on
both runtimes.

The certificates are the session's (the fixture pki, tls_pki.py): a throw-away CA, a server
certificate for localhost/127.0.0.1, a client certificate from that CA and one from a CA the
broker does not trust. Each broker gets its plain listener (from conftest) and a TLS listener on
a second free port.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time

import pytest

from conftest import HOST, free_port, startup_error
from raw_mqtt import CONNACK, RawClient, connect_packet

pytestmark = [pytest.mark.integration, pytest.mark.own_broker]

WAIT = 5.0


class Endpoint:
    """What PahoClient and RawClient need of a broker: host and port (here the TLS port)."""

    def __init__(self, host, port):
        self.host = host
        self.port = port


def tls_lines(port, pki, require_certificate=False):
    lines = ["listener %d %s" % (port, HOST),
             "certfile " + pki.path("server.crt"), "keyfile " + pki.path("server.key")]
    if require_certificate:
        lines += ["cafile " + pki.path("ca.crt"), "require_certificate true"]
    return lines


def start_tls(broker_factory, pki, extra=(), **kwargs):
    port = free_port()
    b = broker_factory(tls_lines(port, pki, **kwargs) + list(extra))
    return b, Endpoint(HOST, port)


def tls_paho(mqtt_client, endpoint, pki, client_id, cert=None):
    c = mqtt_client(endpoint, client_id, connect=False)
    if cert is None:
        c.client.tls_set(ca_certs=pki.path("ca.crt"))
    else:
        c.client.tls_set(ca_certs=pki.path("ca.crt"), certfile=pki.path(cert + ".crt"),
                         keyfile=pki.path(cert + ".key"))
    return c.connect()


def connack_over_tls(endpoint, pki, cert=None):
    """The first bytes the broker answers a CONNECT with over TLS, or None when the TLS
    session fails or the broker closes without answering."""
    ctx = ssl.create_default_context(cafile=pki.path("ca.crt"))
    if cert is not None:
        ctx.load_cert_chain(pki.path(cert + ".crt"), pki.path(cert + ".key"))
    raw = socket.create_connection((endpoint.host, endpoint.port), timeout=WAIT)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(connect_packet("probe-%d" % free_port()))
        data = s.recv(4)
    except (ssl.SSLError, OSError):
        return None
    finally:
        raw.close()
    return data or None


def round_trip(sub, pub, topic, payload):
    assert sub.subscribe(topic, 1) == [1]
    pub.publish(topic, payload, 1)
    m = sub.get()
    assert (m.topic, m.payload) == (topic, payload)


def test_publish_subscribe_over_tls(broker_factory, mqtt_client, pki):
    b, tls = start_tls(broker_factory, pki)
    secure = tls_paho(mqtt_client, tls, pki, "secure")
    plain = mqtt_client(b, "plain")
    round_trip(secure, secure, "tls/self", b"over TLS")
    # both listeners share one broker: messages cross between them
    round_trip(plain, secure, "tls/to-plain", b"x" * 3000)
    round_trip(secure, plain, "tls/from-plain", b"y" * 3000)


def test_plain_tcp_client_on_the_tls_port_is_dropped(broker_factory, mqtt_client, pki):
    b, tls = start_tls(broker_factory, pki)
    secure = tls_paho(mqtt_client, tls, pki, "secure")
    intruder = RawClient(tls.host, tls.port, timeout=WAIT)
    try:
        intruder.send(connect_packet("intruder"))
        assert intruder.wait_closed(WAIT) == []  # no CONNACK: the bytes were not TLS
    finally:
        intruder.close()
    round_trip(secure, secure, "tls/after-intruder", b"still served")
    assert connack_over_tls(tls, pki) == bytes([CONNACK << 4, 2, 0, 0])
    b.wait_log(lambda text: "Socket error on client" in text)


def test_client_certificate_required(broker_factory, mqtt_client, pki):
    b, tls = start_tls(broker_factory, pki, require_certificate=True)
    assert connack_over_tls(tls, pki) is None  # no certificate
    assert connack_over_tls(tls, pki, cert="rogue") is None  # one the cafile did not sign
    assert connack_over_tls(tls, pki, cert="client") == bytes([CONNACK << 4, 2, 0, 0])
    trusted = tls_paho(mqtt_client, tls, pki, "trusted", cert="client")
    round_trip(trusted, trusted, "tls/mutual", b"with a client certificate")


def test_client_certificate_optional_without_require_certificate(broker_factory, pki):
    port = free_port()
    b = broker_factory(tls_lines(port, pki) + ["cafile " + pki.path("ca.crt")])
    tls = Endpoint(HOST, port)
    assert connack_over_tls(tls, pki) == bytes([CONNACK << 4, 2, 0, 0])
    assert connack_over_tls(tls, pki, cert="client") == bytes([CONNACK << 4, 2, 0, 0])


def test_silent_peers_on_the_tls_port_are_dropped_after_connect_timeout(
        broker_factory, mqtt_client, pki):
    b, tls = start_tls(broker_factory, pki, extra=["connect_timeout 1"])
    secure = tls_paho(mqtt_client, tls, pki, "secure")
    # one never starts the handshake, one completes it and sends no CONNECT
    silent = socket.create_connection((tls.host, tls.port), timeout=WAIT)
    ctx = ssl.create_default_context(cafile=pki.path("ca.crt"))
    shy = ctx.wrap_socket(socket.create_connection((tls.host, tls.port), timeout=WAIT),
                          server_hostname="localhost")
    start = time.monotonic()
    try:
        assert silent.recv(1) == b""
        try:
            assert shy.recv(1) == b""
        except (ssl.SSLError, ConnectionResetError):
            pass
        waited = time.monotonic() - start
        assert waited < 4.0, waited
    finally:
        silent.close()
        shy.close()
    # the handshake in progress blocked nobody meanwhile
    round_trip(secure, secure, "tls/after-silent", b"served")
    b.wait_log(lambda text: text.count("sent no CONNECT in time") >= 2)


def test_unusable_tls_files_stop_start_up_with_a_clear_error(broker_factory, pki, tmp_path):
    port = free_port()
    # the private key where the certificate belongs: readable, but not a certificate
    error, b = startup_error(broker_factory, [
        "listener %d %s" % (port, HOST), "certfile " + pki.path("server.key"),
        "keyfile " + pki.path("server.key")])
    assert error.startswith("Error: listener %s:%d: cannot use certfile %s" % (
        HOST, port, pki.path("server.key"))), b.log()
    missing = str(tmp_path / "missing.crt")
    error, b = startup_error(broker_factory, [
        "listener %d %s" % (port, HOST), "certfile " + missing])
    assert ": certfile: cannot read %s: " % missing in error, b.log()
    assert "listening on" not in b.log()


@pytest.mark.kinds("wasm32")
def test_tls_stops_start_up_on_a_port_without_tls(broker_factory, broker_kind, pki, tmp_path):
    # The 32-bit port has no TLS: a TLS listener, or a bridge's bridge_cafile, is refused in one
    # line naming it. (Its filesystem holds the files next to the configuration, in tmp_path.)
    kind = broker_kind.without_skips()
    for name in ("server.crt", "server.key", "ca.crt"):
        shutil.copy(pki.path(name), tmp_path / name)
    port = free_port()
    error, b = startup_error(broker_factory, [
        "listener %d %s" % (port, HOST), "certfile %s" % (tmp_path / "server.crt"),
        "keyfile %s" % (tmp_path / "server.key")], kind=kind)
    assert error == ("Error: listener %s:%d: this MicroPython has no TLS (no tls module),"
                     " certfile %s cannot be served" % (HOST, port, tmp_path / "server.crt")), \
        b.log()
    error, b = startup_error(broker_factory, [
        "connection tls-out", "address %s:%d" % (HOST, free_port()), "topic up/# out 1",
        "bridge_cafile %s" % (tmp_path / "ca.crt")], kind=kind)
    assert error == ("Error: connection tls-out: this MicroPython has no TLS (no tls module),"
                     " bridge_cafile %s cannot be used" % (tmp_path / "ca.crt")), b.log()
