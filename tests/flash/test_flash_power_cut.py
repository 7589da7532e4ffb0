"""The virtual board's power cut (issue 18): its broker.conf with `persistence true` on its own
flash, retained messages and an offline persistent session's queue; the board (tools/sim.py's
host and its interpreter) killed with SIGKILL at random moments while the broker saves, and
started again each time, as power comes back. Every retained message and every queued message
acknowledged before the last save seen in the board's output comes back, none twice."""
import json
import os
import queue
import random
import signal
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from test_flash_sim import PY, SIM, Sim, alive, wait_connectable

CUTS = int(os.environ.get("POWER_CUTS", "4"))
PERSIST = ["persistence true", "persistence_location /", "autosave_on_changes true",
           "autosave_interval 1"]
# the board's max_queued_messages is 16: each round stays below it, and its messages go on
# past the cut (two saves and up to 1.5 s after the third)
PER_ROUND = 12
PAUSE = 0.3
# the board's max_retained_messages is 16
RETAINED = 8


class Console:
    """What the board prints, read from its terminal (a new one after each power cut)."""
    def __init__(self, device):
        self.fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        self.text = ""

    def read(self):
        try:
            while True:
                data = os.read(self.fd, 4096)
                if not data:
                    break
                self.text += data.decode("utf-8", "replace")
        except (BlockingIOError, OSError):
            pass
        return self.text

    def saves(self):
        return self.read().count("Saving in-memory")

    def wait(self, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while not predicate(self.read()):
            assert time.monotonic() < deadline, self.text[-3000:]
            time.sleep(0.05)

    def close(self):
        os.close(self.fd)


def power_cut(board):
    """SIGKILL to the host and its interpreter at once, no warning to either."""
    board.remember()
    state = json.loads((board.dir / "sim.json").read_text())
    pids = [p for p in (state["pid"], state.get("child")) if p]
    for p in pids:
        os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, "the board outlived its power cut"
        time.sleep(0.02)


def power_on(board):
    r = subprocess.run([PY, str(SIM), "start", "--dir", str(board.dir), "--romfs", board.romfs],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    board.remember()
    console = Console(board.device)
    wait_connectable(board.port, timeout=30)
    return console


def paho_client(client_id, clean_session=True):
    connacks = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean_session)
    client.on_connect = lambda c, u, f, reason, p: connacks.put(reason)
    return client, connacks


def connected(client_id, port, clean_session=True):
    client, ok = paho_client(client_id, clean_session)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert not ok.get(timeout=5).is_failure
    return client


def publisher(port, round_, first, acked, stop):
    """The round's retained message, then QoS 1 messages numbered from first, each in acked
    once its PUBACK came, until PER_ROUND, stop or the power cut."""
    client = connected("pub", port)
    try:
        client.publish("r/%d" % (round_ % RETAINED), b"%d" % round_, qos=1,
                       retain=True).wait_for_publish(5)
        acked.append(-1)
        for n in range(first, first + PER_ROUND):
            if stop.is_set():
                break
            client.publish("q/%d" % n, b"%d" % n, qos=1).wait_for_publish(5)
            acked.append(n)
            time.sleep(PAUSE)
    except Exception:
        pass
    finally:
        client.loop_stop()


def collect(port, topic_filter, clean_session):
    """What a subscriber gets until a second passes without a message (QoS 1, acknowledged)."""
    got = queue.Queue()
    client, ok = paho_client("look" if clean_session else "sub", clean_session)
    client.on_message = lambda c, u, msg: got.put((msg.topic, msg.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert not ok.get(timeout=5).is_failure
        if clean_session:
            client.subscribe(topic_filter, qos=1)
        out = []
        while True:
            try:
                out.append(got.get(timeout=1.5))
            except queue.Empty:
                return out
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def board(tmp_path):
    b = Sim(tmp_path)
    try:
        r = b.flash()
        assert r.returncode == 0, r.stdout + r.stderr
        conf = b.dir / "flash" / "broker.conf"
        conf.write_text(conf.read_text() + "\n".join(PERSIST) + "\n")
        yield b
    finally:
        left = b.shut_down()
        assert not left, "processes left running after sim stop: %s" % left


@pytest.mark.timeout(90 + 30 * CUTS)
def test_power_cuts_while_saving_keep_retained_messages_and_the_queue(board):
    rng = random.Random(int(os.environ.get("PERSIST_SEED", "18")))
    power_cut(board)  # the broker.conf with persistence is read at the next power-on
    console = power_on(board)
    sub = connected("sub", board.port, clean_session=False)
    subscribed = queue.Queue()
    sub.on_subscribe = lambda c, u, mid, codes, p: subscribed.put(codes)
    sub.subscribe("q/#", qos=1)
    assert [c.value for c in subscribed.get(timeout=5)] == [1]
    sub.disconnect()
    sub.loop_stop()
    expected = 0  # the next number the persistent subscriber is due
    torn = 0  # power-ons that found a save cut off
    retained = {}
    for round_ in range(CUTS):
        acked, stop = [], threading.Event()
        t = threading.Thread(target=publisher, args=(board.port, round_, expected, acked, stop))
        t.start()
        console.wait(lambda text: len(acked) > 2)
        mark = acked[-1]
        # two saves begun after it was acknowledged: the first may have begun before
        seen = console.saves()
        console.wait(lambda text: text.count("Saving in-memory") > seen + 1)
        time.sleep(rng.random() * 1.5)
        power_cut(board)
        stop.set()
        t.join()
        console.close()
        console = power_on(board)
        retained["r/%d" % (round_ % RETAINED)] = b"%d" % round_
        got = dict(collect(board.port, "r/#", True))
        assert got == retained, (round_, got, console.read()[-3000:])
        got = [int(topic[2:]) for topic, _ in collect(board.port, None, False)]
        assert got == list(range(expected, expected + len(got))), (
            round_, expected, got, console.read()[-3000:])
        assert got and got[-1] >= mark, (round_, mark, got, console.read()[-3000:])
        expected += len(got)  # (its acknowledgements go with the next round's saves)
        torn += "was cut off" in console.read()
        assert "cannot be trusted" not in console.text, console.text[-3000:]
    console.close()
    print("virtual board: %d power cuts, %d of them cut a save off, %d queued messages"
          " delivered once each" % (CUTS, torn, expected))
