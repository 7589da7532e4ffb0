"""password_file over real sockets, on both runtimes: the file is made with
`python -m broker.passwd -b`, clients are paho-mqtt with and without credentials."""

from __future__ import annotations

import subprocess

import pytest

from conftest import REPO_ROOT, _our_python, startup_error

pytestmark = pytest.mark.own_broker  # our passwd tool's hash format


def make_passwd(path, *users):
    for user, password in users:
        subprocess.run([_our_python(), "-m", "broker.passwd", "-b", str(path), user, password],
                       cwd=str(REPO_ROOT), check=True, timeout=30)


def connect(mqtt_client, broker, client_id, user=None, password=None):
    c = mqtt_client(broker, client_id, connect=False)
    if user is not None:
        c.client.username_pw_set(user, password)
    c.connect(expect_success=False)
    return c


def test_password_file(broker_factory, mqtt_client, tmp_path):
    path = tmp_path / "passwd"
    make_passwd(path, ("alice", "wonderland"), ("bob", "builder"))
    text = path.read_text()
    assert text.startswith("alice:$sha256$1000$"), text
    b = broker_factory(["password_file %s" % path, "allow_anonymous false"])

    ok = connect(mqtt_client, b, "good", "alice", "wonderland")
    assert ok.reason_code.value == 0, ok.reason_code

    bad = connect(mqtt_client, b, "bad", "alice", "wonderlan")
    assert str(bad.reason_code) == "Bad user name or password", bad.reason_code
    bad.wait_disconnected()
    b.wait_log(lambda t: "Client bad from " in t and ": bad username or password." in t)

    unknown = connect(mqtt_client, b, "unknown", "mallory", "builder")
    assert str(unknown.reason_code) == "Bad user name or password", unknown.reason_code

    anon = connect(mqtt_client, b, "anon")
    assert str(anon.reason_code) == "Not authorized", anon.reason_code

    # the broker keeps serving: the accepted client and a new one exchange a message
    ok.subscribe("t/auth", qos=1)
    other = connect(mqtt_client, b, "other", "bob", "builder")
    assert other.reason_code.value == 0, other.reason_code
    other.publish("t/auth", b"hello", qos=1)
    assert ok.get().payload == b"hello"


def test_passwd_tool_delete_and_malformed_file(broker_factory, tmp_path):
    path = tmp_path / "passwd"
    make_passwd(path, ("alice", "a"), ("bob", "b"))
    # the tool under its own name; make_passwd runs it as documented, through broker.passwd
    subprocess.run([_our_python(), "-m", "ports.cpython.passwd", "-D", str(path), "alice"],
                   cwd=str(REPO_ROOT), check=True, timeout=30)
    lines = path.read_text().split()
    assert len(lines) == 1 and lines[0].startswith("bob:"), lines
    path.write_text(path.read_text() + "carol:plain\n")
    b = broker_factory(["password_file %s" % path], start=False)
    b.start(["password_file %s" % path], wait=False)
    assert b.wait_exit() != 0
    assert "%s:2: user 'carol': expected a hash" % path in b.log(), b.log()


@pytest.mark.kinds("wasm32")
def test_password_file_stops_start_up_on_the_32_bit_port(broker_factory, broker_kind, tmp_path):
    """That port cannot check a password (it collects garbage only between two events): a
    password_file stops start-up in one line naming the configuration's line. A malformed file
    is still reported first, as on the other runtimes."""
    kind = broker_kind.without_skips()
    path = tmp_path / "passwd"
    make_passwd(path, ("alice", "wonderland"))
    lines = ["password_file %s" % path, "allow_anonymous false"]
    error, b = startup_error(broker_factory, lines, kind=kind)
    line = b.config_path.read_text().splitlines().index(lines[0]) + 1
    assert error == ("Error: %s:%d: password_file: the webassembly port cannot check a password"
                     " (it collects garbage only between two events, and a check makes more"
                     " than its heap holds)" % (b.config_path, line)), b.log()
    path.write_text(path.read_text() + "carol:plain\n")
    error, b = startup_error(broker_factory, lines, kind=kind)
    assert error.startswith("Error: %s:2: user 'carol': expected a hash" % path), b.log()


LONG = "L" * 60000  # a 60 KB password: MQTT allows up to 65535 bytes


# A 60 KB CONNECT is gathered whole and its password copied twice (codec.read_binary) before it
# is checked: blocks of 60 KB that the micropython kind's board-sized 144K heap cannot hold, and
# that a fragmented 320K one cannot place (a board sets max_packet_size 4096). 512K can.
@pytest.mark.heap("512K")
def test_refusals_then_a_valid_login(broker_factory, mqtt_client, raw_client, tmp_path):
    """An unknown user, a wrong password and a 60 KB one are each refused with 0x04 and the
    connection closed; the broker then serves valid logins, one with a 60 KB password that the
    tool set."""
    path = tmp_path / "passwd"
    make_passwd(path, ("alice", "wonderland"), ("carol", LONG))
    b = broker_factory(["password_file %s" % path, "allow_anonymous false",
                        "max_packet_size 65536"])  # room for the long passwords

    for cid, user, password in (("unknown", "mallory", "wonderland"),
                                ("unknown-long", "mallory", LONG),
                                ("wrong", "alice", "wonderlanx"),
                                ("no-password", "alice", None),
                                ("long", "alice", LONG),
                                ("long-wrong", "carol", LONG[:-1] + "l")):
        c = raw_client(b)
        ack = c.connect(cid, username=user, password=password)
        assert ack.return_code == 4, (cid, ack)  # bad user name or password
        assert c.wait_closed() == [], cid

    ok = connect(mqtt_client, b, "good", "alice", "wonderland")
    assert ok.reason_code.value == 0, ok.reason_code
    ok.subscribe("t/auth", qos=1)
    long_ok = connect(mqtt_client, b, "good-long", "carol", LONG)
    assert long_ok.reason_code.value == 0, long_ok.reason_code
    long_ok.publish("t/auth", b"hello", qos=1)
    assert ok.get().payload == b"hello"
