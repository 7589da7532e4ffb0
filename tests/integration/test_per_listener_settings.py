"""per_listener_settings true over real sockets: two listeners, one with a password_file, an
acl_file and no anonymous clients, the other open; on every runtime, and on mosquitto, whose
answers are the expectations."""

from __future__ import annotations

import subprocess

import pytest

from conftest import REPO_ROOT, _our_python, free_port, require_peer, startup_error
from raw_mqtt import PUBLISH, RawClient


def _passwd(kind, path, user, password):
    if kind == "mosquitto":  # our $sha256$ lines are this broker's own format
        path.touch()
        argv = [require_peer("mosquitto_passwd"), "-b", str(path), user, password]
    else:
        argv = [_our_python(), "-m", "broker.passwd", "-b", str(path), user, password]
    subprocess.run(argv, cwd=str(REPO_ROOT), check=True, timeout=30, capture_output=True)


def _start(broker_factory, broker_kind, tmp_path):
    passwd = tmp_path / "passwd"
    _passwd(broker_kind.name, passwd, "alice", "secret")
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite a/#\n")
    port = free_port()
    # the first listener is the one the factory writes, before these lines
    lines = ["per_listener_settings true", "allow_anonymous false",
             "password_file %s" % passwd, "acl_file %s" % acl,
             "listener %d 127.0.0.1" % port, "allow_anonymous true"]
    if broker_kind.name == "mosquitto":
        lines.insert(0, "user root")  # as root it would run as mosquitto, who cannot read tmp
    return broker_factory(lines), port


def _client(host, port, cid, **kw):
    c = RawClient(host, port)
    return c, c.connect(cid, **kw).return_code


def test_each_listener_checks_its_own(broker_factory, broker_kind, tmp_path):
    b, open_port = _start(broker_factory, broker_kind, tmp_path)
    made = []
    try:
        def client(port, cid, **kw):
            c, rc = _client(b.host, port, cid, **kw)
            made.append(c)
            return c, rc

        assert client(b.port, "anon")[1] == 5
        assert client(b.port, "wrong", username="alice", password="nope")[1] in (4, 5)
        alice, rc = client(b.port, "alice", username="alice", password="secret")
        assert rc == 0
        # the open listener: anonymous clients, and any username with any password
        anon, rc = client(open_port, "anon2")
        assert rc == 0
        other, rc = client(open_port, "mallory", username="mallory", password="x")
        assert rc == 0

        # alice's acl_file on the first listener: she reads and writes a/# only
        assert alice.subscribe([("a/#", 0)]) == [0]
        assert anon.subscribe([("#", 0)]) == [0]
        alice.publish("b/denied", b"1")
        alice.publish("a/ok", b"2")
        m = anon.expect(PUBLISH)
        assert (m.topic, m.payload) == ("a/ok", b"2")
        # the same user on the open listener has no acl_file
        alice2, rc = client(open_port, "alice2", username="alice")
        assert rc == 0
        alice2.publish("b/free", b"3")
        alice2.publish("a/x", b"4")
        got = [anon.expect(PUBLISH) for _ in range(2)]
        assert [(m.topic, m.payload) for m in got] == [("b/free", b"3"), ("a/x", b"4")]
        got = [alice.expect(PUBLISH) for _ in range(2)]  # b/free is not hers to read
        assert [(m.topic, m.payload) for m in got] == [("a/ok", b"2"), ("a/x", b"4")]
    finally:
        for c in made:
            c.close()


@pytest.mark.own_broker  # (mosquitto 2.0.11 says "Error: per_listener_settings must be set
# before any other security settings." and "Error found at FILE:LINE.")
def test_per_listener_settings_after_a_security_option(broker_factory, broker_kind):
    said, b = startup_error(broker_factory, ["allow_anonymous true",
                                             "per_listener_settings true"])
    line = b.config_path.read_text().splitlines().index("per_listener_settings true") + 1
    assert said == ("Error: %s:%d: per_listener_settings must be set before any other security"
                    " settings (allow_anonymous, password_file, acl_file,"
                    " allow_zero_length_clientid, auto_id_prefix)" % (b.config_path, line)), said
