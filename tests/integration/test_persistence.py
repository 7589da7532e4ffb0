"""persistence true: retained messages, persistent sessions, their queues and in-flight state
across a restart, on every runtime and from one runtime to the other; a damaged or unwritable
journal; the broker killed (SIGKILL) at random moments while it saves."""
import os
import random
import re
import threading
import time

import pytest

from conftest import KINDS, micropython_kind
from raw_mqtt import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, ack_packet, publish_packet

# The kill loop's iterations per runtime: make test runs a few, the closing figures 100.
KILLS = int(os.environ.get("PERSIST_KILLS", "10"))
# The unix MicroPython compiles the journal's code from source at start-up, as it does the
# bridge's: with an empty journal it starts at 208K and not at 200K (a few hundred bytes more
# of that code were enough to fail at 208K); 224K leaves it room.
PERSIST_HEAP = "224K"
pytestmark = pytest.mark.heap(PERSIST_HEAP)


def keep(folder, *extra):
    lines = ["persistence true", "persistence_location %s/" % folder, "autosave_interval 1"]
    if os.geteuid() == 0:
        lines.append("user root")  # (mosquitto as root would switch to its own user)
    return lines + list(extra)


def lines_for(kind, lines):
    return [line for line in lines if not (line == "user root" and kind.name != "mosquitto")]


def files_outlive_the_process(kind):
    if kind.name == "wasm32":
        pytest.skip("wasm32: serve.mjs keeps its files in Emscripten's in-memory filesystem,"
                    " which ends with the process (this port has no NODEFS)")


def subscribed(raw_client, broker, filters):
    """The offline persistent session "sub" with these subscriptions."""
    sub = raw_client(broker)
    sub.connect("sub", clean_session=False)
    sub.subscribe(filters)
    sub.disconnect()


def start(broker_factory, kind, folder, *extra, override=False):
    """A broker of the test's kind (with the heap its marker gives), or of `kind`."""
    return broker_factory(lines_for(kind, keep(folder, *extra)),
                          kind=kind if override else None)


def drain(client, count, ack=True, timeout=5.0):
    """count PUBLISH packets, each acknowledged (QoS 2: to the end), in the order they came."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        p = client.recv_packet(max(0.1, deadline - time.monotonic()))
        if p.type == PUBLISH:
            got.append(p)
            if ack and p.qos == 1:
                client.send(ack_packet(PUBACK, p.packet_id))
            elif ack and p.qos == 2:
                client.send(ack_packet(PUBREC, p.packet_id))
        elif p.type == PUBREL and ack:
            client.send(ack_packet(PUBCOMP, p.packet_id))
    return got


def quiet(client, timeout=0.5):
    """Nothing more arrives (a PUBREL is answered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            p = client.recv_packet(max(0.05, deadline - time.monotonic()))
        except Exception:
            return
        if p.type == PUBREL:
            client.send(ack_packet(PUBCOMP, p.packet_id))
            continue
        assert p.type != PUBLISH, p


def test_retained_messages_and_sessions_survive_a_restart(broker_factory, broker_kind,
                                                          raw_client, tmp_path):
    files_outlive_the_process(broker_kind)
    b1 = start(broker_factory, broker_kind, tmp_path)
    subscribed(raw_client, b1, [("t/#", 1), ("x/#", 2)])
    pub = raw_client(b1)
    pub.connect("pub")
    pub.publish("r/1", b"state", qos=1, retain=True)
    pub.publish("r/2", b"gone", qos=0, retain=True)
    pub.publish("r/2", b"", qos=0, retain=True)  # cleared
    pub.publish("t/1", b"one", qos=1, packet_id=2)
    pub.publish("x/1", b"two", qos=2, packet_id=3)
    pub.disconnect()
    b1.stop()
    b2 = start(broker_factory, broker_kind, tmp_path)
    look = raw_client(b2)
    look.connect("look")
    look.subscribe([("r/#", 0)])
    got = drain(look, 1)
    assert [(p.topic, p.payload, p.retain) for p in got] == [("r/1", b"state", True)]
    quiet(look)
    sub = raw_client(b2)
    assert sub.connect("sub", clean_session=False).session_present
    got = drain(sub, 2)
    assert [(p.topic, p.payload, p.qos) for p in got] == [("t/1", b"one", 1), ("x/1", b"two", 2)]
    quiet(sub)
    sub.disconnect()


def test_in_flight_state_and_qos2_identifiers_survive_a_restart(broker_factory, broker_kind,
                                                                 raw_client, tmp_path):
    files_outlive_the_process(broker_kind)
    b1 = start(broker_factory, broker_kind, tmp_path)
    sub = raw_client(b1)
    sub.connect("sub", clean_session=False)
    sub.subscribe([("t/#", 2)])
    pub = raw_client(b1)
    pub.connect("pub", clean_session=False)
    pub.publish("t/a", b"q1", qos=1, packet_id=1)
    pub.publish("t/b", b"q2", qos=2, packet_id=2)
    first = drain(sub, 2, ack=False)
    assert [p.payload for p in first] == [b"q1", b"q2"]
    sub.send(ack_packet(PUBREC, first[1].packet_id))  # q2: PUBREL comes, PUBCOMP does not go
    assert sub.expect(PUBREL).packet_id == first[1].packet_id
    pub.send(publish_packet("other", b"once", qos=2, packet_id=7))  # received, not released
    assert pub.expect(PUBREC).packet_id == 7
    b1.stop()
    b2 = start(broker_factory, broker_kind, tmp_path)
    watch = raw_client(b2)
    watch.connect("watch")
    watch.subscribe([("other", 0)])
    sub = raw_client(b2)
    assert sub.connect("sub", clean_session=False).session_present
    p = sub.recv_packet()
    assert (p.type, p.payload, p.dup, p.packet_id) == (PUBLISH, b"q1", True, first[0].packet_id)
    sub.send(ack_packet(PUBACK, p.packet_id))
    assert sub.expect(PUBREL).packet_id == first[1].packet_id  # [MQTT-4.4.0-1]
    sub.send(ack_packet(PUBCOMP, first[1].packet_id))
    pub = raw_client(b2)
    assert pub.connect("pub", clean_session=False).session_present
    pub.send(publish_packet("other", b"once", qos=2, dup=True, packet_id=7))
    assert pub.expect(PUBREC).packet_id == 7  # the same exchange: no second delivery
    pub.send(ack_packet(PUBREL, 7))
    assert pub.expect(PUBCOMP).packet_id == 7
    if broker_kind.name == "mosquitto":  # it routes a QoS 2 message at PUBREL: now, once
        assert [p.payload for p in drain(watch, 1)] == [b"once"]
    quiet(watch)  # this broker routed it when it came, before the restart: not again
    quiet(sub)


@pytest.mark.own_broker
@pytest.mark.kinds("cpython")
def test_one_file_for_both_runtimes(broker_factory, raw_client, tmp_path):
    """Saved by CPython, loaded by MicroPython, saved by it, loaded by CPython."""
    kinds = [KINDS["cpython"], micropython_kind(PERSIST_HEAP), KINDS["cpython"]]
    b = start(broker_factory, kinds[0], tmp_path, override=True)
    subscribed(raw_client, b, [("t/#", 2)])
    for i, kind in enumerate(kinds[1:]):
        pub = raw_client(b)
        pub.connect("pub")
        pub.publish("r/%d" % i, b"state %d" % i, qos=1, retain=True)
        pub.publish("t/%d" % i, b"queued %d" % i, qos=2, packet_id=2)
        pub.disconnect()
        b.stop()
        b = start(broker_factory, kind, tmp_path, override=True)
        assert "loaded %d retained messages and 1 sessions" % (i + 1) in b.log(), b.log()
        look = raw_client(b)
        look.connect("look")
        look.subscribe([("r/#", 0)])
        got = drain(look, i + 1)
        assert sorted(p.payload for p in got) == [b"state %d" % j for j in range(i + 1)]
        look.disconnect()
        sub = raw_client(b)
        assert sub.connect("sub", clean_session=False).session_present
        got = drain(sub, 1)
        assert [(p.payload, p.qos) for p in got] == [(b"queued %d" % i, 2)]
        quiet(sub, 0.3)
        sub.disconnect()


@pytest.mark.own_broker
def test_a_damaged_file_is_set_aside_and_the_broker_starts(broker_factory, broker_kind,
                                                           tmp_path):
    files_outlive_the_process(broker_kind)
    (tmp_path / "broker.db").write_bytes(b"MQTTPDB\x07" + b"\x00" * 40)
    b = start(broker_factory, broker_kind, tmp_path)
    log = b.wait_log(lambda text: "cannot be trusted" in text)
    assert "a later format version (7)" in log, log
    assert (tmp_path / "broker.db.damaged-1").read_bytes().startswith(b"MQTTPDB\x07")
    b.stop()


@pytest.mark.own_broker
def test_a_location_it_cannot_write_is_logged_once_and_the_broker_serves(
        broker_factory, broker_kind, raw_client, tmp_path):
    files_outlive_the_process(broker_kind)
    b = broker_factory(["persistence true", "persistence_location /sys/",
                        "autosave_interval 1"])
    pub = raw_client(b)
    pub.connect("pub")
    sub = raw_client(b)
    sub.connect("sub")
    sub.subscribe([("r/#", 1)])
    for i in range(3):
        pub.publish("r/x", b"%d" % i, qos=1, retain=True, packet_id=i + 1)
        assert drain(sub, 1)[0].payload == b"%d" % i
        time.sleep(1.2)  # a save point each time
    log = b.log()
    assert log.count("cannot save to /sys/broker.db") == 1, log
    # the save at shutdown fails too, and says what that costs rather than promising another
    b.stop()
    log = b.log()
    assert "cannot save to /sys/broker.db at shutdown" in log, log
    assert "what changed since the last save is lost" in log, log
    assert log.count("trying again at the next save point") == 1, log


def _publisher(client, first, stop, acked, size, pause):
    """QoS 1 messages numbered from first, until stop is set or the broker is gone; acked
    gets each number once its PUBACK came."""
    n = first
    payload = b"x" * size
    try:
        while not stop.is_set():
            client.send(publish_packet("t/%d" % n, payload, qos=1, packet_id=n % 65535 + 1))
            client.expect(PUBACK)
            acked.append(n)
            n += 1
            time.sleep(pause)  # (each save writes the offline session's whole queue)
    except Exception:
        pass


@pytest.mark.own_broker
@pytest.mark.kinds("cpython", "micropython")
@pytest.mark.timeout(60 + 10 * KILLS)  # (about 6 s a round)
def test_killed_while_saving_the_broker_loads_the_last_complete_save(
        broker_factory, broker_kind, raw_client, tmp_path):
    """SIGKILL at random moments while a publisher's messages are saved (autosave every
    change, at most each second), PERSIST_KILLS times: each restart loads the last complete
    save; the offline persistent subscriber gets every message acknowledged before that save
    once, and of those after it a run in order, none twice."""
    rng = random.Random(int(os.environ.get("PERSIST_SEED", "18")))
    extra = ("autosave_on_changes true", "max_queued_messages 100000")
    size, pause = 500, 0.002
    if broker_kind.name == "micropython":  # its queue within the heap's memory_limit
        extra = ("autosave_on_changes true", "max_queued_messages 2000")
        size, pause = 50, 0.04
    b = start(broker_factory, broker_kind, tmp_path, *extra)
    subscribed(raw_client, b, [("t/#", 1)])
    b.stop()
    expected = 0  # the next number the subscriber is due
    saved_upto = -1  # every number up to this one was acknowledged before a complete save
    stopped = ""
    torn = 0  # restarts that found a save cut off by the kill
    for round_ in range(KILLS):
        b = start(broker_factory, broker_kind, tmp_path, *extra)
        pub = raw_client(b)
        pub.connect("pub")
        stop = threading.Event()
        acked = []
        t = threading.Thread(target=_publisher, args=(pub, expected, stop, acked, size, pause))
        t.start()
        # a save that covers the first acknowledged messages, then a kill at a random moment
        b.wait_log(lambda text: len(acked) > 3 and text.count("Saving in-memory") >= 1,
                   timeout=20)
        mark = acked[-1]
        # two saves begun after it was acknowledged: the first may be the one whose line was
        # still on its way
        seen = b.log().count("Saving in-memory")
        b.wait_log(lambda text: text.count("Saving in-memory") > seen + 1, timeout=20)
        # every other round aims at the next save (one a second), the others anywhere
        time.sleep(1.0 + rng.uniform(-0.04, 0.04) if round_ % 2 else rng.random() * 1.5)
        b.proc.kill()
        b.proc.wait()
        stop.set()
        t.join()
        saved_upto = mark
        killed = b.log()
        b = start(broker_factory, broker_kind, tmp_path, *extra)
        torn += "was cut off" in b.log()
        sub = raw_client(b)
        assert sub.connect("sub", clean_session=False).session_present
        got = []
        while True:
            try:
                p = sub.recv_packet(1.0)
            except Exception:
                break
            if p.type == PUBLISH:
                got.append(int(p.topic[2:]))
                try:
                    sub.send(ack_packet(PUBACK, p.packet_id))
                except OSError:
                    raise AssertionError("round %d: the broker closed the subscriber\n%s"
                                         % (round_, b.log()))
        sub.disconnect()
        assert got == list(range(expected, expected + len(got))), (
            round_, got[:5], expected, "the broker before the kill:", killed, "the previous"
            " round's, stopped:", stopped, "now:", b.log())
        assert got and got[-1] >= saved_upto, (round_, saved_upto, got[-1:], b.log())
        expected += len(got)
        # the subscriber's acknowledgements, saved at shutdown: a stop that timed out and
        # ended in SIGKILL would lose them, and the next round get them again
        code = b.stop()
        stopped = b.log()
        assert code == 0, ("round %d: the broker did not stop cleanly (%r)" % (round_, code),
                           stopped)
    log = b.log()
    assert not re.search(r"cannot be trusted", log), log
    print("%s: %d kills, %d of them cut a save off, %d messages delivered once each"
          % (broker_kind.name, KILLS, torn, expected))
