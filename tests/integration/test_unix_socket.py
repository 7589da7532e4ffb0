"""Unix socket listeners (`listener 0 PATH`, mosquitto 2.0 syntax), on both runtimes.

The broker fixture always adds its own TCP listener (`listener PORT 127.0.0.1`, first in the
file, the one -p replaces); each test adds a unix socket listener in a short temporary
directory (sockaddr_un holds at most 107 bytes of path). mosquitto_sub runs on a pty, as in
test_mosquitto_clients.py, so that each of its lines arrives as soon as it is printed.

What each runtime supports: the CPython and the MicroPython (unix port) brokers both listen on
unix sockets, replace a stale socket file, refuse a file that is not a socket and remove the
socket file on a clean stop; `socket_mode` needs chmod(), which only CPython has (MicroPython
refuses it with one line).
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import stat
import tempfile

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import closed_at_teardown
from test_mosquitto_clients import FORMAT, WAIT, LineProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def sock_path():
    """A path for the unix socket, in a new short directory (removed afterwards)."""
    folder = tempfile.mkdtemp(prefix="mq")
    # mosquitto started as root drops to its own user, which must be able to create the socket
    os.chmod(folder, 0o777)
    yield os.path.join(folder, "b.sock")
    shutil.rmtree(folder, ignore_errors=True)


def unix_broker(broker_factory, path, *lines, **kwargs):
    return broker_factory(["listener 0 %s" % path] + list(lines), **kwargs)


class Paho:
    """A paho-mqtt 2.x client over TCP (to a broker) or over a unix socket (to a path)."""

    def __init__(self, target, client_id):
        unix = isinstance(target, str)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, transport="unix" if unix else "tcp",
                                  reconnect_on_failure=False)
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.client.on_connect = lambda c, u, flags, rc, props: self.connacks.put(rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.put(rcs)
        self.client.on_message = lambda c, u, msg: self.messages.put(
            (msg.topic, bytes(msg.payload), msg.qos))
        if unix:
            self.client.connect(target, keepalive=30)
        else:
            self.client.connect(target.host, target.port, keepalive=30)
        self.client.loop_start()
        rc = self.connacks.get(timeout=WAIT)
        assert not rc.is_failure, rc

    def subscribe(self, topic, qos=1):
        self.client.subscribe(topic, qos)
        rcs = self.subacks.get(timeout=WAIT)
        assert [int(rc.value) for rc in rcs] == [qos], rcs

    def publish(self, topic, payload, qos=1):
        info = self.client.publish(topic, payload, qos)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()

    def message(self):
        return self.messages.get(timeout=WAIT)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def paho():
    made = []

    def make(target, client_id):
        c = Paho(target, client_id)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.close()
        except Exception:
            pass


@pytest.fixture
def pty_procs():
    yield from closed_at_teardown(LineProcess, LineProcess.stop)


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


# --- round trips ----------------------------------------------------------------------------

def test_mosquitto_clients_round_trip_over_unix_socket(broker_factory, sock_path, peer,
                                                       pty_procs):
    sub_path = peer("mosquitto_sub")
    pub_path = peer("mosquitto_pub")
    unix_broker(broker_factory, sock_path)
    sub = pty_procs([sub_path, "--unix", sock_path, "-d", "-F", FORMAT, "-C", "1", "-W", "5",
                     "-q", "1", "-t", "ux/mc"])
    sub.wait_line("Subscribed")
    pub = pty_procs([pub_path, "--unix", sock_path, "-q", "1", "-t", "ux/mc", "-m", "hello"])
    assert pub.wait() == 0, pub.lines()
    assert sub.wait() == 0, sub.lines()
    assert sub.messages() == ["ux/mc|1|0|hello"]


def test_paho_over_unix_socket(broker_factory, sock_path, paho):
    unix_broker(broker_factory, sock_path)
    sub = paho(sock_path, "ux-paho-sub")
    sub.subscribe("ux/paho/#", qos=1)
    pub = paho(sock_path, "ux-paho-pub")
    pub.publish("ux/paho/a", b"over the socket", qos=1)
    assert sub.message() == ("ux/paho/a", b"over the socket", 1)
    pub.publish("ux/paho/b", b"qos 0", qos=0)
    assert sub.message() == ("ux/paho/b", b"qos 0", 0)


def test_tcp_and_unix_clients_exchange_messages(broker_factory, sock_path, paho):
    broker = unix_broker(broker_factory, sock_path)
    on_tcp = paho(broker, "ux-on-tcp")
    on_unix = paho(sock_path, "ux-on-unix")
    on_tcp.subscribe("ux/to-tcp", qos=1)
    on_unix.subscribe("ux/to-unix", qos=1)
    on_unix.publish("ux/to-tcp", b"from unix", qos=1)
    on_tcp.publish("ux/to-unix", b"from tcp", qos=1)
    assert on_tcp.message() == ("ux/to-tcp", b"from unix", 1)
    assert on_unix.message() == ("ux/to-unix", b"from tcp", 1)


# --- this broker's log lines ----------------------------------------------------------------

@pytest.mark.own_broker
def test_listening_line_and_peer_name(broker_factory, sock_path, paho):
    broker = unix_broker(broker_factory, sock_path)
    lines = [line for line in broker.log().splitlines() if "listening on" in line]
    assert any(line.endswith("listening on unix:%s" % sock_path) for line in lines), lines
    assert any(line.endswith("listening on 127.0.0.1:%d" % broker.port) for line in lines), lines
    paho(sock_path, "ux-named")
    # a unix client has no address: the log names it by the socket it came through
    broker.wait_log(lambda text: "New client connected from unix:%s as ux-named" % sock_path
                    in text)


# --- the socket file's life -----------------------------------------------------------------

def test_socket_file_removed_on_clean_shutdown(broker_factory, sock_path, paho):
    broker = unix_broker(broker_factory, sock_path)
    assert is_socket(sock_path)
    paho(sock_path, "ux-still-connected")
    assert broker.stop() == 0, broker.log()
    assert not os.path.exists(sock_path), broker.log()
    assert "Traceback" not in broker.log()


def test_stale_socket_file_is_replaced(broker_factory, sock_path, paho):
    # what a broker killed with SIGKILL leaves behind: a socket file nobody listens on
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)
    stale.close()
    # a second name keeps the stale file's inode alive: the new socket cannot reuse it
    os.link(sock_path, sock_path + ".old")
    unix_broker(broker_factory, sock_path)
    assert is_socket(sock_path)
    assert not os.path.samefile(sock_path, sock_path + ".old")
    sub = paho(sock_path, "ux-after-stale")
    sub.subscribe("ux/stale", qos=0)
    sub.publish("ux/stale", b"fresh", qos=0)
    assert sub.message() == ("ux/stale", b"fresh", 0)


@pytest.mark.own_broker
def test_file_that_is_not_a_socket_refuses_start(broker_factory, sock_path):
    with open(sock_path, "w") as f:
        f.write("not a socket\n")
    broker = broker_factory(start=False)
    broker.start(["listener 0 %s" % sock_path], wait=False)
    code = broker.wait_exit(timeout=10)
    log = broker.log()
    assert code == 1, log
    errors = [line for line in log.splitlines() if "Error" in line]
    assert errors == ["Error: cannot listen on unix:%s: the file exists and is not a socket"
                      " (not replacing it)" % sock_path], log
    assert "Traceback" not in log
    with open(sock_path) as f:
        assert f.read() == "not a socket\n"  # left alone


@pytest.mark.own_broker
def test_live_socket_is_not_taken_over(broker_factory, sock_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as holder:
        holder.bind(sock_path)
        holder.listen(1)
        broker = broker_factory(start=False)
        broker.start(["listener 0 %s" % sock_path], wait=False)
        code = broker.wait_exit(timeout=10)
        log = broker.log()
        assert code == 1, log
        assert "Error: cannot listen on unix:%s: address already in use" % sock_path in log, log
        assert "Traceback" not in log
        assert is_socket(sock_path)  # still the holder's


# --- socket_mode ----------------------------------------------------------------------------

@pytest.mark.own_broker  # not a mosquitto option (mosquitto 2.0 calls it unknown)
@pytest.mark.kinds("cpython")  # MicroPython has no chmod(): see the next test
def test_socket_mode_sets_the_file_mode(broker_factory, sock_path, paho):
    unix_broker(broker_factory, sock_path, "socket_mode 0600")
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
    paho(sock_path, "ux-owner")  # the owner still connects


@pytest.mark.own_broker
@pytest.mark.kinds("micropython")
def test_socket_mode_refused_on_micropython(broker_factory, sock_path):
    broker = broker_factory(start=False)
    broker.start(["listener 0 %s" % sock_path, "socket_mode 0600"], wait=False)
    code = broker.wait_exit(timeout=10)
    log = broker.log()
    assert code == 1, log
    errors = [line for line in log.splitlines() if "Error" in line]
    assert len(errors) == 1, log
    assert errors[0].startswith("Error: cannot listen on unix:%s: socket_mode is not supported"
                                " on MicroPython" % sock_path), log
    assert "Traceback" not in log
    assert not os.path.exists(sock_path)


# --- the CPython port in-process (Server.close() and stop(), as an embedding program uses them)

def test_cpython_server_close_removes_socket_file(sock_path):
    import threading

    from broker.config import parse
    from ports.cpython.server import Server

    config = parse("listener 0 %s\nallow_anonymous true\n" % sock_path)
    server = Server(config, lambda level, msg: None)
    server.bind()
    assert server.addresses == ["unix:%s" % sock_path]
    assert is_socket(sock_path)
    server.close()
    assert not os.path.exists(sock_path)

    server = Server(config, lambda level, msg: None)
    server.bind()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(WAIT)
        client.connect(sock_path)
        client.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")  # CONNECT, clean
        assert client.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
        server.stop()
        thread.join(WAIT)
        assert not thread.is_alive()
    assert not os.path.exists(sock_path)
