"""Overload that a small heap, or a process's file descriptors, cannot take (issue 15, items 5, 6
and 11), at the sizes make test can afford; tools/storms.py runs the issue's full sizes.

- Idle sockets until refused: the MicroPython broker stops accepting at max_connections +
  16 sockets (derived from its heap when the configuration sets none), the others wait in the
  listen backlog; it must not crash (it did: SIGSEGV in select.poll after a few hundred), and
  must keep serving.
- A storm of clients connecting at once: every client that sent a CONNECT gets CONNACK 0x00
  or 0x03 within the connect timeout, repeated log lines are summed up, and on MicroPython the
  heap free and its largest free block come back to what they were before.
- accept() failing for want of file descriptors (ulimit -n): no busy loop, one log line per
  interval, the connected clients served meanwhile.
"""

from __future__ import annotations

import importlib.util
import os
import re
import resource
import socket
import sys
import time

import pytest

from conftest import REPO_ROOT, BrokerKind, free_port
from raw_mqtt import PUBLISH, RawClient, publish_packet
from test_floods import assert_no_traceback, assert_served

pytestmark = [pytest.mark.integration, pytest.mark.own_broker]

WAIT = 5.0
PENDING = 16  # broker.lifecycle._PENDING_CONNECTIONS


def _cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _derived_max_connections(broker):
    """The max_connections the MicroPython broker derived from its heap, from its log (read by
    a thread: the line may come a little after the one the start waited for)."""
    deadline = time.monotonic() + WAIT
    while True:
        m = re.search(r"max_connections (\d+): what this heap holds", broker.log())
        if m:
            return int(m.group(1))
        assert time.monotonic() < deadline, broker.log()
        time.sleep(0.05)


def _open_idle(broker, limit, timeout=2.0):
    """Idle sockets (no CONNECT) until one is refused or times out, or limit of them."""
    socks = []
    for _ in range(limit):
        s = socket.socket()
        s.settimeout(timeout)
        try:
            s.connect((broker.host, broker.port))
        except OSError:
            s.close()
            break
        socks.append(s)
    return socks


def _first_lines(log, text):
    """How many lines have text and are not log_limited()'s summary of the others (which
    comes at the end of its 10 s interval)."""
    return len([line for line in log.splitlines()
                if text in line and "more like this" not in line])


def _round_trip(c, topic, packet_id):
    """c (subscribed to topic at QoS 0) publishes to it and receives its own message."""
    c.send(publish_packet(topic, b"rt-%d" % packet_id))
    p = c.recv_packet(WAIT)
    assert p.type == PUBLISH and p.payload == b"rt-%d" % packet_id, p


# --------------------------------------------------------------------------------------------
# Item 5: idle sockets


@pytest.mark.kinds("micropython", "wasm32")
def test_idle_sockets_until_refused_leave_the_broker_serving(broker_factory, broker_kind):
    # max_connections -1 (no limit): the MicroPython port admits what its heap holds
    b = broker_factory(["max_connections -1"])
    n = _derived_max_connections(b)
    keep = RawClient(b.host, b.port, timeout=WAIT)
    assert keep.connect("keep").return_code == 0
    assert keep.subscribe([("keep/t", 0)]) == [0]
    # The MicroPython broker accepts max_connections + 16 sockets, the kernel's listen backlog
    # holds as many again, and the next connect() times out. serve.mjs (wasm32) takes every
    # connection in Node.js and hands the broker what it accepts: none is ever refused there.
    cap = n + PENDING
    limit = 2 * cap + 40
    socks = _open_idle(b, limit)
    try:
        if broker_kind.name == "micropython":
            assert len(socks) < limit, "never refused"
        time.sleep(0.5)
        assert b.proc.poll() is None, b.log()
        accepted = b.log().count("New connection from")
        assert accepted <= cap + 1, (accepted, cap)  # the keeper is one of them
        _round_trip(keep, "keep/t", 1)  # served meanwhile
    finally:
        for s in socks:
            s.close()
    keep.disconnect()
    assert_served(b)
    assert_no_traceback(b)


# --------------------------------------------------------------------------------------------
# Item 6: a storm of clients connecting at once


def test_storm_of_clients_all_answered(broker_factory, broker_kind):
    b = broker_factory(["max_connections 8", "connect_timeout 10"])
    keep = RawClient(b.host, b.port, timeout=WAIT)
    assert keep.connect("keep").return_code == 0
    start = time.monotonic()
    counts, socks = _load_storms().connect_storm(b.port, 60, 10.0)
    try:
        assert not [k for k in counts if isinstance(k, str) and k.startswith("garbage")], counts
        # every client that sent its CONNECT has its answer, within the connect timeout. The
        # MicroPython port takes max_connections + 16 sockets at a time, the others wait in
        # the listen backlog, so each gets a CONNACK. CPython takes as many and closes the
        # others at once, as mosquitto does past its max_connections (measured: 2.0.11 closes
        # 52 of these 60 without a word).
        if broker_kind.name == "cpython":
            assert counts[0] == 7 and "none" not in counts, counts
        else:
            assert counts == {0: 7, 3: 53}, counts
        assert time.monotonic() - start < 10.0
        # (the log is read by a thread: the lines may come a little after the answers)
        log = b.wait_log(lambda text: "max_connections (8) reached" in text
                         or "too many connections" in text)
        assert "sent no CONNECT in time" not in log, log
        # both refusals are one condition (LIMIT_CONNECTIONS): one line for all of them
        assert _first_lines(log, "max_connections (8) reached")\
            + _first_lines(log, "too many connections") == 1, log
    finally:
        for s in socks:
            s.close()
    keep.disconnect()
    assert_served(b)
    assert_no_traceback(b)


def _load_storms():
    spec = importlib.util.spec_from_file_location("_tools_storms",
                                                  REPO_ROOT / "tools" / "storms.py")
    assert spec is not None and spec.loader is not None
    storms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(storms)
    return storms


def _storm_heap(storms, tmp_path):
    """(heap free and largest free block before, the same after) 60 clients connect at once
    to a fresh broker of 192K, most of them refused, and leave; None where the broker lost
    a client it should have answered (an assertion fails then)."""
    port = free_port()
    conf = tmp_path / ("storm-%d.conf" % port)
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\nsys_interval 0\n" % port)
    b = storms.micropython_broker("192K", port, config=conf, probe=True)
    try:
        n = _derived_max_connections(b)
        before = b.heap("before")
        counts, socks = storms.connect_storm(port, 60, 10.0)
        assert counts == {0: n, 3: 60 - n}, counts
        for s in socks:
            try:
                s.send(b"\xe0\x00")  # DISCONNECT
            except OSError:
                pass
            s.close()
        # the refusals' summary: log_limited() keeps the last line until then
        deadline = time.monotonic() + 15.0
        while "more like this" not in b.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # the port settles the heap once no socket closed for a second
        after = b.heap("after")
        assert "sent no CONNECT in time" not in b.log(), b.log()
        assert "Traceback" not in b.log(), b.log()
        return before, after
    finally:
        b.stop()


@pytest.mark.kinds("micropython")
def test_storm_gives_the_heap_back_in_one_piece(broker_kind, tmp_path):
    # The heap read inside the broker (tools/mem_probe.py runs the port's own loop): what is
    # free, and its largest free block, before and after a storm; without $SYS, whose values
    # come back only every sys_interval. The collector takes any word it finds for a pointer,
    # and one pointing where a storm's object happened to be placed (a dead stack slot, a
    # stale table entry in the runtime) keeps that object, and what it refers to, alive for
    # good, in the middle of the free heap: that happens to about one fresh broker in ten,
    # the old one as this one. What the broker itself keeps is what the best of three fresh
    # brokers shows.
    storms = _load_storms()
    results = []
    for _ in range(3):
        before, after = _storm_heap(storms, tmp_path)
        results.append((before, after))
        assert after[0] >= before[0] - 2048, results  # the heap free comes back whole
        if after[1] >= before[1] * 9 // 10:
            return
    raise AssertionError("the largest free block did not come back: %r" % results)


# --------------------------------------------------------------------------------------------
# Item 11: accept() failing for want of file descriptors

NOFILE = 40  # the broker's ulimit -n here

# Starts the kind's command with RLIMIT_NOFILE lowered, in the same process (exec).
_LIMITED = ("import os, resource, sys; n = int(sys.argv[1]);"
            " resource.setrlimit(resource.RLIMIT_NOFILE, (n, n));"
            " os.execv(sys.argv[2], sys.argv[2:])")


def _with_nofile(kind, n):
    def argv(port, config_path, verbose):
        cmd = kind.argv(port, config_path, verbose)
        return [sys.executable, "-c", _LIMITED, str(n), cmd[0]] + cmd[1:]
    return BrokerKind(kind.name, argv, ready=kind.ready, always_config=kind.always_config,
                      base_config=kind.base_config, stop_signal=kind.stop_signal,
                      heap=kind.heap)


@pytest.mark.kinds("cpython", "micropython")
def test_out_of_file_descriptors_no_busy_loop_and_clients_served(broker_factory, broker_kind):
    # 60 idle sockets against a broker that may open 40 files: accept() fails (EMFILE) with
    # clients waiting in the backlog. It used to be tried again at every turn: 100% CPU, and
    # on CPython a line of log each time (92 MB in 9 s at 1,100 sockets).
    lines = ["max_connections 60"] if broker_kind.name == "micropython" else []
    b = broker_factory(lines, kind=_with_nofile(broker_kind, NOFILE))
    assert resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE)[0] == NOFILE
    keep = RawClient(b.host, b.port, timeout=WAIT)
    assert keep.connect("keep").return_code == 0
    assert keep.subscribe([("keep/t", 0)]) == [0]
    socks = _open_idle(b, 60)
    try:
        assert len(socks) > NOFILE, len(socks)  # the rest wait in the backlog
        b.wait_log(lambda text: "Error accepting a connection" in text)
        time.sleep(0.5)
        cpu0 = _cpu_s(b.proc.pid)
        log0 = len(b.log())
        for i in range(6):
            _round_trip(keep, "keep/t", i)  # the connected client is served meanwhile
            time.sleep(0.5)
        cpu = _cpu_s(b.proc.pid) - cpu0
        assert cpu < 1.0, "%.2f s of CPU in 3 s: a busy loop" % cpu
        assert len(b.log()) - log0 < 4096, b.log()[log0:]
        log = b.log()
        assert _first_lines(log, "Error accepting a connection") == 1, log
        # CPython names the error, MicroPython gives its number (EMFILE is 24)
        assert re.search(r"Error accepting a connection: (Too many open files|errno 24);", log)
    finally:
        for s in socks:
            s.close()
    keep.disconnect()
    assert_served(b)
    assert_no_traceback(b)

