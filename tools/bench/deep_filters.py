"""Issue 15, item 8 at its full size: one client holding many deep wildcard filters, and what that
costs every other client. A measurement, not a test (tests/integration/test_topic_tree.py is the
regression test, at sizes that run quickly).

    .venv/bin/python tools/bench/deep_filters.py [--brokers cpython,mosquitto] [--filters 10000]
                                                 [--levels 150] [--publishes 20]

Each broker is started as `make bench` starts it (tools/bench/brokers.py: loopback listener,
anonymous clients, every other option at its default), then:

1. client "deep" subscribes to FILTERS filters of LEVELS levels, "+/l1/.../lN/fI": a '+' first, so
   that no literal prefix tells them apart before their last level;
2. client "pub" publishes at QoS 1, one at a time, to PUBLISHES distinct topics, each matching one
   of the filters, and times PUBLISH -> PUBACK (a broker acknowledges once it has routed the
   message); the topics differ from their first level on, so that no cache of topics seen before
   can answer;
3. "pub" writes PUBLISHES QoS 0 messages to distinct topics in one go, and client "late" connects
   at once: the time until its CONNACK is what a crowd of deep filters makes everyone else wait.

One line per broker: the SUBSCRIBE time, the median and the slowest PUBLISH round trip, and the
CONNACK wait.
"""
import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "integration"))

import brokers  # noqa: E402
from raw_mqtt import (  # noqa: E402
    CONNACK, PUBACK, SUBACK, RawClient, connect_packet, publish_packet, subscribe_packet,
)

TIMEOUT = 600.0
PER_SUBSCRIBE = 100  # filters per SUBSCRIBE packet


def deep_filter(levels, i):
    return "/".join(["+"] + ["l%d" % k for k in range(1, levels - 1)] + ["f%d" % i])


def deep_topic(levels, i, tag):
    """A topic matching deep_filter(levels, i), its first level made distinct by tag."""
    return "/".join(["t%s" % tag] + ["l%d" % k for k in range(1, levels - 1)] + ["f%d" % i])


def drain(client, stop):
    """Read and drop whatever the broker sends the deep subscriber."""
    client.sock.settimeout(0.2)
    while not stop.is_set():
        try:
            if not client.sock.recv(65536):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def measure(kind, args, workdir):
    with brokers.Running(kind, workdir, None) as b:
        deep = RawClient("127.0.0.1", b.port, timeout=TIMEOUT)
        assert deep.connect("deep").return_code == 0
        start = time.monotonic()
        mid = 0
        for first in range(0, args.filters, PER_SUBSCRIBE):
            mid = mid % 65535 + 1
            filters = [(deep_filter(args.levels, i), 0)
                       for i in range(first, min(first + PER_SUBSCRIBE, args.filters))]
            deep.send(subscribe_packet(mid, filters))
            p = deep.expect(SUBACK, TIMEOUT)
            assert all(code == 0 for code in p.body[2:]), "a filter was refused"
        subscribe_s = time.monotonic() - start
        stop = threading.Event()
        reader = threading.Thread(target=drain, args=(deep, stop), daemon=True)
        reader.start()
        try:
            pub = RawClient("127.0.0.1", b.port, timeout=TIMEOUT)
            assert pub.connect("pub").return_code == 0
            trips = []
            for k in range(args.publishes):
                topic = deep_topic(args.levels, k % args.filters, "q%d" % k)
                start = time.monotonic()
                pub.send(publish_packet(topic, b"x", qos=1, packet_id=k + 1))
                p = pub.expect(PUBACK, TIMEOUT)
                trips.append(time.monotonic() - start)
                assert p.packet_id == k + 1
            burst = b"".join(publish_packet(deep_topic(args.levels, k % args.filters, "b%d" % k),
                                            b"x") for k in range(args.publishes))
            pub.send(burst)
            late = socket.create_connection(("127.0.0.1", b.port), timeout=TIMEOUT)
            start = time.monotonic()
            late.sendall(connect_packet("late"))
            head = late.recv(4)
            connack_s = time.monotonic() - start
            assert head[:1] == bytes([CONNACK << 4]), head
            late.close()
            pub.close()
        finally:
            stop.set()
            reader.join(2)
            deep.close()
        alive = b.alive()
    print("%-10s %d filters x %d levels: SUBSCRIBE %.1f s; PUBLISH -> PUBACK median %.2f ms, "
          "slowest %.2f ms; CONNACK after a burst of %d: %.3f s%s"
          % (kind, args.filters, args.levels, subscribe_s, statistics.median(trips) * 1000,
             max(trips) * 1000, args.publishes, connack_s, "" if alive else " (broker died)"),
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", default="cpython,mosquitto")
    ap.add_argument("--filters", type=int, default=10000)
    ap.add_argument("--levels", type=int, default=150)
    ap.add_argument("--publishes", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="deep-") as workdir:
        for kind in args.brokers.split(","):
            measure(kind.strip(), args, workdir)


if __name__ == "__main__":
    main()
