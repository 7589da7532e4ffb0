"""mosquitto.conf files as distributions ship them, started unchanged (but for the port and
the paths) and used with mosquitto_pub/sub; Debian's persistence across a restart; the log
destinations, SIGHUP (reload, logrotate) and pid_file. Run against mosquitto as well, which
checks the files and what the tests expect."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO_ROOT, free_port, require_peer

# The files name what only a host has (syslog, pid files, $7$ hashes): CPython and mosquitto.
pytestmark = pytest.mark.kinds("cpython", "mosquitto")

# OpenWrt's /etc/init.d/mosquitto writes this from its UCI defaults (use_uci 1).
OPENWRT = """\
# mosquitto.conf file generated from UCI config.
log_dest syslog
log_type error
log_type warning
log_type notice
log_type information
max_inflight_messages 20
max_queued_messages 1000
set_tcp_nodelay false
connection_messages true
listener 1883
allow_anonymous true
"""

# A Yocto image's (meta-oe's mosquitto with a password_file made by mosquitto_passwd).
YOCTO = """\
per_listener_settings false
listener 1883
socket_domain ipv4
password_file {dir}/passwd
allow_anonymous false
set_tcp_nodelay true
log_dest none
"""

# Debian's /etc/mosquitto/mosquitto.conf as the package installs it, paths moved into the
# test's folder (persistence_location /var/lib/mosquitto/ is the package's, made by its
# postinst: the test's folder stands for it). It names no persistence_file: mosquitto keeps
# mosquitto.db there, this broker broker.db.
DEBIAN = """\
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file {dir}/mosquitto.pid

persistence true
persistence_location {dir}/

log_dest file {dir}/mosquitto.log

include_dir {dir}/conf.d
"""


class Process:
    def __init__(self, kind, conf, port):
        argv = kind.argv(port, conf, False)
        self.proc = subprocess.Popen(argv, cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.port = port
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, self.proc.stdout.read().decode()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "not listening"
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        return self.proc.stdout.read().decode()


@pytest.fixture
def start(broker_kind, tmp_path):
    made = []

    def run(text, port=None):
        port = port or free_port()
        text = text.replace("1883", str(port)).format(dir=tmp_path)
        if broker_kind.name == "mosquitto" and os.geteuid() == 0:
            text += "user root\n"  # mosquitto would switch to the user mosquitto
        conf = tmp_path / ("mosquitto-%d.conf" % port)
        conf.write_text(text)
        p = Process(broker_kind, conf, port)
        made.append(p)
        return p
    yield run
    for p in made:
        p.stop()


def round_trip(port, user=None, password=None, topic="t/distro"):
    auth = [] if user is None else ["-u", user, "-P", password]
    sub = subprocess.Popen([require_peer("mosquitto_sub"), "-p", str(port), "-t", topic, "-C",
                            "1", "-W", "10"] + auth, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    time.sleep(0.5)  # the subscription made before the message
    subprocess.run([require_peer("mosquitto_pub"), "-p", str(port), "-t", topic, "-m", "hello",
                    "-q", "1"] + auth, check=True, timeout=10)
    out, err = sub.communicate(timeout=15)
    assert out == b"hello\n", (out, err)


def test_openwrt(start):
    p = start(OPENWRT)
    round_trip(p.port)


def test_yocto_with_mosquitto_passwd(start, tmp_path):
    (tmp_path / "passwd").touch()
    subprocess.run([require_peer("mosquitto_passwd"), "-b", str(tmp_path / "passwd"), "gw",
                    "s3cret"], check=True, timeout=30)
    p = start(YOCTO)
    round_trip(p.port, "gw", "s3cret")
    pub = subprocess.run([require_peer("mosquitto_pub"), "-p", str(p.port), "-t", "t", "-m", "x",
                          "-u", "gw", "-P", "wrong"], capture_output=True, timeout=10)
    assert pub.returncode != 0
    # log_dest none: only mosquitto's warning and our launch contract's line
    said = [line for line in p.stop().splitlines()
            if "should not be run as root" not in line and "listening on" not in line]
    assert said == []


def test_debian(start, tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "README").write_text("Any files placed in this directory ...\n")
    (tmp_path / "conf.d" / "local.conf").write_text("listener 1883\nallow_anonymous true\n"
                                                    .replace("1883", "%d" % free_port()))
    conf = DEBIAN.replace("log_dest", "listener 1883\nallow_anonymous true\nlog_dest")
    p = start(conf)
    pid = int((tmp_path / "mosquitto.pid").read_text())
    assert pid == p.proc.pid
    round_trip(p.port)
    subprocess.run([require_peer("mosquitto_pub"), "-p", str(p.port), "-t", "state", "-m", "on",
                    "-q", "1", "-r"], check=True, timeout=10)
    p.stop()
    log = (tmp_path / "mosquitto.log").read_text()
    assert "New client connected from 127.0.0.1" in log, log
    p = start(conf, port=p.port)  # the retained message saved at shutdown, loaded again
    got = subprocess.run([require_peer("mosquitto_sub"), "-p", str(p.port), "-t", "state", "-C",
                          "1", "-W", "10"], capture_output=True, timeout=15)
    assert got.stdout == b"on\n", got


def test_log_file_reopened_on_sighup_and_topic(start, tmp_path):
    p = start("listener 1883\nallow_anonymous true\nlog_dest file {dir}/b.log\n"
              "log_dest topic\nlog_type all\n")
    sub = subprocess.Popen([require_peer("mosquitto_sub"), "-p", str(p.port), "-t",
                            "$SYS/broker/log/N", "-C", "1", "-W", "10"], stdout=subprocess.PIPE)
    time.sleep(0.5)
    subprocess.run([require_peer("mosquitto_pub"), "-p", str(p.port), "-i", "logged", "-t", "t",
                    "-m", "x"], check=True, timeout=10)
    out, _ = sub.communicate(timeout=15)
    assert b"New " in out, out
    os.rename(tmp_path / "b.log", tmp_path / "b.log.1")  # what logrotate does
    p.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not (tmp_path / "b.log").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    subprocess.run([require_peer("mosquitto_pub"), "-p", str(p.port), "-i", "after", "-t", "t",
                    "-m", "x"], check=True, timeout=10)
    p.stop()
    assert "logged" in (tmp_path / "b.log.1").read_text()
    assert "after" in (tmp_path / "b.log").read_text()


@pytest.mark.own_broker
def test_sighup_reloads_passwords_keeping_clients(start, tmp_path):
    from raw_mqtt import RawClient
    passwd = tmp_path / "passwd"
    passwd.touch()
    mosquitto_passwd = require_peer("mosquitto_passwd")
    subprocess.run([mosquitto_passwd, "-b", str(passwd), "alice", "one"], check=True)
    p = start("listener 1883\nallow_anonymous false\npassword_file {dir}/passwd\n"
              "log_dest file {dir}/b.log\n")
    kept = RawClient("127.0.0.1", p.port)
    assert kept.connect("kept", username="alice", password="one").return_code == 0
    subprocess.run([mosquitto_passwd, "-b", str(passwd), "alice", "two"], check=True)
    p.proc.send_signal(signal.SIGHUP)
    log = tmp_path / "b.log"
    deadline = time.monotonic() + 10
    while "Reloaded the configuration" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    c = RawClient("127.0.0.1", p.port)
    assert c.connect("new", username="alice", password="two").return_code == 0
    c = RawClient("127.0.0.1", p.port)
    assert c.connect("old", username="alice", password="one").return_code != 0
    # a broken file: logged, the previous passwords kept
    passwd.write_text(passwd.read_text() + "broken\n")
    p.proc.send_signal(signal.SIGHUP)
    while "keeping the previous one" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    assert "passwd:2: expected 'username:" in log.read_text(), log.read_text()
    c = RawClient("127.0.0.1", p.port)
    assert c.connect("again", username="alice", password="two").return_code == 0
    assert kept.is_open()  # connected clients stay through both reloads


@pytest.mark.kinds("cpython", "mosquitto")
def test_sighup_reloads_message_size_limit(start, tmp_path):
    # mosquitto.conf(5): message_size_limit is reloaded on the reload signal; a PUBLISH above
    # it is not forwarded (its QoS exchange completed)
    from raw_mqtt import PUBLISH, RawClient
    p = start("listener 1883\nallow_anonymous true\nlog_dest file {dir}/b.log\n")
    sub = RawClient("127.0.0.1", p.port)
    assert sub.connect("sub").return_code == 0
    assert sub.subscribe([("size/t", 0)]) == [0]
    pub = RawClient("127.0.0.1", p.port)
    assert pub.connect("pub").return_code == 0
    pub.publish("size/t", b"x" * 100, qos=1)
    assert sub.expect(PUBLISH).payload == b"x" * 100
    conf = tmp_path / ("mosquitto-%d.conf" % p.port)
    conf.write_text(conf.read_text() + "message_size_limit 10\n")
    p.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while True:  # the reload has happened once a large message is dropped
        pub.publish("size/t", b"y" * 100, qos=1)
        pub.publish("size/t", b"small", qos=1)
        got = sub.expect(PUBLISH).payload
        if got == b"small":
            break
        assert got == b"y" * 100 and sub.expect(PUBLISH).payload == b"small"
        assert time.monotonic() < deadline, "message_size_limit not reloaded"
        time.sleep(0.1)
    pub.publish("size/t", b"z" * 100, qos=1)
    pub.publish("size/t", b"tiny", qos=1)
    assert sub.expect(PUBLISH).payload == b"tiny"
