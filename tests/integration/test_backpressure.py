"""A peer that sends but never reads cannot make the broker's memory grow (both runtimes).

The broker stops reading a connection whose unsent output is past its cap, so the peer's own
socket fills up and its sends block; everyone else keeps being served.
"""

from __future__ import annotations

import socket
import time

import pytest

from raw_mqtt import PUBLISH, connect_packet

pytestmark = [pytest.mark.integration, pytest.mark.own_broker]

PINGREQ = b"\xc0\x00"


def _rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def test_peer_that_never_reads_is_throttled_and_others_are_served(broker, raw_client):
    flood = socket.create_connection((broker.host, broker.port))
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flood.sendall(connect_packet("flooder"))
    rss_before = _rss_kb(broker.proc.pid)
    flood.settimeout(2.0)
    chunk = PINGREQ * 32768  # 64 KiB of PINGREQ, each answered with a 2-byte PINGRESP
    sent = 0
    limit = 256 * 1024 * 1024
    try:
        while sent < limit:
            sent += flood.send(chunk)
    except socket.timeout:
        pass
    # The broker stopped reading this peer long before 256 MiB of requests went out.
    assert sent < limit, sent
    grown = _rss_kb(broker.proc.pid) - rss_before
    assert grown < 32 * 1024, "broker grew by %d KiB" % grown
    # ... and it still serves everyone else.
    a = raw_client(broker)
    b = raw_client(broker)
    assert a.connect("bp-a").return_code == 0
    assert b.connect("bp-b").return_code == 0
    assert a.subscribe([("bp/t", 0)]) == [0]
    b.publish("bp/t", b"still here")
    p = a.expect(PUBLISH)
    assert (p.topic, p.payload) == ("bp/t", b"still here")
    flood.close()
    time.sleep(0.2)
    assert a.is_open() and b.is_open()
