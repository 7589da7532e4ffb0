"""use_identity_as_username and use_subject_as_username on a TLS listener: the client
certificate's commonName, or its whole subject, is the username, as mosquitto 2.0 takes it
(checked against mosquitto 2.0.11 with BROKER_UNDER_TEST=mosquitto):

- the CONNECT's own username and password are dropped, and no password is checked, even with a
  password_file and allow_anonymous false;
- a certificate without a commonName is refused with "bad username or password";
- with require_certificate false the broker asks for no certificate, so every client is
  refused that way;
- the acl_file applies to the certificate's name (%u).

MicroPython refuses the option at start-up (its tls module does not give the peer certificate);
the webassembly port has no TLS (those tests are skipped there).
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess

import pytest

from conftest import HOST, free_port, require_peer, startup_error
from raw_mqtt import CONNACK, connect_packet, packet, publish_packet, subscribe_packet

pytestmark = pytest.mark.integration

WAIT = 5.0
ACCEPTED = bytes([CONNACK << 4, 2, 0, 0])
BAD_USERNAME_OR_PASSWORD = bytes([CONNACK << 4, 2, 0, 4])
SUBJECT = "CN=dev 1,OU=Prod,O=Acme\\, Inc,C=GB"  # subject.crt's, as RFC 2253 writes it


def lines(port, pki, option="use_identity_as_username", require=True):
    return ["listener %d %s" % (port, HOST),
            "certfile " + pki.path("server.crt"), "keyfile " + pki.path("server.key"),
            "cafile " + pki.path("ca.crt"),
            "require_certificate %s" % ("true" if require else "false"), option + " true"]


def start(broker_kind, broker_factory, pki, tmp_path, option="use_identity_as_username",
          require=True):
    """A broker with a password_file that knows "client" (password "secret"), anonymous
    clients refused, and an acl_file giving each user the topics under its name; its TLS
    port. None on MicroPython, after checking its refusal."""
    port = free_port()
    if broker_kind.name == "micropython":
        error, b = startup_error(broker_factory, lines(port, pki, option, require))
        assert error.startswith("Error: %s:" % b.config_path), error  # FILE:LINE: reason
        assert error.endswith(": %s is not supported on MicroPython (its tls module does not"
                              " give the client's certificate)" % option), error
        return None
    passwd = tmp_path / "passwd"
    subprocess.run([require_peer("mosquitto_passwd"), "-c", "-b", str(passwd), "client",
                    "secret"], check=True, capture_output=True, timeout=30)
    acl = tmp_path / "acl"
    acl.write_text("pattern readwrite %u/#\n")
    config = ["allow_anonymous false", "password_file %s" % passwd, "acl_file %s" % acl]
    config += lines(port, pki, option, require) + as_root(broker_kind)
    broker_factory(config)
    return port


def as_root(broker_kind):
    # as root, mosquitto runs as the user mosquitto, which cannot read the test's folder
    return ["user root"] if broker_kind.name == "mosquitto" and os.geteuid() == 0 else []


def tls_socket(port, pki, cert):
    ctx = ssl.create_default_context(cafile=pki.path("ca.crt"))
    if cert is not None:
        ctx.load_cert_chain(pki.path(cert + ".crt"), pki.path(cert + ".key"))
    raw = socket.create_connection((HOST, port), timeout=WAIT)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def connack(port, pki, cert, **connect):
    """The CONNACK's bytes, or None when the TLS session fails or the broker closes first."""
    try:
        s = tls_socket(port, pki, cert)
    except (ssl.SSLError, OSError):
        return None
    try:
        s.sendall(connect_packet("probe-%d" % free_port(), **connect))
        return s.recv(4) or None
    except (ssl.SSLError, OSError):
        return None
    finally:
        s.close()


def echoes(port, pki, cert, topic):
    """Whether a client with cert, subscribed to topic, gets its own message there back."""
    s = tls_socket(port, pki, cert)
    try:
        s.sendall(connect_packet("echo-%d" % free_port()))
        assert s.recv(4) == ACCEPTED
        s.sendall(subscribe_packet(1, [(topic, 0)]))
        assert s.recv(5)[0] >> 4 == 9  # SUBACK (mosquitto grants, then does not deliver)
        s.sendall(publish_packet(topic, b"hello"))
        s.sendall(packet(12, 0, b""))  # PINGREQ: its PINGRESP comes after any delivery
        data = b""
        while not data.endswith(bytes([0xD0, 0])):
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        return b"hello" in data
    finally:
        s.close()


def test_certificate_common_name_is_the_username(broker_kind, broker_factory, pki, tmp_path):
    port = start(broker_kind, broker_factory, pki, tmp_path)
    if port is None:
        return
    # the CONNECT's username and password count for nothing: no password is checked
    assert connack(port, pki, "client") == ACCEPTED
    assert connack(port, pki, "client", username="client", password="secret") == ACCEPTED
    assert connack(port, pki, "client", username="mallory", password="wrong") == ACCEPTED
    assert connack(port, pki, "subject") == ACCEPTED
    assert connack(port, pki, "nocn") == BAD_USERNAME_OR_PASSWORD
    assert connack(port, pki, None, username="client", password="secret") is None  # handshake
    # the ACL's %u is the certificate's name
    assert echoes(port, pki, "client", "client/x")
    assert not echoes(port, pki, "client", "mallory/x")
    assert echoes(port, pki, "subject", "dev 1/x")


def test_certificate_subject_is_the_username(broker_kind, broker_factory, pki, tmp_path):
    port = start(broker_kind, broker_factory, pki, tmp_path, "use_subject_as_username")
    if port is None:
        return
    assert connack(port, pki, "nocn", username="client", password="secret") == ACCEPTED
    assert echoes(port, pki, "client", "CN=client/x")
    assert not echoes(port, pki, "client", "client/x")
    assert echoes(port, pki, "subject", SUBJECT + "/x")


def test_without_require_certificate_no_certificate_is_asked_for(
        broker_kind, broker_factory, pki, tmp_path):
    port = start(broker_kind, broker_factory, pki, tmp_path, require=False)
    if port is None:
        return
    assert connack(port, pki, "client") == BAD_USERNAME_OR_PASSWORD
    assert connack(port, pki, None, username="client", password="secret") == \
        BAD_USERNAME_OR_PASSWORD


def test_per_listener_settings(broker_kind, broker_factory, pki, tmp_path):
    # the listener refuses anonymous clients (per_listener_settings' default): a certificate
    # is enough, and the listener's own acl_file applies to its name
    port = free_port()
    acl = tmp_path / "acl"
    acl.write_text("pattern readwrite %u/#\n")
    config = ["per_listener_settings true", "allow_anonymous false"] + lines(port, pki)
    config += ["acl_file %s" % acl] + as_root(broker_kind)
    if broker_kind.name == "micropython":
        error, b = startup_error(broker_factory, config)
        assert "use_identity_as_username is not supported on MicroPython" in error, error
        return
    broker_factory(config)
    assert connack(port, pki, "client", username="x", password="y") == ACCEPTED
    assert echoes(port, pki, "client", "client/x")
    assert not echoes(port, pki, "client", "x/x")

