"""Tables that one client cannot lock up (issue 15), on every broker kind: a client holds at most
its share of the subscriptions and retained messages, offline sessions make room for new clients
and expire, and a configuration that cannot fit the heap says so in one line at start-up.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import conftest
from board import board_config_lines
from conftest import free_port
from raw_mqtt import PUBLISH, RawClient

pytestmark = [pytest.mark.integration, pytest.mark.own_broker]

WAIT = 5.0


def _client(b, cid, **kw):
    c = RawClient(b.host, b.port, timeout=WAIT)
    ack = c.connect(cid, **kw)
    assert ack.return_code == 0, ack
    return c


def test_one_client_cannot_take_every_subscription(broker_factory):
    b = broker_factory(["max_subscriptions 8"])  # a share of 4 by default
    greedy = _client(b, "greedy")
    assert greedy.subscribe([("g/%d" % i, 0) for i in range(6)]) == [0] * 4 + [0x80] * 2
    other = _client(b, "other")
    assert other.subscribe([("o/%d" % i, 1) for i in range(4)]) == [1] * 4
    b.wait_log(lambda t: "max_subscriptions_per_client (4) reached" in t)
    for c in (greedy, other):
        c.disconnect()


def test_one_client_cannot_take_every_retained_slot(broker_factory):
    b = broker_factory(["max_retained_messages 4"])  # a share of 2 by default
    greedy = _client(b, "greedy")
    for i in range(4):
        greedy.publish("keep/g%d" % i, b"g", qos=1, retain=True, packet_id=i + 1)
    other = _client(b, "other")
    other.publish("keep/o", b"o", qos=1, retain=True)
    w = _client(b, "watch")
    assert w.subscribe([("keep/#", 0)]) == [0]
    got = set()
    try:
        while True:
            p = w.recv_packet(1.0)
            if p.type == PUBLISH:
                got.add(p.topic)
    except TimeoutError:
        pass
    assert got == {"keep/g0", "keep/g1", "keep/o"}, got
    b.wait_log(lambda t: "max_retained_per_client (2) reached" in t)
    for c in (greedy, other, w):
        c.disconnect()


def test_offline_sessions_never_lock_new_clients_out(broker_factory):
    # Issue 15: sixteen clients that once connected with clean session 0 filled a Pico W's
    # max_sessions 16, and every new client id got CONNACK 0x03, for good.
    b = broker_factory(["max_sessions 4"])
    for i in range(4):
        c = _client(b, "gone-%d" % i, clean_session=False)
        c.disconnect()
        if i == 0:
            time.sleep(1.1)  # the broker tells offline sessions apart by the second
    late = _client(b, "late", clean_session=False)  # the oldest, gone-0, made room
    b.wait_log(lambda t: "discarding the session of offline client gone-0" in t)
    back = RawClient(b.host, b.port, timeout=WAIT)
    ack = back.connect("gone-1", clean_session=False)
    assert (ack.return_code, ack.session_present) == (0, True)
    fresh = RawClient(b.host, b.port, timeout=WAIT)
    ack = fresh.connect("gone-0", clean_session=False)
    assert (ack.return_code, ack.session_present) == (0, False)  # gone-2 made room
    for c in (late, back, fresh):
        c.disconnect()


def test_persistent_client_expiration(broker_factory):
    b = broker_factory(["persistent_client_expiration 2s"])
    c = _client(b, "brief", clean_session=False)
    assert c.subscribe([("exp/t", 1)]) == [1]
    c.disconnect()
    b.wait_log(lambda t: "Expiring client brief" in t, timeout=6.0)
    c = RawClient(b.host, b.port, timeout=WAIT)
    ack = c.connect("brief", clean_session=False)
    assert (ack.return_code, ack.session_present) == (0, False)
    c.disconnect()


@pytest.mark.kinds("micropython", "wasm32")
def test_a_heap_too_small_for_the_configuration_is_one_line(broker_kind):
    # Issue 15: a configuration that cannot fit the heap stops start-up in one line, whether the
    # heap runs out while loading or the heap plan finds no room to serve a client.
    # (a folder whose path has always the same length: the path is in sys.argv, on the heap)
    config = Path(tempfile.mkdtemp(prefix="heap-", dir="/tmp")) / "board.conf"
    config.write_text("\n".join(["listener %d 127.0.0.1" % free_port(), "allow_anonymous true"]
                                + board_config_lines()) + "\n")
    if broker_kind.name == "wasm32":
        # (a heap this port runs out of while loading the modules may hang it instead of
        # raising MemoryError, as tools/wasm32/serve.mjs says: this one runs out just after,
        # at 44K and 45K; from 46K it listens, and below 44K it hangs)
        argv = [a if not a.startswith("heapsize=") else "heapsize=45K"
                for a in conftest._wasm32_prefix()]
    else:
        argv = [conftest._our_micropython(), "-X", "heapsize=96K", "-m", "broker"]
    try:
        r = subprocess.run(argv + ["-c", str(config)], cwd=str(conftest.REPO_ROOT),
                           capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(config.parent)
    assert r.returncode == 1, (r.returncode, r.stderr)
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, r.stderr
    assert "out of memory" in errors[0] or "does not fit a heap" in errors[0], r.stderr
    assert "Traceback" not in r.stderr, r.stderr
