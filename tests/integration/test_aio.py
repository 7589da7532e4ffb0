"""The broker inside an asyncio application (ports/aio.py, tests/integration/aio_app.py) on
CPython and the unix MicroPython, with a second task beside it: real clients through the
asyncio front, the hooks, the application's own publish and message callbacks. (The 32-bit
port has no sockets of its own to wait on: serve.mjs drives its server's step() from Node.js.)"""
import socket
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import REPO_ROOT, _our_micropython, _our_python

WAIT = 10.0


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def app(broker_kind):
    exe = _our_python() if broker_kind.name == "cpython" else _our_micropython()
    port = _free_port()
    proc = subprocess.Popen([exe, "tests/integration/aio_app.py", str(port)], cwd=str(REPO_ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + WAIT
    while time.time() < deadline:
        line = proc.stderr.readline()
        if "listening on" in line or not line:
            break
    assert proc.poll() is None, proc.stderr.read()
    yield port, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


class Client:
    def __init__(self, port, username=None, client_id=""):
        self.got = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if username:
            self.c.username_pw_set(username, "pw")
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, bytes(m.payload)))
        self.rc = None
        self.c.on_connect = lambda c, u, f, rc, p: setattr(self, "rc", rc)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.wait(lambda: self.rc is not None)

    def wait(self, cond):
        deadline = time.time() + WAIT
        while not cond() and time.time() < deadline:
            time.sleep(0.01)
        return cond()

    def subscribe(self, filt, qos=0):
        granted = []
        self.c.on_subscribe = lambda c, u, mid, codes, p: granted.extend(int(x.value) for x in codes)
        self.c.subscribe(filt, qos)
        assert self.wait(lambda: granted)
        return granted

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.mark.kinds("cpython", "micropython")
def test_clients_hooks_and_a_second_task_through_the_asyncio_front(app):
    port, proc = app
    refused = Client(port, username="mallory")
    assert refused.rc is not None and refused.rc.is_failure
    refused.close()
    c = Client(port, username="ann", client_id="ann")
    assert not c.rc.is_failure
    assert c.subscribe("forbidden/#") == [0x80]
    assert c.subscribe("echoed/#", 1) == [1]
    assert c.subscribe("app/ticks/reply") == [0]
    for i in range(50):
        c.c.publish("echo/n", b"%d" % i, qos=1)
    assert c.wait(lambda: len(c.got) == 50), c.got
    assert c.got == [("echoed/n", b"%d" % i) for i in range(50)]
    c.c.publish("app/ticks", b"")
    assert c.wait(lambda: any(t == "app/ticks/reply" for t, _ in c.got))
    turns, worst, events = c.got[-1][1].decode().split(" ", 2)
    assert int(turns) > 0  # the second task ran beside the broker
    assert "up ann" in events.split(",")
    c.c.publish("app/stop", b"")
    assert proc.wait(timeout=WAIT) == 0
    assert "stopped" in proc.stdout.read()
    c.close()
